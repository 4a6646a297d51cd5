"""Where a model name points: a local folder, a bundled zoo entry, or a Hugging Face Hub repository.

Every model, wherever it comes from, is one folder in the Hub layout: ``config.json``, ``README.md`` (the model
card) and ``model.safetensors``. Resolution order for ``NAME``:

1. a local directory in that layout (a training run's ``export/``, or the run directory itself);
2. a zoo entry bundled with the package (``gancli/zoo/NAME``); an entry whose config names a ``hub`` repository but
   ships no weights fetches them from there;
3. ``owner/repo`` or ``owner/repo@revision`` on the Hub, through huggingface_hub's cache (``HF_HOME``,
   ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` are honoured).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from gancli.errors import UnknownNameError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
CARD_NAME = "README.md"
HUB_FILES = [CONFIG_NAME, CARD_NAME, "*.safetensors", "*.safetensors.index.json"]
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+(@[\w./-]+)?$")


class ModelNotFoundError(LookupError):
    pass


class HubError(RuntimeError):
    pass


@dataclass
class Resolved:
    name: str
    path: Path
    source: str  # "local", "bundled", "hub"
    repo_id: str | None = None
    revision: str | None = None


def zoo_dir() -> Path:
    """The bundled zoo: inside the installed package, or at the top of a source checkout (editable installs)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "zoo", package.parent / "zoo"):
        if candidate.is_dir():
            return candidate
    return package / "zoo"


def zoo_names() -> list[str]:
    d = zoo_dir()
    return sorted(p.name for p in d.iterdir() if (p / CONFIG_NAME).is_file()) if d.is_dir() else []


MAX_JSON_BYTES = 4 << 20  # a config.json or shard index is a few KiB; a bigger one is not ours


def read_json(path: Path) -> dict:
    """A JSON object from a model folder, which is untrusted: bounded in size and nesting, an object at the top."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{path} has {size:,} bytes, more than the {MAX_JSON_BYTES:,} a model's JSON file may have")
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a model's JSON file") from None
    if not isinstance(data, dict):  # every reader does .get(...): a list or a number is no config
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        raise ValueError(f"{path} holds {kind}, not a JSON object: a model's {path.name} must hold a JSON object")
    return data


def read_config(folder: Path) -> dict:
    path = Path(folder) / CONFIG_NAME
    try:
        return read_json(path)
    except FileNotFoundError:
        raise ModelNotFoundError(f"{folder} has no {CONFIG_NAME}: not a model folder") from None
    except ValueError as e:
        raise ModelNotFoundError(str(e)) from None


def resolve(name: str) -> Resolved:
    name = str(name)
    local = Path(name).expanduser()
    if local.is_dir():
        for folder in (local, local / "export"):
            if (folder / CONFIG_NAME).is_file():
                return Resolved(name, folder, "local")
        raise ModelNotFoundError(f"{local} is a folder but holds no {CONFIG_NAME} (nor export/{CONFIG_NAME}): "
                                 "not a model folder or training run")
    if local.exists():
        raise ModelNotFoundError(f"{local} is a file; a model is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    if looks_like_path(name):  # not a zoo name nor a Hub id: say so rather than ask the Hub about "./runs/x"
        raise ModelNotFoundError(_no_such_folder(name, local))

    bundled = zoo_dir() / name
    if "/" not in name and (bundled / CONFIG_NAME).is_file():
        cfg = read_config(bundled)
        hub = cfg.get("hub") or {}
        if not has_weights(bundled) and hub.get("repo"):
            path = download(hub["repo"], hub.get("revision"), hub.get("config_sha256"))
            return Resolved(name, path, "hub", hub["repo"], hub.get("revision"))
        return Resolved(name, bundled, "bundled")

    if REPO_ID.match(name):
        repo_id, _, revision = name.partition("@")
        return Resolved(name, download(repo_id, revision or None), "hub", repo_id, revision or None)

    planned = planned_entries()
    if name in planned:
        why = planned[name].get("why")
        raise ModelNotFoundError(f"{name} is documented but not in the zoo yet" + (f" ({why})" if why else "")
                                 + f": {planned[name]['instead']}")
    raise UnknownNameError("model", name, zoo_names() + sorted(planned))


def looks_like_path(name: str) -> bool:
    """A name that can only be a filesystem path: ./x, ../x, /x, ~/x, x/, a/b/c (a Hub id is exactly owner/repo),
    or runs/x where runs/ is a local folder (a mistyped run, not a Hub repository owned by "runs")."""
    seps = {os.sep, os.altsep or os.sep}
    return (name.startswith(("./", "../", "/", "~")) or name in (".", "..") or name.endswith(tuple(seps))
            or any(s in name for s in seps - {"/"}) or ("/" in name and not REPO_ID.match(name))
            or ("/" in name and Path(name.split("/")[0]).is_dir()))


def _no_such_folder(name: str, local: Path) -> str:
    """"no such folder", and the zoo entry the user may have meant (``./dcgan-mnist`` for ``dcgan-mnist``)."""
    known = zoo_names()
    close = [local.name] if local.name in known else difflib.get_close_matches(local.name, known, n=2, cutoff=0.8)
    hint = f" (zoo names take no path: did you mean {' or '.join(close)}?)" if close else ""
    return f"no such folder: {name}{hint}"


def planned_entries() -> dict[str, dict]:
    """Zoo entries the docs already show but that are not published yet, each with what to do instead: data
    (zoo/planned.json), so that publishing a model means deleting its entry there, not editing code."""
    try:
        table = json.loads((zoo_dir() / "planned.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: v for k, v in table.items() if isinstance(v, dict) and v.get("instead")} \
        if isinstance(table, dict) else {}


def has_weights(folder: Path) -> bool:
    return any(Path(folder).glob("*.safetensors"))


def _cache_dir() -> str | None:
    # Read at call time (huggingface_hub reads these once, at import).
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def network_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub raises when it cannot talk to the Hub: OSError, its HTTP errors, and the transport errors
    of whichever HTTP library it was built on (httpx, httpx2 or requests: a ConnectError is none of the others). Read
    from sys.modules: the failing call has imported its library, and importing one it does not use costs time."""
    from huggingface_hub import errors as hf_errors

    found: list[type[BaseException]] = [OSError, hf_errors.HfHubHTTPError]
    for module, name in (("httpx", "TransportError"), ("httpx2", "TransportError"), ("requests", "RequestException")):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def download(repo_id: str, revision: str | None = None, config_sha256: str | None = None) -> Path:
    """Fetch (or find in the cache) the model files of a Hub repository; return the snapshot folder.

    ``config_sha256`` (a zoo entry's pin): the sha256 that the repository's config.json must have. config.json
    records the weights' sha256s, so this one hash pins every file that is loaded."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import snapshot_download

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        path = snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES, cache_dir=_cache_dir(),
                                 local_files_only=offline(), token=os.environ.get("HF_TOKEN") or None,
                                 library_name="gancli")
    except hf_errors.RepositoryNotFoundError:
        raise HubError(f"Hub repository {repo_id!r} was not found (or is private: set HF_TOKEN)") from None
    except hf_errors.RevisionNotFoundError:
        raise HubError(f"revision {revision!r} of {repo_id!r} was not found on the Hub") from None
    except hf_errors.LocalEntryNotFoundError:
        if offline():
            raise HubError(f"{where} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                           "download it once while online, or unset HF_HUB_OFFLINE") from None
        raise HubError(f"could not download {where}: the Hugging Face Hub is unreachable and the model is not "
                       "cached (check the network, or set HF_HUB_OFFLINE=1 to use the cache only)") from None
    except network_errors() as e:
        raise HubError(f"could not download {where} from the Hugging Face Hub: {first_line(e)}") from None
    if config_sha256:
        verify_pin(Path(path) / CONFIG_NAME, config_sha256, where)
    return Path(path)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def verify_pin(config: Path, expected: str, where: str) -> None:
    actual = sha256_file(config) if config.is_file() else "missing"
    if actual != expected.lower():
        raise HubError(f"{where}: {CONFIG_NAME} has sha256 {actual[:12]}…, not the {expected[:12]}… the zoo entry "
                       "pins: the repository changed or the cache is damaged (delete the cached copy and download "
                       "again; for a newer model, update the package)")


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of a Hub repository, if the cache holds its weights; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, CONFIG_NAME, cache_dir=_cache_dir(), revision=revision)
    if isinstance(hit, str) and has_weights(Path(hit).parent):
        return Path(hit).parent
    return None


def weights_location(name: str) -> str:
    """For ``gan list``: bundled (ships with the package), cached (in the HF cache) or hub (downloaded on first use)."""
    folder = zoo_dir() / name
    if has_weights(folder):
        return "bundled"
    hub = read_config(folder).get("hub") or {}
    if hub.get("repo") and cached_snapshot(hub["repo"], hub.get("revision")):
        return "cached"
    return "hub" if hub.get("repo") else "missing"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
