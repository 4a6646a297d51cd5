"""Model weights on disk: safetensors files (never pickles) checked against the sha256 in config.json, written in
the Hub layout (maybe fp16, maybe sharded, byte-for-byte reproducible), and loaded into networks with strict key,
shape and dtype checks.

A model folder is untrusted input (see docs/weights.md): config.json is validated against the architecture's
schema and limits, the networks are built on the meta device to size them, and the files' headers are checked
against them before any tensor is read or any memory allocated.

Published ``.pth`` checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers only.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from gancli.store import hub
from gancli.store.config import (
    MAX_INT,
    MAX_LIST,
    MAX_MODULES,
    MAX_PARAMETERS,
    WeightsError,
    check_arguments,
    check_config,
    plain_name,
)
from gancli.store.files import (
    FLOAT_DTYPES,
    TensorInfo,
    key_prefix,
    read_header,
    read_weights,
    state_mismatches,
    verify_file,
    weight_files,
    write_folder,
)
from gancli.store.meta import build_on_meta

# The parts live in gancli.store.config (config.json, the limits, WeightsError), gancli.store.meta (building on
# the meta device) and gancli.store.files (reading, matching and writing safetensors files); their names stay
# reachable here, where callers import them from.
__all__ = ["FLOAT_DTYPES", "MAX_INT", "MAX_LIST", "MAX_MODULES", "MAX_PARAMETERS", "TensorInfo", "WeightsError",
           "build_on_meta", "check_arguments", "check_config", "load_networks", "load_strict", "plain_name",
           "read_header", "read_state_dict", "read_weights", "state_mismatches", "verify_file", "weight_files",
           "write_folder"]


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
        if name in required or any(k.startswith(key_prefix(name)) for k in state):
            load_strict(nets[name], state, key_prefix(name), folder)
        else:
            del nets[name]
    return nets


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


def checkpoint_problem(e: BaseException) -> str:
    """Why torch.load could not read a file, in words rather than its exception's class name."""
    text = str(e).splitlines()[0][:120] if str(e) else ""
    if isinstance(e, EOFError) or "end of file" in text.lower() or "truncated" in text.lower():
        return "the file ends early"
    if isinstance(e, IsADirectoryError):
        return "it is a folder"
    if "zip archive" in text or "magic number" in text.lower() or "invalid load key" in text.lower():
        return f"not a file torch.save wrote: {text}" if text else "not a file torch.save wrote"
    return text or "a damaged file"


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
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({checkpoint_problem(e)})") from None
    for key in ("state_dict", "model", "netG", "generator"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel prefixes
