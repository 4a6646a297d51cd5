"""The real images' features that ``gan eval`` computes, kept on disk between runs.

Embedding 10,000 real test images costs more than sampling a small model, and every model evaluated against the
same data needs the same numbers. They are stored as safetensors (never a pickle) under a key that names everything
they depend on (the data files' sizes and times, the draw, the judge's weights, the device); the key is written in
the file's metadata and compared on every read, so a changed judge or data set can never bring back stale features.
A file that cannot be read, whose tensors have other shapes than expected or whose bytes do not match the sha256
it was written with, is ignored and rebuilt: the cache folder is input like any other. Writes go through a temporary file and a rename, so two evaluations at once leave
one whole file, never a mixture.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

FORMAT = 1  # bump when what a cache entry holds changes: older entries then miss


def cache_dir() -> Path:
    """``$GAN_CACHE``, else ``$XDG_CACHE_HOME/gancli``, else ``~/.cache/gancli``."""
    if os.environ.get("GAN_CACHE"):
        return Path(os.environ["GAN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gancli"


def files_digest(paths: list[Path], root: Path) -> str:
    """Name, size and modification time of each file: what changes when a file is replaced or edited, at the cost of
    one stat per file (hashing 10,000 PNGs would cost what the cache saves)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a network's weights as loaded (names, dtypes, shapes, bytes): for judges whose config.json records no
    file checksums, and for the Inception network."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _canonical(key: dict) -> str:
    return json.dumps({"format": FORMAT} | key, sort_keys=True, separators=(",", ":"))


def entry_path(key: dict) -> Path:
    return cache_dir() / "references" / f"{hashlib.sha256(_canonical(key).encode()).hexdigest()[:32]}.safetensors"


def load(key: dict, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> tuple[dict, dict] | None:
    """(tensors, metadata) stored under ``key`` if the entry is whole and holds exactly ``shapes`` ({name: (shape,
    dtype)}); None otherwise, and the caller computes them again."""
    from safetensors import safe_open

    path = entry_path(key)
    if not path.is_file():
        return None
    try:  # the header is checked (key, names, shapes, dtypes) before any tensor is read
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("key") != _canonical(key) or set(f.keys()) != set(shapes):
                return None
            for name, (shape, dtype) in shapes.items():
                if tuple(f.get_slice(name).get_shape()) != tuple(shape):
                    return None
            tensors = {name: f.get_tensor(name) for name in shapes}
    except Exception:  # truncated, corrupt, unreadable: rebuilt, never a crash
        return None
    if any(t.dtype != shapes[name][1] for name, t in tensors.items()):
        return None
    if meta.get("tensors_sha256") != tensors_digest(tensors):  # a flipped bit in a label would crash a histogram
        return None
    return tensors, meta


def save(key: dict, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> str | None:
    """Store ``tensors`` under ``key`` (and the key as JSON beside them, for people); the reason it could not be
    written (a read-only or full disk), or None. A cache that cannot be written never fails an evaluation."""
    from safetensors.torch import save as to_bytes

    from gancli.data.imageio import atomic_write

    path = entry_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = to_bytes({k: v.contiguous() for k, v in tensors.items()},
                        metadata={"key": _canonical(key), "tensors_sha256": tensors_digest(tensors)} | (meta or {}))
        atomic_write(path, lambda f: f.write(blob))
        atomic_write(path.with_suffix(".json"),
                     lambda f: f.write((json.dumps(json.loads(_canonical(key)), indent=2) + "\n").encode()))
    except OSError as e:
        return f"the real images' features were not cached ({e})"
    return None
