"""Safetensors files of a model folder: reading them (each checked against the size and sha256 config.json
records, their headers against the networks before any tensor is read), matching tensors to networks (strict names,
shapes and dtypes), and writing them in the Hub layout (maybe fp16, maybe sharded, byte-for-byte reproducible).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from gancli.data.imageio import atomic_write
from gancli.store import hub
from gancli.store.config import WeightsError, check_files, plain_name

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_SAFETENSORS_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
                       "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16, "I32": torch.int32,
                       "I64": torch.int64, "BOOL": torch.bool}


class TensorInfo(NamedTuple):
    """A tensor as a safetensors header describes it: enough to check it against a network without reading it."""
    shape: tuple[int, ...]
    dtype: torch.dtype | str  # a str: a type torch cannot hold here (F8_E5M2, say)


# ------------------------------------------------------------------------------------------------ reading
def weight_files(folder: Path) -> list[Path]:
    """The weights files of a model folder: the one file, or the shards its index lists (plain names only: an index
    cannot point outside the folder)."""
    index = folder / hub.INDEX_NAME
    if index.is_file():
        try:
            weight_map = hub.read_json(index)["weight_map"]
        except (ValueError, LookupError, TypeError) as e:
            raise WeightsError(f"{index} is not a valid shard index ({e})") from None
        if not isinstance(weight_map, dict) or not weight_map:
            raise WeightsError(f"{index} is not a valid shard index (weight_map must map tensors to files)")
        names = sorted({str(v) for v in weight_map.values()})
        bad = [v for v in weight_map.values() if not (plain_name(v) and v.endswith(".safetensors"))]
        if bad:
            raise WeightsError(f"{index} names {str(bad[0])[:100]!r}: shards must be .safetensors files in the model "
                               "folder itself")
        return [folder / n for n in names]
    if (folder / hub.WEIGHTS_NAME).is_file():
        return [folder / hub.WEIGHTS_NAME]
    raise WeightsError(f"{folder} has no {hub.WEIGHTS_NAME}")


def verify_file(path: Path, config: dict) -> None:
    """The file's size and sha256 against config.json's ``files`` (when it records any: then every weights file
    must be there, or a swapped index could bring in an unchecked one)."""
    recorded = config.get("files") or {}
    if not path.is_file():
        raise WeightsError(f"{path} is missing (listed in {hub.INDEX_NAME})")
    if not recorded:
        return
    entry = recorded.get(path.name)
    if entry is None:
        raise WeightsError(f"{path} is not among the files config.json records checksums for")
    size = path.stat().st_size
    if entry.get("bytes") is not None and size != entry["bytes"]:
        raise WeightsError(f"{path} has {size:,} bytes where config.json records {entry['bytes']:,}: it is "
                           "truncated or was changed (delete it and download again)")
    actual = hub.sha256_file(path)
    if actual != entry["sha256"]:
        raise WeightsError(f"{path} is corrupt or was changed: sha256 {actual[:12]}… does not match "
                           f"{entry['sha256'][:12]}… recorded in config.json (delete it and download again)")


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Names, shapes and dtypes from a safetensors header; no tensor data is read. safetensors checks that the
    header's offsets fit the file, so a small file cannot claim big tensors."""
    try:
        with safe_open(path, framework="pt") as f:
            infos = {}
            for k in f.keys():
                part = f.get_slice(k)
                infos[k] = TensorInfo(tuple(part.get_shape()), _SAFETENSORS_DTYPES.get(part.get_dtype(),
                                                                                       part.get_dtype()))
            return infos
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0]}); "
                           "it may be truncated") from None


def read_weights(folder: Path, config: dict, expected: dict[str, dict] | None = None,
                 required: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """All tensors of a model folder (one file, or shards listed in the index), each file checked against its size
    and sha256. With ``expected`` ({network name: its state dict, e.g. on the meta device}), the headers are
    checked against those networks before any tensor is read: a file cannot make us allocate what the
    architecture does not hold, nor load a tensor of the wrong type."""
    folder = Path(folder)
    check_files(config.get("files"), folder / hub.CONFIG_NAME)
    paths = weight_files(folder)
    headers: dict[str, TensorInfo] = {}
    for path in paths:
        verify_file(path, config)
        header = read_header(path)
        twice = sorted(set(header) & set(headers))
        if twice:
            raise WeightsError(f"{path} repeats tensor {twice[0]} of another shard")
        headers |= header
    if expected is not None:
        _check_headers(folder, headers, expected, required, config.get("architecture", ""))
    state: dict[str, torch.Tensor] = {}
    for path in paths:
        try:
            state |= load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0]}); "
                               "it may be truncated") from None
    return state


def _check_headers(folder: Path, headers: dict[str, TensorInfo], expected: dict[str, dict], required: set[str],
                   architecture: str) -> None:
    owner = {k: next((n for n in sorted(expected, key=len, reverse=True) if k.startswith(key_prefix(n))), None)
             for k in headers}
    unknown = sorted({k.split(".", 1)[0] for k, n in owner.items() if n is None})
    if unknown:
        raise WeightsError(f"{folder} holds tensors of networks that {architecture or 'this architecture'} does not "
                           f"have: {', '.join(unknown)}")
    for name, own in expected.items():
        theirs = {k[len(key_prefix(name)):]: v for k, v in headers.items() if owner[k] == name}
        if not theirs and name not in required:
            continue
        problems = state_mismatches(own, theirs, key_prefix(name))
        if problems:
            raise WeightsError(f"{folder} does not fit the architecture in config.json: " + "; ".join(problems))


def key_prefix(name: str) -> str:
    return f"{name}." if name else ""


def state_mismatches(expected: dict[str, torch.Tensor], given: dict, prefix: str = "",
                     optional: frozenset[str] = frozenset()) -> list[str]:
    """What keeps ``given`` (tensors, or TensorInfo from a header) from loading where ``expected`` is: missing,
    unexpected, misshapen and mistyped tensors, in words."""
    missing = sorted(set(expected) - set(given) - optional)
    unexpected = sorted(set(given) - set(expected))
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in given and tuple(given[k].shape) != tuple(v.shape)]
    dtypes = [f"{k} {_dtype_name(given[k].dtype)} where {_dtype_name(v.dtype)} belongs" for k, v in expected.items()
              if k in given and not _dtype_fits(given[k].dtype, v.dtype)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s) (e.g. {prefix}{missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {prefix}{unexpected[0]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) (e.g. {prefix}{shapes[0]})")
    if dtypes:
        problems.append(f"{len(dtypes)} tensor(s) of the wrong type (e.g. {prefix}{dtypes[0]})")
    return problems


def _dtype_fits(given, expected: torch.dtype) -> bool:
    """Floats load as floats of any width (fp16 exports); integers (step counters) as integers. An int8 weight is
    a quantised or foreign file, not one of ours: cast silently, it would be garbage."""
    if expected.is_floating_point:
        return given in FLOAT_DTYPES
    if expected == torch.bool:
        return given == torch.bool
    return isinstance(given, torch.dtype) and not given.is_floating_point and not given.is_complex \
        and given != torch.bool


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ------------------------------------------------------------------------------------------------ writing
def write_folder(folder: Path, state: dict[str, torch.Tensor], config: dict, card: str | None = None,
                 dtype: torch.dtype | None = None, max_shard_bytes: int | None = None) -> dict:
    """Write a model folder in the Hub layout: weights (maybe cast and sharded), config.json with each file's sha256,
    and the card. Returns the config as written. Every file is written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().to("cpu").contiguous()
             for k, v in state.items()}
    for old in list(folder.glob("*.safetensors")) + list(folder.glob(hub.INDEX_NAME)):
        old.unlink()
    shards = _shard(state, max_shard_bytes)
    files = {}
    meta = {"architecture": config.get("architecture", "")}
    for shard_name, keys in shards.items():
        part = {k: state[k] for k in keys}
        atomic_write(folder / shard_name, lambda f, part=part: f.write(_safetensors_bytes(part, meta)))
        files[shard_name] = {"sha256": hub.sha256_file(folder / shard_name), "bytes": (folder / shard_name).stat().st_size}
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                 "weight_map": {k: name for name, keys in shards.items() for k in keys}}
        atomic_write(folder / hub.INDEX_NAME, lambda f: f.write((json.dumps(index, indent=2) + "\n").encode()))
    config = dict(config)
    config["files"] = files
    config["dtype"] = str(dtype or torch.float32).removeprefix("torch.")
    atomic_write(folder / hub.CONFIG_NAME, lambda f: f.write((json.dumps(config, indent=2) + "\n").encode()))
    if card is not None:
        atomic_write(folder / hub.CARD_NAME, lambda f: f.write(card.encode()))
    return config


def _shard(state: dict[str, torch.Tensor], max_bytes: int | None) -> dict[str, list[str]]:
    """Greedy split of the tensors, in key order, into files of at most ``max_bytes`` (one tensor may exceed it)."""
    total = sum(t.numel() * t.element_size() for t in state.values())
    if not max_bytes or total <= max_bytes:
        return {hub.WEIGHTS_NAME: list(state)}
    groups, current, size = [], [], 0
    for k, t in state.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(k)
        size += nbytes
    groups.append(current)
    n = len(groups)
    return {f"model-{i + 1:05d}-of-{n:05d}.safetensors": g for i, g in enumerate(groups)}


def _safetensors_bytes(state: dict, metadata: dict) -> bytes:
    """safetensors bytes with the header's keys sorted. safetensors writes ``__metadata__`` from a hash map, in an
    order that changes run to run: the same tensors would give another file and another sha256 each export."""
    from safetensors.torch import save

    blob = save(state, metadata={"format": "pt", **{k: str(v) for k, v in metadata.items()}})
    n = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data stays 8-byte aligned, as safetensors pads it
    return len(header).to_bytes(8, "little") + header + blob[8 + n:]
