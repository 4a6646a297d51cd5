"""Super-resolution of real files of any size, in bounded memory (``gan upscale``).

The network sees one tile at a time, never more than ``tile`` x ``tile`` input pixels. Tiles overlap by the
network's receptive-field radius (``generator.margin``) on every side, and only each tile's centre is kept: an
output pixel depends on no input farther away than that radius, so the tiled result is the untiled one (to float
rounding), without seams. Batch norm runs on its stored statistics, so a tile's content does not change another's.
The output is assembled in a uint8 array; a 2000x2000 input needs the 8000x8000 output (192 MB) and one tile's
activations, not gigabytes.

``scale``: the model's factor (x4), or any smaller one above 1, reached by resampling the model's output (Lanczos);
more than the model's factor is refused (run ``gan upscale`` again on its output for x16).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image

from gancli.data.fileplan import Plan
from gancli.data.imageio import save_image
from gancli.data.reading import header_size, open_image
from gancli.data.tensors import quantize, to_tensor

DEFAULT_TILE = 448  # the trunk's input pixels per side: with a 26-pixel margin, 78% of each tile is kept (faster than
# 320 or 576 on a 1 MP photo here: smaller tiles redo more margin, larger ones leave the cache)
RISE_TILE = 128  # the rise's: its x16 activations of 122 kept pixels a side stay near the cache


def check_scale(model, scale: float | None) -> float:
    """The output's factor: the model's by default; a smaller one above 1; never more."""
    factor = int(model.config["scale"])
    if scale is None:
        return float(factor)
    if not (1 < scale <= factor):
        raise ValueError(f"--scale {scale:g}: {model.config.get('name', 'this model')} upscales x{factor}; give a "
                         f"factor above 1 and at most {factor} (smaller ones resample its output; for more, upscale "
                         "its output again)")
    return float(scale)


def check_tile(generator, tile: int) -> int:
    if tile <= 2 * generator.margin:
        raise ValueError(f"--tile {tile}: tiles must be larger than twice the network's margin of {generator.margin} "
                         f"input pixels (e.g. {DEFAULT_TILE})")
    return tile


def tile_count(height: int, width: int, tile: int, margin: int) -> int:
    """How many tiles ``upscale_tensor`` runs for an image of that size."""
    core = tile - 2 * margin
    return len(range(0, height, core)) * len(range(0, width, core))


def total_tiles(model, p: Plan, tile: int) -> int:
    """The tiles of all jobs, from the files' headers (no decoding), so that one large image's progress shows; a
    file that cannot be opened counts one step (it is skipped)."""
    sizes = (header_size(job.source) for job in p.jobs)
    return sum(tile_count(wh[1], wh[0], tile, model.generator.margin) if wh else 1 for wh in sizes)


@torch.no_grad()
def upscale_tensor(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, factor: int, margin: int,
                   tile: int = DEFAULT_TILE, device: torch.device | str = "cpu",
                   on_tile: Callable[[], None] = lambda: None) -> np.ndarray:
    """One image (C, H, W) in [-1, 1] -> its x``factor`` output as uint8 (H*f, W*f, C), tile by tile."""
    c, h, w = x.shape
    out = np.empty((h * factor, w * factor, c), dtype=np.uint8)
    core = tile - 2 * margin
    for top in range(0, h, core):
        for left in range(0, w, core):
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(h, top + core + margin), min(w, left + core + margin)
            y = net(x[None, :, y0:y1, x0:x1].to(device)).float()[0]
            bottom, right = min(h, top + core), min(w, left + core)
            keep = y[:, (top - y0) * factor:(bottom - y0) * factor, (left - x0) * factor:(right - x0) * factor]
            out[top * factor:bottom * factor, left * factor:right * factor] = \
                quantize(keep).permute(1, 2, 0).cpu().numpy()
            on_tile()
    return out


@torch.inference_mode()
def upscale_staged(staged, x: torch.Tensor, tile: int = DEFAULT_TILE, rise_tile: int = RISE_TILE,
                   device: torch.device | str = "cpu", memory_format=torch.contiguous_format,
                   dtype: torch.dtype | None = None, on_tile: Callable[[], None] = lambda: None) -> np.ndarray:
    """One image (C, H, W) in [-1, 1] -> its x``staged.scale`` output as uint8 (H*f, W*f, C). The trunk runs on
    tiles of ``tile`` input pixels a side (each tile's core, plus the margin its features need); the rise on
    sub-tiles of ``rise_tile`` of each core, with ``rise_margin`` around them: the rise works at up to 16 times the
    pixels, and smaller pieces of it stay in the cache. Every output pixel still sees all of its receptive field,
    so the pixels are the untiled ones. The rise's copy of the input (its bicubic skip) stays NCHW: bicubic
    upsampling of 3 channels runs at half the speed channels-last."""
    c, h, w = x.shape
    factor, margin, r = staged.scale, staged.margin, staged.rise_margin
    out = np.empty((h * factor, w * factor, c), dtype=np.uint8)
    core, sub = tile - 2 * margin, rise_tile - 2 * r

    def piece(t: torch.Tensor, dtype: torch.dtype | None = dtype) -> torch.Tensor:
        return t.to(device, dtype or t.dtype).contiguous(memory_format=memory_format)

    for top in range(0, h, core):
        for left in range(0, w, core):
            bottom, right = min(h, top + core), min(w, left + core)
            fy0, fx0, fy1, fx1 = max(0, top - r), max(0, left - r), min(h, bottom + r), min(w, right + r)
            y0, x0, y1, x1 = max(0, fy0 - margin + r), max(0, fx0 - margin + r), min(h, fy1 + margin - r), \
                min(w, fx1 + margin - r)
            features = staged.trunk(piece(x[None, :, y0:y1, x0:x1]))[..., fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
            for st in range(top, bottom, sub):
                for sl in range(left, right, sub):
                    sb, sr = min(bottom, st + sub), min(right, sl + sub)
                    ry0, rx0, ry1, rx1 = max(0, st - r), max(0, sl - r), min(h, sb + r), min(w, sr + r)
                    edges = (ry0 == 0, ry1 == h, rx0 == 0, rx1 == w)  # the sides of it that are the image's
                    y = staged.rise(features[..., ry0 - fy0:ry1 - fy0, rx0 - fx0:rx1 - fx0],
                                    x[None, :, ry0:ry1, rx0:rx1].to(device, torch.float32).contiguous(), edges)[0]
                    keep = y[:, (st - ry0) * factor:(sb - ry0) * factor, (sl - rx0) * factor:(sr - rx0) * factor]
                    out[st * factor:sb * factor, sl * factor:sr * factor] = \
                        quantize(keep.float()).permute(1, 2, 0).cpu().numpy()
            on_tile()
    return out


def upscale_image(model, image: Image.Image, scale: float | None = None, tile: int = DEFAULT_TILE,
                  on_tile: Callable[[], None] = lambda: None) -> Image.Image:
    """A PIL image, upscaled by ``scale`` (default: the model's factor); ``on_tile`` is called after each tile."""
    scale = check_scale(model, scale)
    check_tile(model.generator, tile)
    x = to_tensor(image, model.channels)
    with model.autocast():
        arr = upscale_staged(model.staged(), x, tile, RISE_TILE, model.device, model.memory_format,
                             model.input_dtype, on_tile)
    out = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    del arr
    if scale != model.config["scale"]:
        out = out.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    return out


def run(model, p: Plan, scale: float | None = None, tile: int = DEFAULT_TILE,
        advance: Callable[[int], None] | None = None, notes=None) -> tuple[int, list]:
    """Upscale every job, one image at a time; unreadable inputs are skipped and returned as (file, reason);
    ``notes`` (a ``gancli.data.reading.InputNotes``) hears of animated and transparent inputs.
    ``advance(1)`` is called per tile, and once per skipped file: ``total_tiles`` steps in all."""
    model.require("upscale")
    check_scale(model, scale)
    check_tile(model.generator, tile)
    advance = advance or (lambda k: None)
    done, skipped = 0, []
    for job in p.jobs:
        try:
            image = open_image(job.source, notes)
        except ValueError as e:
            skipped.append((job.source, str(e)))
            advance(1)
        else:
            save_image(upscale_image(model, image, scale, tile, lambda: advance(1)), job.target)
            done += 1
    return done, skipped


