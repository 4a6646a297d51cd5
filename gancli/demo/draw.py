"""The page's pictures, each from the library function behind its command: a grid is `gan sample`'s (same latents,
labels and tiling: the same pixels for a seed), a walk `gan interpolate`'s, a figure `gan mix`'s, a translation
`gan translate`'s, an upscale `gan upscale`'s, a class `gan classify`'s."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from gancli import latents
from gancli.data.imageio import grid_image, save_animation, to_pil
from gancli.use import drawing

WALK_STEPS = 12  # frames between two key images: a loop through 8 of them is about 6 s at 15 fps
OnProgress = Callable[[int, int], None]  # (done, total)


def grid(model, n: int, seed: int, label: str | None = None, progress: OnProgress = lambda d, t: None,
         **use) -> Image.Image:
    """`gan sample NAME -n N --seed S [--label L] [use options]`'s grid."""
    model.check_use(**use)
    model.require_use(**use)
    drawn = drawing.request(model, n, seed, None, label, None, **use)
    images = []
    for batch in model.generate(drawn.z, drawn.labels, 256, **use):
        images.append(batch)
        progress(sum(len(b) for b in images), len(drawn))
    nrow = model.config["arch_args"]["num_classes"] if model.is_conditional and label is None else None
    return grid_image(torch.cat(images), nrow)


def walk(model, n: int, seed: int, path: Path, label: str | None = None, **use) -> Path:
    """The grid's first images (up to 8) as the key frames of a looping slerp walk, an animated GIF of at least
    256 px, as `gan interpolate` writes one."""
    model.check_use(**use)
    model.require_use(**use)
    keys = model.latents_for(max(2, min(n, 8)), seed)
    z = latents.walk(keys, WALK_STEPS, "slerp", loop=True)
    labels = model.labels_for(len(z), label if label is not None else (0 if model.is_conditional else None), **use)
    frames = torch.cat(list(model.generate(z, labels, **use)))
    factor = max(1, -(-256 // model.image_size))
    pictures = [im.resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST) for im in to_pil(frames)]
    save_animation(pictures, path, fps=15)
    return path


def mix(model, seed: int, levels: str = "coarse", truncation: float | None = None) -> Image.Image:
    """`gan mix`'s figure: rows from seeds S..S+2, columns from S+3..S+5."""
    images, width = model.style_mix([seed, seed + 1, seed + 2], [seed + 3, seed + 4, seed + 5], levels, truncation)
    return grid_image(images, width)


def translate(model, image: Image.Image, direction: str) -> Image.Image:
    """`gan translate`'s output for one picture of any size."""
    from gancli.use.translate import translate_images

    direction = model.direction(direction)
    multiple = getattr(getattr(model.generator, direction), "multiple", 4)  # what the network's strides need
    return translate_images(model, [image], direction, None, 1, multiple)[0]


def upscale(model, image: Image.Image, progress: OnProgress = lambda d, t: None) -> Image.Image:
    """`gan upscale`'s output, tile by tile (``progress`` after each)."""
    from gancli.use.upscale import DEFAULT_TILE, tile_count, upscale_image

    model.require("upscale")
    total, done = tile_count(image.height, image.width, DEFAULT_TILE, model.generator.margin), [0]

    def tick():
        done[0] += 1
        progress(done[0], total)

    return upscale_image(model, image, None, DEFAULT_TILE, tick)


def classify(model, images: list[Image.Image]) -> list[dict[str, float]]:
    """`gan classify`'s probabilities, one {class: p} per picture (fitted to the model's size as the command
    fits files)."""
    from gancli.data.reading import fit
    from gancli.data.tensors import to_tensor

    model.require("classify")
    x = torch.stack([to_tensor(fit(im.convert("L" if model.channels == 1 else "RGB"), model.image_size),
                               model.channels) for im in images])
    names = model.classifier_classes
    return [{(names[k] if k < len(names) else str(k)): float(v) for k, v in enumerate(p)} for p in model.classify(x)]
