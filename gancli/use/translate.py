"""Image-to-image translation of real files, of any size.

A ResNet generator needs sides that are multiples of 4: each image is reflection-padded up to the next multiple,
translated, and cropped back, so the output has the input's exact size and aspect ratio. ``size`` first resizes the
shorter side (e.g. to the 256 px the model was trained at).

A picture of more than ``WHOLE_PIXELS`` runs in tiles, in bounded memory (a 12 MP photo through a width-64
CycleGAN would hold gigabytes of activations at once): its instance norms' statistics are measured once on the
whole picture resized to ``WHOLE_PIXELS``, then every tile of ``TILE`` pixels a side is normalised with them and
run with the generator's receptive field around it, and only its centre is kept. The tiles meet without seams;
the result differs from an untiled run only by those statistics (measured at the smaller size).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image

from gancli.data.fileplan import Plan
from gancli.data.imageio import to_pil
from gancli.data.reading import header_size, open_image, open_scaled
from gancli.data.tensors import pad_to_multiple, resize_shorter, to_tensor

WHOLE_PIXELS = 1024 * 1024  # up to this, a picture runs whole (its own statistics, exactly); above, in tiles
TILE = 512  # the input pixels a side of a tile's kept centre


def tiles(height: int, width: int) -> int:
    """The steps a picture of that size (after any --size) takes: its tiles, or 1 if it runs whole."""
    return 1 if height * width <= WHOLE_PIXELS else -(-height // TILE) * -(-width // TILE)


def steps(model, width: int, height: int, size: int | None = None) -> int:
    """The progress steps of one input of that size: its tiles at the size it is translated at."""
    if model.family.translates_at_scale and size is None:
        return 1
    if size:
        scale = size / min(width, height)
        width, height = round(width * scale), round(height * scale)
    return tiles(height, width)


def total_steps(model, p: Plan, size: int | None = None) -> int:
    """Every job's steps, from the files' headers (no decoding): a large photo's tiles show progress; a file that
    cannot be opened counts one (it is skipped)."""
    if model.family.translates_at_scale and size is None:  # every input is seen at the training size: no tiles
        return len(p.jobs)
    sizes = (header_size(job.source) for job in p.jobs)
    return sum(steps(model, *wh, size) if wh else 1 for wh in sizes)


def translate_large(model, x: torch.Tensor, direction: str, multiple: int = 4,
                    on_tile: Callable[[], None] = lambda: None) -> torch.Tensor:
    """One picture (C, H, W), sides multiples of ``multiple``, tile by tile with its statistics measured on the
    whole at ``WHOLE_PIXELS`` (see the module's docstring) -> (C, H, W)."""
    c, h, w = x.shape
    shrink = (WHOLE_PIXELS / (h * w)) ** 0.5
    small = [max(multiple, round(side * shrink / multiple) * multiple) for side in (h, w)]
    view = F.interpolate(x[None], size=small, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
    net, reach = model.measured(view, direction)
    margin = -(-reach // multiple) * multiple  # tiles start on the strided layers' grid
    out = torch.empty(c, h, w)
    for top in range(0, h, TILE):
        for left in range(0, w, TILE):
            bottom, right = min(h, top + TILE), min(w, left + TILE)
            y0, x0, y1, x1 = max(0, top - margin), max(0, left - margin), min(h, bottom + margin), \
                min(w, right + margin)
            y = net(x[None, :, y0:y1, x0:x1])[0]
            out[:, top:bottom, left:right] = y[:, top - y0:bottom - y0, left - x0:right - x0]
            on_tile()
    return out


def translate_images(model, images: list[Image.Image], direction: str, size: int | None = None,
                     batch_size: int = 4, multiple: int = 4, on_tile: Callable[[], None] = lambda: None,
                     sizes: list[tuple[int, int]] | None = None) -> list[Image.Image]:
    """Translate PIL images of any size; images of equal size share a batch, and one of more than
    ``WHOLE_PIXELS`` runs alone, in tiles (``on_tile`` is called after each). A family whose networks only know
    their training scale (``Family.translates_at_scale``: DiscoGAN's bottleneck) sees each image at that scale
    and gives it back at its own size: ``sizes``, where the images were decoded smaller than their files
    (``at_scale``)."""
    if size is None and model.family.translates_at_scale:
        back = sizes or [im.size for im in images]
        outs = translate_images(model, images, direction, model.image_size, batch_size, multiple)
        return [out.resize(wh, Image.Resampling.BICUBIC) for out, wh in zip(outs, back)]
    tensors = [to_tensor(resize_shorter(im, size), model.channels) for im in images]
    results: list[torch.Tensor | None] = [None] * len(tensors)
    by_shape: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        if tiles(*t.shape[-2:]) > 1:
            x, (h, w) = pad_to_multiple(t[None], multiple)
            results[i] = translate_large(model, x[0], direction, multiple, on_tile)[..., :h, :w]
        else:
            by_shape.setdefault(tuple(t.shape), []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            x, (h, w) = pad_to_multiple(torch.stack([tensors[i] for i in chunk]), multiple)
            y = model.translate(x, direction)[..., :h, :w]
            for i, out in zip(chunk, y):
                results[i] = out
    return to_pil(torch.stack(results)) if len(set(t.shape for t in tensors)) == 1 else \
        [to_pil(r[None])[0] for r in results]


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    right = right.convert(left.mode) if right.mode != left.mode else right
    if right.size != left.size:
        right = right.resize(left.size, Image.Resampling.BICUBIC)
    both = Image.new(left.mode, (left.width * 2, left.height))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    return both


def at_scale(model, size: int | None, side: bool) -> tuple[int, str] | None:
    """(side, mode) to decode inputs at, for a family that translates at its training scale (whose inputs are
    shrunk to it anyway, and whose outputs go back to each file's own size); None where the inputs are used at
    their size (any other family, ``--size``, or ``--side``, which shows the input as it is)."""
    if size is not None or side or not model.family.translates_at_scale:
        return None
    return model.image_size, "L" if model.channels == 1 else "RGB"


def run(model, p: Plan, direction: str, size: int | None = None, batch_size: int = 4, side: bool = False,
        advance: Callable[[int], None] | None = None, notes=None) -> tuple[int, list[tuple[Path, str]]]:
    """Translate every job; unreadable inputs are skipped and returned as (file, reason). Each output is written in
    its target's format (``plan`` made every target one we write). ``notes`` (a ``gancli.data.reading.InputNotes``) hears
    of animated and transparent inputs. ``advance(k)``: ``total_steps`` in all, a large picture's one a tile."""
    from gancli.data.imageio import save_image

    skipped, done = [], 0
    advance = advance or (lambda k: None)
    small = at_scale(model, size, side)
    for start in range(0, len(p.jobs), batch_size):
        chunk, images, sizes = [], [], []
        for job in p.jobs[start:start + batch_size]:
            try:
                image, own = open_scaled(job.source, *small, notes) if small else (open_image(job.source, notes), None)
            except ValueError as e:
                skipped.append((job.source, str(e)))
            else:
                images.append(image)
                sizes.append(own)
                chunk.append(job)
        if images:
            multiple = getattr(getattr(model.generator, direction), "multiple", 4)  # what the network's strides need
            outs = translate_images(model, images, direction, size, batch_size, multiple, lambda: advance(1),
                                    sizes if small else None)
            for job, src, out in zip(chunk, images, outs):
                save_image(side_by_side(resize_shorter(src, size), out) if side else out, job.target)
                done += 1
        tiled = sum(steps(model, *im.size, size) > 1 for im in images)  # those advanced tile by tile
        advance(len(p.jobs[start:start + batch_size]) - tiled)
    return done, skipped
