"""Tensors <-> pictures: grids, captions, single files and animations."""
from __future__ import annotations

import errno
import io
import math
import os
import sys
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


SCREEN = 768  # the longer side, in pixels, a grid is enlarged to by default: comfortable on a screen
MOST = 4        # ... by at most this many times (a large grid is left as it is)


def enlarge(img: Image.Image, scale: int | None = None) -> Image.Image:
    """A picture enlarged ``scale`` times by nearest neighbour, so every pixel stays true (a grid of 28 px digits is
    242 px wide, small on a screen); without a scale, enough for about SCREEN px, at most MOST times."""
    if scale is None:
        scale = max(1, min(MOST, SCREEN // max(img.size)))
    return img if scale == 1 else img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def is_stream(path: str | Path) -> bool:
    """A device or a pipe (``/dev/null``, ``/dev/stdout``, ``-``, a FIFO): written into as a stream, never replaced,
    and named without an extension."""
    import stat

    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return str(path).startswith("/dev/")
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def output_format(path: str | Path, fmt: str | None = None, formats: tuple[str, ...] = ("png", "jpg", "webp"),
                  option: str = "-o", has_format_option: bool = False) -> str:
    """The one rule for the format of every command's output file, checked before any work: the extension says it
    (one of ``formats``; .jpeg is .jpg); a --format, where the command has one, must agree with it or stands in for
    a missing one; a device or pipe (/dev/null, /dev/stdout) needs none and gets the first of ``formats``; a file
    name without an extension is refused, never silently written as PNG."""
    same = lambda f: f.lower().replace("jpeg", "jpg")
    ends = ", ".join(f".{f}" for f in formats[:-1]) + f" or .{formats[-1]}" if len(formats) > 1 else f".{formats[0]}"
    if fmt is not None and same(fmt) not in formats:
        raise ValueError(f"unsupported --format {fmt!r}: use {', '.join(formats)}")
    ext = same(Path(path).suffix.lstrip("."))
    if ext and ext not in formats:
        raise ValueError(f"{option} {path}: .{Path(path).suffix.lstrip('.')} is not a format this command writes: "
                         f"end it in {ends}")
    if fmt is not None and ext and same(fmt) != ext:
        raise ValueError(f"--format {fmt} does not match the extension of {Path(path).name}")
    if ext or fmt is not None:
        return ext or same(fmt)
    if is_stream(path):
        return formats[0]
    raise ValueError(f"{option} {path} has no extension: end it in {ends}"
                     + (" (or give --format)" if has_format_option else ""))


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
    atomic_write(path, lambda f: img.save(f, format=IMAGE_FORMATS[fmt], **kwargs), durable=False)


def save_animation(frames: list[Image.Image], path: str | Path, fps: float = 15.0, fmt: str | None = None):
    """Animated GIF or WebP that loops forever (``fmt``, else the extension says which)."""
    path = Path(path)
    ext = "." + (fmt or path.suffix.lower().lstrip("."))
    if ext not in (".gif", ".webp"):
        raise ValueError(f"animations are written as .gif or .webp, not {path.suffix or 'no extension'}")
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only file system, a full disk: one line, as for the write itself
        raise output_error(e, path) from None


class OutputError(OSError, ValueError):
    """An output that cannot be written, said in one line with what to do (``strerror``); ``errno`` is the cause's,
    so a caller can still tell a full disk from a permission."""

    def __str__(self):
        return self.strerror


WHAT_TO_DO = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EACCES: "permission denied: write elsewhere, or make the folder writable",
    errno.EPERM: "not permitted: write elsewhere",
    errno.EROFS: "a read-only file system: write elsewhere",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENXIO: "nothing reads from it (a socket, or a FIFO without a reader): give a file name",
    errno.ENAMETOOLONG: "the name is too long",
}


def output_error(e: OSError, path: Path) -> OutputError:
    why = WHAT_TO_DO.get(e.errno) or (e.strerror or str(e)).lower()
    return OutputError(e.errno, f"cannot write {path}: {why}")


def atomic_write(path: Path, write, durable: bool = True):
    """Every output goes through here, and what the user had at ``path`` is never lost:

    - a regular file (or a new name) is written to a temporary file beside it and renamed over it, so an interrupted
      or failed write leaves the old file (or none), never half of one;
    - a symbolic link is written through: its target gets the content, the link stays;
    - a device, a FIFO or anything else that is not a regular file is written into as a stream (``/dev/stdout``,
      ``/dev/null``), never replaced by a file;
    - ``-`` is standard output.

    ``write(f)`` writes the content into the binary file ``f``. A write that fails raises OutputError: one line.
    The temporary file reaches the disk (fsync) before the rename when ``durable`` (checkpoints, weights) or when
    it replaces a file; a new image need not wait for it (0.6 ms a file here: 6% of translating 260 photos), as a
    crash then loses nothing the user had."""
    if str(path) == "-":
        buffer = io.BytesIO()
        write(buffer)
        sys.stdout.flush()
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return
    path = Path(path)
    if path.is_symlink():  # a link to a file: that file, replaced atomically; to anything else (/dev/stdout's pipe,
        target = Path(os.path.realpath(path))  # a device): opened through the link and streamed into
        path = target if target.is_file() or not target.exists() and target.parent.is_dir() \
            and not str(target).startswith(("/proc/", "/dev/")) else path
    if path.is_dir():
        raise output_error(OSError(errno.EISDIR, "is a folder"), path)
    if path.exists() and not path.is_file() or path.is_symlink():
        buffer = io.BytesIO()  # made whole first: a format that seeks back (or fails half-way) never reaches it
        write(buffer)
        try:
            with open(path, "wb") as f:
                f.write(buffer.getvalue())
        except OSError as e:
            raise output_error(e, path) from None
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    sync = durable or path.exists()
    try:
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            raise output_error(e, path) from None
    finally:
        if tmp.exists():
            tmp.unlink()
