"""What `gan sample` and `gan interpolate` draw, as library calls the Python API shares with the CLI: the latents and
labels of a request (n images, one per seed, or every class K times), and the frames of a walk (between seeds in z
or in a family's style space, or between real images its encoder reads)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gancli import latents


def folder_name(name: str) -> str:
    """A class name as a folder or file-name part: "T-shirt/top" -> "T-shirt-top"."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_. " else "-" for ch in name).strip(" .")
    return cleaned or "class"


@dataclass
class Request:
    """The latents and labels of images to draw, and each image's file name (without extension) in a folder."""
    z: torch.Tensor
    labels: torch.Tensor | None
    stems: list[str]

    def __len__(self) -> int:
        return len(self.z)


def request(model, n: int = 64, seed: int = 0, seeds: list[int] | None = None, label: int | str | None = None,
            per_class: int | None = None, **use) -> Request:
    """Image i of a request is a pure function of (seed, i), so a larger request repeats a smaller one's images.
    ``per_class=K``: K of every class (conditional models), distinct latents (seed, c * K + i), one folder each.
    ``use``: the model's use-time options (a caption: ``text=...``; see ``GANModel.use_options``)."""
    if per_class is not None:
        if not model.is_conditional:
            raise ValueError(f"{model.config.get('name', 'this model')} is not a conditional model: --per-class "
                             "needs one (e.g. cgan-mnist)")
        classes = model.config["arch_args"]["num_classes"]
        names = model.class_names or [str(c) for c in range(classes)]
        return Request(model.latents_for(per_class * classes, seed),
                       torch.arange(classes).repeat_interleave(per_class),
                       [f"{folder_name(names[c])}/seed{seed}-{i:06d}" for c in range(classes) for i in range(per_class)])
    if seeds:
        return Request(model.latents_for(seeds=seeds), model.labels_for(len(seeds), label, **use),
                       [f"seed{s:04d}" for s in seeds])
    return Request(model.latents_for(n, seed), model.labels_for(n, label, **use),
                   [f"seed{seed}-{i:06d}" for i in range(n)])


def walk_length(keys: int, steps: int, loop: bool) -> int:
    """Frames of a walk through ``keys`` key frames, ``steps`` apart, as ``latents.walk`` makes them."""
    return steps * keys if loop else steps * (keys - 1) + 1


def walk_method(method: str | None, space: str) -> str:
    """The interpolation a walk uses: slerp in z unless told, and only straight lines in w."""
    if method not in (None, "slerp", "lerp"):
        raise ValueError(f"unknown --method {method!r}: use slerp or lerp")
    if space not in ("z", "w"):
        raise ValueError(f"unknown --space {space!r}: use z or w")
    if space == "w" and method == "slerp":  # w is not Gaussian: the sphere argument for slerp does not hold there
        raise ValueError("--space w walks in straight lines: drop --method slerp (or use --method lerp)")
    return method or ("lerp" if space == "w" else "slerp")


def walk(model, seeds: list[int] | None = None, images: list[str | Path] | None = None, steps: int = 30,
         method: str | None = None, space: str = "z", label: int | str | None = None,
         **use) -> tuple[torch.Tensor, str]:
    """The frames of a walk, (N, C, H, W) in [-1, 1], and how it was made ("slerp, seeds 1,2,3"). Between seeds the
    walk loops back to the first; between real ``images`` (a model that encodes) it runs from the first to the last.
    ``space="w"``: straight lines in the style space of a model that has one, where walks are smoother. ``use``: the
    model's use-time options (``truncation=0.7``, ``text=...``)."""
    method = walk_method(method, space)
    between = images is not None
    if between:
        keys, what = model.encode(model.read_images(images)), f"between {len(images)} images"
    else:
        keys, what = model.latents_for(seeds=seeds), f"seeds {','.join(map(str, seeds))}"
    if space == "w":
        return model.walk_in_w(keys, steps, loop=not between, **use), f"lerp in w, {what}"
    z = latents.walk(keys, steps, method, loop=not between)
    labels = model.labels_for(len(z), label if label is not None else (0 if model.is_conditional else None), **use)
    return torch.cat(list(model.generate(z, labels, **use))), f"{method}, {what}"
