"""Tensors <-> pictures: grids, captions, single files and animations."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in to_uint8(images)]


def grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = -1.0) -> torch.Tensor:
    """Tile (N, C, H, W) into one (C, H', W') picture, ``nrow`` images per row (square-ish by default)."""
    n, c, h, w = images.shape
    nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / nrow)
    out = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value, dtype=images.dtype)
    for k in range(n):
        r, col = divmod(k, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        out[:, y:y + h, x:x + w] = images[k]
    return out


def grid_image(images: torch.Tensor, nrow: int | None = None) -> Image.Image:
    return to_pil(grid(images.detach().float().cpu(), nrow)[None])[0]


def captioned(img: Image.Image, text: str) -> Image.Image:
    """``img`` under a strip of the padding's black with ``text`` in it: the picture's own pixels are not touched,
    only moved down by the strip's height. Text wider than the picture is cut at its edge."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    left, top, right, bottom = ImageDraw.Draw(img).textbbox((0, 0), text, font=font)
    strip = bottom + 4
    out = Image.new(img.mode, (img.width, img.height + strip), 0)
    out.paste(img, (0, strip))
    ImageDraw.Draw(out).text((3, 2), text, fill="white" if img.mode == "RGB" else 255, font=font)
    return out


def format_of(path: str | Path, default: str = "png") -> str:
    ext = Path(path).suffix.lower().lstrip(".") or default
    if ext not in IMAGE_FORMATS:
        raise ValueError(f"unsupported image format {ext!r} for {path}: use one of png, jpg, webp")
    return ext


def save_image(img: Image.Image, path: str | Path, fmt: str | None = None):
    path = Path(path)
    fmt = fmt or format_of(path)
    make_parent(path)
    kwargs = {"quality": 95} if fmt in ("jpg", "jpeg", "webp") else {}
    if fmt in ("jpg", "jpeg") and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    atomic_write(path, lambda f: img.save(f, format=IMAGE_FORMATS[fmt], **kwargs))


def save_animation(frames: list[Image.Image], path: str | Path, fps: float = 15.0):
    """Animated GIF or WebP that loops forever."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".gif", ".webp"):
        raise ValueError(f"animations are written as .gif or .webp, not {ext or 'no extension'}")
    if not frames:
        raise ValueError("no frames to write")
    duration = max(1, round(1000 / fps))
    if ext == ".gif":
        # GIF needs a palette; an adaptive one per frame keeps colour models from banding
        frames = [f.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE) if f.mode != "L" else f for f in frames]
        fmt, extra = "GIF", {"disposal": 2}
    else:
        fmt, extra = "WEBP", {"lossless": True}
    make_parent(path)
    atomic_write(path, lambda f: frames[0].save(f, format=fmt, save_all=True, append_images=frames[1:],
                                                duration=duration, loop=0, **extra))


def make_parent(path: Path):
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)


def atomic_write(path: Path, write):
    """Write through a temporary file and rename, so an interrupted write never leaves half a file behind."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        try:
            f = open(tmp, "wb")
        except OSError as e:  # name the file the user asked for, not our temporary one
            raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
        try:
            with f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk: name the file (a failed write() names none)
            if e.filename or not e.errno:
                raise
            raise OSError(e.errno, e.strerror, str(path)) from None
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
