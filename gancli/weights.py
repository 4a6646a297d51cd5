"""Model weights on disk: safetensors files (never pickles) checked against the sha256 in config.json, written in
the Hub layout (maybe fp16, maybe sharded), and loaded into networks with strict key and shape checks.

Published ``.pth`` checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers only.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from gancli import hub
from gancli.imageio import atomic_write


class WeightsError(ValueError):
    """Weights that are missing, corrupt, or do not fit the architecture in config.json."""


def read_weights(folder: Path, config: dict) -> dict[str, torch.Tensor]:
    """All tensors of a model folder (one file, or shards listed in the index), each file checked against its sha256."""
    index = folder / hub.INDEX_NAME
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as e:
            raise WeightsError(f"{index} is not a valid shard index ({e})") from None
    elif (folder / hub.WEIGHTS_NAME).is_file():
        names = [hub.WEIGHTS_NAME]
    else:
        raise WeightsError(f"{folder} has no {hub.WEIGHTS_NAME}")
    recorded = config.get("files") or {}
    state: dict[str, torch.Tensor] = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path} is missing (listed in {hub.INDEX_NAME})")
        expected = recorded.get(name, {}).get("sha256")
        if expected:
            actual = hub.sha256_file(path)
            if actual != expected:
                raise WeightsError(f"{path} is corrupt or was changed: sha256 {actual[:12]}… does not match "
                                   f"{expected[:12]}… recorded in config.json (delete it and download again)")
        try:
            state |= load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0]}); "
                               "it may be truncated") from None
    return state


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


def state_mismatches(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], prefix: str = "",
                     optional: frozenset[str] = frozenset()) -> list[str]:
    """What keeps ``given`` from loading where ``expected`` is: missing, unexpected and misshapen tensors, in words."""
    missing = sorted(set(expected) - set(given) - optional)
    unexpected = sorted(set(given) - set(expected))
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in given and given[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s) (e.g. {prefix}{missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {prefix}{unexpected[0]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) (e.g. {prefix}{shapes[0]})")
    return problems


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, source) -> None:
    own = module.state_dict()
    theirs = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    problems = state_mismatches(own, theirs, prefix)
    if problems:
        raise WeightsError(f"{source} does not fit the architecture in config.json: " + "; ".join(problems))
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in theirs.items()}, strict=True)


def _safetensors_bytes(state: dict, metadata: dict) -> bytes:
    from safetensors.torch import save

    return save(state, metadata={"format": "pt", **{k: str(v) for k, v in metadata.items()}})


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"{path} holds Python objects beyond tensors and plain containers; refusing to "
                           "unpickle it (torch.load with weights_only=True rejected it)") from None
    except Exception as e:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    for key in ("state_dict", "model", "netG", "generator"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel prefixes
