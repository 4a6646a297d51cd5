"""config.json of a model folder, untrusted input: ``check_config`` (the keys every model needs, with their JSON
types and ranges) and ``check_arguments`` (``arch_args`` against the architecture's builder), with the limits a
folder may ask of this machine. ``WeightsError`` is defined here, the first of the weights modules: every part of
``gancli.store.weights`` raises it.
"""
from __future__ import annotations

import inspect
import math
from pathlib import PurePosixPath, PureWindowsPath


class WeightsError(ValueError):
    """Weights that are missing, corrupt, or do not fit the architecture in config.json; a config.json that
    describes no buildable network."""


# What a model folder may ask of this machine. A folder is untrusted input (from the Hub, or anywhere): every number
# in it is checked against these before anything is built, read or allocated.
MAX_INT = 8192                 # any integer architecture argument: a width, a size, a count
MAX_LIST = 64                  # list arguments (an MLP's hidden layers)
MAX_MODULES = 5000             # layers a config may imply: building more is a stall even on the meta device
MAX_PARAMETERS = 2_000_000_000


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
    check_files(config.get("files"), where)


def check_files(files, where) -> None:
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


def plain_name(name) -> bool:
    """A file name of the folder itself: no directory part (either slash), not hidden, no drive."""
    return (isinstance(name, str) and bool(name) and name == PurePosixPath(name).name
            and name == PureWindowsPath(name).name and not name.startswith("."))
