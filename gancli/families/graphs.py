"""What ``gan export`` traces of a model: each family says which networks, with which example inputs, dynamic axes
and meanings (``Family.export_graphs``); gancli.use.export writes them and names no family."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gancli import latents


class Sampler(nn.Module):
    """A generator as an exported file runs it: tensors in, images out, no keyword options (the defaults: StyleGAN
    without truncation, StackGAN's final stage)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z, labels=None):
        return self.generator(z, labels)


@dataclass
class ExportGraph:
    """One network as ``gan export`` writes it: a module of tensors only, an example input per name (in the order
    forward takes them), which axes may vary, and what each input and output is (for the file's metadata).
    ``checks``: further inputs of other shapes, run through the exported file to show its dynamic axes work."""
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, dict]               # name -> {"shape": [...], "dtype": ..., "meaning": ...}
    dynamic: dict[str, dict[int, str]]     # input or output name -> {axis: its name}
    meanings: dict[str, str]               # input name -> what it is
    suffix: str = ""                       # of the file, when a model writes several (CycleGAN's "a2b")
    metadata: dict = field(default_factory=dict)  # what this graph adds to the model's (its direction, say)
    checks: list[dict[str, torch.Tensor]] = field(default_factory=list)


IMAGES_MEANING = "images (batch, channels, height, width), float32 in [-1, 1]: pixel value = (x + 1) * 127.5"


def sampler_graph(model, second: str | None = None, second_input: torch.Tensor | None = None,
                  second_meaning: str = "") -> ExportGraph:
    """z (batch, latent_dim) -> images, with ``second`` (conditional models: "label", the class index, int64
    (batch,)) as a second input; ``second_input`` is its example (default: class indices)."""
    z = latents.latents([(0, i) for i in range(2)], model.latent_dim)
    inputs, meanings = {"z": z}, {"z": f"latents (batch, {model.latent_dim}), float32, standard normal"}
    dynamic = {"z": {0: "batch"}, "images": {0: "batch"}}
    if second:
        classes = model.config.get("arch_args", {}).get("num_classes") or 1
        inputs[second] = second_input if second_input is not None else torch.arange(2) % classes
        meanings[second] = second_meaning or f"class index (batch,), int64, 0 to {classes - 1} (see class_names)"
        dynamic[second] = {0: "batch"}
    checks = [{k: torch.cat([v] * 3)[:5] for k, v in inputs.items()}]  # another batch size (5)
    shape = ["batch", model.channels, model.image_size, model.image_size]
    return ExportGraph(Sampler(model.generator), inputs, {"images": {"shape": shape, "meaning": IMAGES_MEANING}},
                       dynamic, meanings, checks=checks)


def image_graph(net: nn.Module, channels: int, sides: list[tuple[int, int]], output: str, scale: int = 1,
                multiple: int = 1) -> ExportGraph:
    """A fully convolutional network: images (batch, channels, height, width) -> ``output``, ``scale`` times larger;
    batch, height and width are dynamic (sides multiples of ``multiple``). ``sides``: the example's (height, width),
    then the checks' (another batch size and sides each)."""
    g = torch.Generator().manual_seed(0)
    shapes = [(2 if i == 0 else 1 + 2 * i, h, w) for i, (h, w) in enumerate(sides)]
    examples = [{"images": torch.rand(b, channels, h, w, generator=g) * 2 - 1} for b, h, w in shapes]
    where = f"height and width multiples of {multiple}" if multiple > 1 else "any height and width"
    times = f"{scale} x " if scale > 1 else ""
    out = {"shape": ["batch", channels, f"{times}height", f"{times}width"],
           "meaning": f"images (batch, {channels}, {times}height, {times}width), float32 in [-1, 1]"}
    return ExportGraph(net, examples[0], {output: out},
                       {"images": {0: "batch", 2: "height", 3: "width"},
                        output: {0: "batch", 2: "out_height", 3: "out_width"}},
                       {"images": f"{IMAGES_MEANING}; {where}"}, checks=examples[1:],
                       metadata={"multiple": multiple, "scale": scale})
