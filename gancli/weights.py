"""Model weights on disk: safetensors files (never pickles) checked against the sha256 in config.json, written in
the Hub layout (maybe fp16, maybe sharded, byte-for-byte reproducible), and loaded into networks with strict key,
shape and dtype checks.

A model folder is untrusted input (see docs/weights.md): config.json is validated against the architecture's
schema and limits, the networks are built on the meta device to size them, and the files' headers are checked
against them before any tensor is read or any memory allocated.

Published ``.pth`` checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers only.
"""
from __future__ import annotations

import inspect
import json
import math
import pickle
import threading
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.nn.modules.module import (register_module_buffer_registration_hook,
                                     register_module_module_registration_hook,
                                     register_module_parameter_registration_hook)

from gancli import hub
from gancli.imageio import atomic_write


class WeightsError(ValueError):
    """Weights that are missing, corrupt, or do not fit the architecture in config.json; a config.json that
    describes no buildable network."""


# What a model folder may ask of this machine. A folder is untrusted input (from the Hub, or anywhere): every number
# in it is checked against these before anything is built, read or allocated.
MAX_INT = 8192                 # any integer architecture argument: a width, a size, a count
MAX_LIST = 64                  # list arguments (an MLP's hidden layers)
MAX_MODULES = 5000             # layers a config may imply: building more is a stall even on the meta device
MAX_PARAMETERS = 2_000_000_000
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_SAFETENSORS_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
                       "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16, "I32": torch.int32,
                       "I64": torch.int64, "BOOL": torch.bool}


class TensorInfo(NamedTuple):
    """A tensor as a safetensors header describes it: enough to check it against a network without reading it."""
    shape: tuple[int, ...]
    dtype: torch.dtype | str  # a str: a type torch cannot hold here (F8_E5M2, say)


# ------------------------------------------------------------------------------------------------ config.json
def check_config(config: dict, where) -> None:
    """The keys every model needs, with the JSON types and ranges the code relies on. ``where``: the config's path."""
    if not isinstance(config, dict):
        raise WeightsError(f"{where} must be a JSON object, not {_json_type(config)}")
    for key in ("architecture", "image_size", "channels"):
        if key not in config:
            raise WeightsError(f"{where} lacks the required key {key!r}")
    if not isinstance(config["architecture"], str) or not config["architecture"]:
        raise WeightsError(f"{where}: architecture must be a name, not {_json_type(config['architecture'])}")
    args = config.get("arch_args", {})
    if not isinstance(args, dict):
        raise WeightsError(f"{where}: arch_args must be a JSON object of the builder's arguments, not "
                           f"{_json_type(args)}")
    _check_int(config["image_size"], "image_size", where)
    _check_int(config["channels"], "channels", where)
    if config.get("latent_dim") is not None:
        _check_int(config["latent_dim"], "latent_dim", where, low=0)
    for key in ("image_size", "channels", "latent_dim"):  # the sampler goes by these, the networks by arch_args
        if key in args and config.get(key) is not None and args[key] != config[key]:
            raise WeightsError(f"{where}: {key} is {config[key]!r} but arch_args.{key} is {args[key]!r}")
    for key in ("class_names", "domains"):
        value = config.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise WeightsError(f"{where}: {key} must be a list of names, not {_json_type(value)}")
    _check_files(config.get("files"), where)


def _check_files(files, where) -> None:
    if files is None:
        return
    if not isinstance(files, dict):
        raise WeightsError(f"{where}: files must map each weights file to its sha256 and bytes, not "
                           f"{_json_type(files)}")
    for name, entry in files.items():
        if not plain_name(name):
            raise WeightsError(f"{where}: files names {name!r}: weights files sit in the model folder itself")
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise WeightsError(f"{where}: files.{name} must hold a sha256 (64 hex digits)")
        if "bytes" in entry:
            _check_int(entry["bytes"], f"files.{name}.bytes", where, low=0, high=None)


def _check_int(value, name: str, where, low: int = 1, high: int | None = MAX_INT) -> None:
    if type(value) is not int:  # bool is an int to Python, 28.0 an int to nobody here
        raise WeightsError(f"{where}: {name} must be a whole number, not {_json_type(value)} {value!r}"[:200])
    if value < low or (high is not None and value > high):
        raise WeightsError(f"{where}: {name} is {value}; it must be " + (f"from {low} to {high}" if high is not None
                                                                             else f"at least {low}"))


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def check_arguments(builder, args: dict, where, architecture: str = "") -> dict:
    """``arch_args`` against the builder's signature, the architecture's schema: only its argument names, the
    required ones present, each of the type its annotation (or default) says; integers positive (or zero where the
    default is zero) and at most MAX_INT, lists at most MAX_LIST long."""
    params = {n: p for n, p in inspect.signature(builder).parameters.items()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    what = f"{where}: arch_args" + (f" of {architecture}" if architecture else "")
    unknown = sorted(set(args) - set(params))
    if unknown:
        raise WeightsError(f"{what} has unknown argument(s) {', '.join(unknown)} (it takes: {', '.join(params)})")
    missing = [n for n, p in params.items() if p.default is p.empty and n not in args]
    if missing:
        raise WeightsError(f"{what} lacks the required argument(s) {', '.join(missing)}")
    for name, value in args.items():
        _check_argument(value, name, params[name], what)
    return dict(args)


_ANNOTATIONS = {"int": (int, None), "float": (float, None), "str": (str, None), "bool": (bool, None),
                "list[int]": (list, int), "list[str]": (list, str), "list[float]": (list, float)}


def _expected_type(param: inspect.Parameter) -> tuple[type, type | None] | None:
    """(type, element type) from the annotation, else from the default; None when neither says."""
    ann = param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", "")
    if ann in _ANNOTATIONS:
        return _ANNOTATIONS[ann]
    default = param.default
    if isinstance(default, (list, tuple)):
        return list, (type(default[0]) if default else None)
    if default is param.empty or default is None:
        return None
    return type(default), None


def _check_argument(value, name: str, param: inspect.Parameter, what: str) -> None:
    expected = _expected_type(param)
    if expected is None or (value is None and param.default is None):
        return
    kind, element = expected
    low = 0 if param.default == 0 and type(param.default) is int else 1
    if kind is list:
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise WeightsError(f"{what}: {name} must be a list of at most {MAX_LIST} values, not "
                               f"{_json_type(value)}")
        for i, v in enumerate(value):
            if element is not None:
                _check_scalar(v, f"{name}[{i}]", element, 1, what)
        return
    _check_scalar(value, name, kind, low, what)


def _check_scalar(value, name: str, kind: type, low: int, what: str) -> None:
    if kind is int:
        _check_int(value, name, what, low=low)
    elif kind is float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise WeightsError(f"{what}: {name} must be a finite number, not {value!r}"[:200])
    elif kind is str:
        if not isinstance(value, str) or len(value) > 100:
            raise WeightsError(f"{what}: {name} must be a short string, not {_json_type(value)}")
    elif not isinstance(value, kind):
        raise WeightsError(f"{what}: {name} must be {kind.__name__}, not {_json_type(value)}")


# ------------------------------------------------------------------------------------------------ building
def build_on_meta(builder, args: dict, where, architecture: str = "") -> dict[str, nn.Module]:
    """The networks a config implies, built on the meta device: shapes and counts, no memory. Refuses, while
    building, more than MAX_MODULES layers or MAX_PARAMETERS tensors' elements."""
    try:
        with torch.device("meta"), _MetaShortcuts(), _build_limits(where):
            nets = builder(**args)
    except WeightsError:
        raise
    except (TypeError, ValueError, RuntimeError, ArithmeticError, IndexError, KeyError) as e:
        raise WeightsError(f"{where}: arch_args do not build a {architecture or 'network'} "
                           f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"[:400]) from None
    total = sum(t.numel() for net in nets.values() for t in net.state_dict().values())
    if total > MAX_PARAMETERS:
        raise WeightsError(_too_many(where, total))
    return nets


def _too_many(where, count: int) -> str:
    return (f"{where}: arch_args imply {count:,} parameters, more than the {MAX_PARAMETERS:,} a model may have "
            "here; refusing to build it")


class _MetaShortcuts(TorchFunctionMode):
    """Shapes without the cost: on the meta device, torch runs random initialisation and arithmetic through Python
    reference ops whose first use imports torch._dynamo (3 s, every load). A build only needs shapes, so random
    fills are skipped and random factories and scalar arithmetic return empty tensors of the right shape. Any other
    operation runs as usual: correct, only slower."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else kwargs.get("tensor")
        if func in _RANDOM_FILLS and getattr(first, "is_meta", False):
            return first
        if func in _RANDOM_FACTORIES and "out" not in kwargs:
            size = kwargs.get("size", args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size))
                              else args)
            return torch.empty(size, dtype=kwargs.get("dtype"), device="meta")
        if func in _SCALAR_ARITHMETIC and len(args) == 2 and not kwargs and getattr(first, "is_meta", False) \
                and isinstance(args[1], (int, float)):
            return torch.empty(first.shape, dtype=torch.result_type(first, args[1]), device="meta")
        if func is torch.norm_except_dim and getattr(first, "is_meta", False):  # weight norm's g
            dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
            shape = [] if dim == -1 else [n if i == dim else 1 for i, n in enumerate(first.shape)]
            return torch.empty(shape, dtype=first.dtype, device="meta")
        return func(*args, **kwargs)


_RANDOM_FILLS = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.random_, torch.Tensor.bernoulli_,
                 torch.Tensor.exponential_, torch.Tensor.log_normal_, torch.Tensor.cauchy_, torch.Tensor.geometric_,
                 nn.init.normal_, nn.init.uniform_, nn.init.trunc_normal_, nn.init.orthogonal_, nn.init.sparse_,
                 nn.init.kaiming_normal_, nn.init.kaiming_uniform_, nn.init.xavier_normal_, nn.init.xavier_uniform_}
_RANDOM_FACTORIES = {torch.randn, torch.rand}
_SCALAR_ARITHMETIC = {torch.Tensor.div, torch.Tensor.mul, torch.Tensor.add, torch.Tensor.sub, torch.Tensor.__truediv__,
                      torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.__add__, torch.Tensor.__radd__,
                      torch.Tensor.__sub__, torch.div, torch.mul, torch.add, torch.sub}


@contextmanager
def _build_limits(where):
    """Count layers and tensor elements as the builder registers them (this thread's only), and stop it early."""
    me, counts = threading.get_ident(), {"modules": 0, "elements": 0}

    def on_module(module, name, sub):
        if threading.get_ident() == me and sub is not None:
            counts["modules"] += 1
            if counts["modules"] > MAX_MODULES:
                raise WeightsError(f"{where}: arch_args imply more than {MAX_MODULES:,} layers; refusing to build them")

    def on_tensor(module, name, tensor):
        if threading.get_ident() == me and tensor is not None:
            counts["elements"] += tensor.numel()
            if counts["elements"] > MAX_PARAMETERS:  # shared or re-registered tensors count twice: an upper bound
                raise WeightsError(_too_many(where, counts["elements"]))

    handles = [register_module_module_registration_hook(on_module),
               register_module_parameter_registration_hook(on_tensor),
               register_module_buffer_registration_hook(on_tensor)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def load_networks(folder: Path, config: dict, builder, required: set[str], schema=None) -> dict[str, nn.Module]:
    """The networks of a model folder, each step checked before the next costs anything: the config (types,
    ranges), the architecture's size (built on the meta device), the files' sizes and checksums, their headers
    (names, shapes, dtypes) against the networks, and only then the tensors (all finite) and the real networks.

    ``builder(**arch_args)`` returns {name: network}; a network's tensors are ``name.*`` in the files (all of them
    for the name ""). Networks the files do not hold are left out, unless ``required``. ``schema``: what defines
    the arguments, when not the builder itself."""
    folder = Path(folder)
    where = folder / hub.CONFIG_NAME
    check_config(config, where)
    architecture = config["architecture"]
    args = check_arguments(schema or builder, config.get("arch_args", {}), where, architecture)
    layout = build_on_meta(builder, args, where, architecture)
    state = read_weights(folder, config, {n: net.state_dict() for n, net in layout.items()}, required)
    nets = builder(**args)
    for name in list(nets):
        if name in required or any(k.startswith(_prefix(name)) for k in state):
            load_strict(nets[name], state, _prefix(name), folder)
        else:
            del nets[name]
    return nets


def _prefix(name: str) -> str:
    return f"{name}." if name else ""


# ------------------------------------------------------------------------------------------------ reading
def plain_name(name) -> bool:
    """A file name of the folder itself: no directory part (either slash), not hidden, no drive."""
    return (isinstance(name, str) and bool(name) and name == PurePosixPath(name).name
            and name == PureWindowsPath(name).name and not name.startswith("."))


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
    _check_files(config.get("files"), folder / hub.CONFIG_NAME)
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
    owner = {k: next((n for n in sorted(expected, key=len, reverse=True) if k.startswith(_prefix(n))), None)
             for k in headers}
    unknown = sorted({k.split(".", 1)[0] for k, n in owner.items() if n is None})
    if unknown:
        raise WeightsError(f"{folder} holds tensors of networks that {architecture or 'this architecture'} does not "
                           f"have: {', '.join(unknown)}")
    for name, own in expected.items():
        theirs = {k[len(_prefix(name)):]: v for k, v in headers.items() if owner[k] == name}
        if not theirs and name not in required:
            continue
        problems = state_mismatches(own, theirs, _prefix(name))
        if problems:
            raise WeightsError(f"{folder} does not fit the architecture in config.json: " + "; ".join(problems))


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


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, source) -> None:
    own = module.state_dict()
    theirs = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    problems = state_mismatches(own, theirs, prefix)
    if problems:
        raise WeightsError(f"{source} does not fit the architecture in config.json: " + "; ".join(problems))
    bad = sorted(k for k, v in theirs.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise WeightsError(f"{source} holds NaN or infinite values in {len(bad)} tensor(s) (e.g. {prefix}{bad[0]}): "
                           "the model diverged or the file is damaged")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in theirs.items()}, strict=True)


def _safetensors_bytes(state: dict, metadata: dict) -> bytes:
    """safetensors bytes with the header's keys sorted. safetensors writes ``__metadata__`` from a hash map, in an
    order that changes run to run: the same tensors would give another file and another sha256 each export."""
    from safetensors.torch import save

    blob = save(state, metadata={"format": "pt", **{k: str(v) for k, v in metadata.items()}})
    n = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data stays 8-byte aligned, as safetensors pads it
    return len(header).to_bytes(8, "little") + header + blob[8 + n:]


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
