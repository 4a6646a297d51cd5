"""Image-to-image translation of real files, of any size.

A ResNet generator needs sides that are multiples of 4: each image is reflection-padded up to the next multiple,
translated, and cropped back, so the output has the input's exact size and aspect ratio. ``size`` first resizes the
shorter side (e.g. to the 256 px the model was trained at).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from gancli.data.fileplan import Plan
from gancli.data.imageio import to_pil
from gancli.data.reading import open_image
from gancli.data.tensors import pad_to_multiple, resize_shorter, to_tensor


def translate_images(model, images: list[Image.Image], direction: str, size: int | None = None,
                     batch_size: int = 4, multiple: int = 4) -> list[Image.Image]:
    """Translate PIL images of any size; images of equal size share a batch. A family whose networks only know
    their training scale (``Family.translates_at_scale``: DiscoGAN's bottleneck) sees each image at that scale
    and gives it back at its own size."""
    if size is None and model.family.translates_at_scale:
        back = [im.size for im in images]
        outs = translate_images(model, images, direction, model.image_size, batch_size, multiple)
        return [out.resize(wh, Image.Resampling.BICUBIC) for out, wh in zip(outs, back)]
    tensors = [to_tensor(resize_shorter(im, size), model.channels) for im in images]
    results: list[torch.Tensor | None] = [None] * len(tensors)
    by_shape: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
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


def run(model, p: Plan, direction: str, size: int | None = None, batch_size: int = 4, side: bool = False,
        advance: Callable[[int], None] | None = None, notes=None) -> tuple[int, list[tuple[Path, str]]]:
    """Translate every job; unreadable inputs are skipped and returned as (file, reason). Each output is written in
    its target's format (``plan`` made every target one we write). ``notes`` (a ``gancli.data.reading.InputNotes``) hears
    of animated and transparent inputs."""
    from gancli.data.imageio import save_image

    skipped, done = [], 0
    for start in range(0, len(p.jobs), batch_size):
        chunk, images = [], []
        for job in p.jobs[start:start + batch_size]:
            try:
                images.append(open_image(job.source, notes))
                chunk.append(job)
            except ValueError as e:
                skipped.append((job.source, str(e)))
        if images:
            multiple = getattr(getattr(model.generator, direction), "multiple", 4)  # what the network's strides need
            outs = translate_images(model, images, direction, size, batch_size, multiple)
            for job, src, out in zip(chunk, images, outs):
                save_image(side_by_side(resize_shorter(src, size), out) if side else out, job.target)
                done += 1
        if advance:
            advance(len(p.jobs[start:start + batch_size]))
    return done, skipped
