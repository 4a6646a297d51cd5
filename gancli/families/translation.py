"""What the translators (CycleGAN, DiscoGAN) share, and no family of its own: a pair of networks per direction or
domain, two domains' data, the objective's fixed test pairs and export config, measuring translation during training
(``--eval-every``), what a loaded translator can do (``translate``, ``direction``), and the family base class that
makes a family one of them (`gan translate`, not `gan sample`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gancli.data import datasets
from gancli.data.reading import DataError, ImageData, list_images, load_data, open_image, to_model_range
from gancli.data.tensors import pad_to_multiple, to_tensor
from gancli.errors import UnknownNameError
from gancli.families.abilities import Ability
from gancli.families.adversarial import LOSS, OPTIMISER, WIDTHS, TwoPlayer
from gancli.families.base import Family
from gancli.families.graphs import ExportGraph, image_graph
from gancli.families.inference import measure_norms, receptive_radius
from gancli.families.model import GANModel
from gancli.options import Option, group
from gancli.quality import formulas


class GeneratorPair(nn.Module):
    """``a2b`` (A -> B) and ``b2a``. One forward runs a whole cycle, so DistributedDataParallel sees every use."""

    def __init__(self, **nets: nn.Module):
        super().__init__()
        for name, net in nets.items():
            self.add_module(name, net)

    def forward(self, real_a, real_b, identity: bool = True):
        fake_b, fake_a = self.a2b(real_a), self.b2a(real_b)
        out = {"fake_b": fake_b, "fake_a": fake_a, "rec_a": self.b2a(fake_b), "rec_b": self.a2b(fake_a)}
        if identity:  # a generator fed an image of its target domain should leave it alone
            out |= {"idt_b": self.a2b(real_b), "idt_a": self.b2a(real_a)}
        return out


class DiscriminatorPair(nn.Module):
    """``a`` judges images of domain A, ``b`` those of domain B."""

    def __init__(self, **nets: nn.Module):
        super().__init__()
        for name, net in nets.items():
            self.add_module(name, net)

    def forward(self, x_a, x_b):
        return self.a(x_a), self.b(x_b)


TWO_DOMAINS = group(
    "Two-domain translation",
    Option("data_b", str, None, "The second domain's folder.", cli=False, resume=True),
    Option("domains", str, None, "Names of A and B (horse,zebra); for one labelled folder (an IDX folder), the "
                                 "classes of each too: bag:8,shoe:7+9.",
           check=lambda v: None if len([d for d in v.split(",") if d.strip()]) == 2 else
           "needs two names, e.g. horse,zebra (or bag:8,shoe:7+9)", resume=True),
)


def load_two_domains(opts, channels: int, load_size: int | None) -> tuple[list, list[str]]:
    """The two domains' images: DIR_A DIR_B, a folder with trainA/ and trainB/, or class selections of one labelled
    folder (``--domains bag:8,shoe:7+9``: Fashion-MNIST's bags as A, its sneakers and ankle boots as B)."""
    specs = [d.strip() for d in opts.domains.split(",")] if opts.domains else None
    if specs and all(":" in d for d in specs):
        if opts.data_b:
            raise DataError("class selections (--domains name:class+class,...) take one labelled folder, not two")
        data = load_data(opts.data, load_size, channels)
        if data.labels is None:
            raise DataError(f"--domains {opts.domains} selects classes, but {opts.data} has no labels")
        parts = []
        for spec in specs:
            name, _, classes = spec.partition(":")
            try:
                wanted = [int(c) for c in classes.split("+")]
            except ValueError:
                raise DataError(f"--domains {spec!r}: give class numbers joined by +, e.g. shoe:7+9") from None
            if not all(0 <= c < len(data.class_names) for c in wanted):
                raise DataError(f"--domains {spec!r}: classes run from 0 to {len(data.class_names) - 1}")
            keep = torch.isin(data.labels, torch.tensor(wanted))
            parts.append(ImageData(data.images[keep], None, None, f"{data.source} classes {classes}"))
        for part, spec in zip(parts, specs):
            part.selected_classes = [int(c) for c in spec.partition(":")[2].split("+")]
        return parts, [s.partition(":")[0] for s in specs]
    dir_a, dir_b, names = domain_folders(opts.data, opts.data_b)
    return [load_data(dir_a, load_size, channels), load_data(dir_b, load_size, channels)], specs or names


def domain_folders(data: str, data_b: str | None) -> tuple[Path, Path, list[str]]:
    """DIR_A DIR_B, or one root holding trainA/ and trainB/ (the CycleGAN data sets' layout)."""
    root = Path(data)
    if data_b:
        return root, Path(data_b), [root.name, Path(data_b).name]
    if (root / "trainA").is_dir() and (root / "trainB").is_dir():
        return root / "trainA", root / "trainB", ["A", "B"]
    raise DataError(f"CycleGAN needs two image folders: give DIR_A DIR_B, or a folder with trainA/ and trainB/ "
                     f"({root} has neither)")


class TranslationObjective(TwoPlayer):
    """What two-domain translators share: fixed test pairs for the grid, and a config that names the domains."""

    measurable = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.G, self.D = ctx.nets["generator"], ctx.nets["discriminator"]
        self.G_train, self.D_train = ctx.train_nets["generator"], ctx.train_nets["discriminator"]
        self.images_a, self.images_b = ctx.images
        k = min(4, len(self.images_a), len(self.images_b))
        crop, off = ctx.crop, (self.images_a.shape[-1] - ctx.crop) // 2
        centre = lambda x: to_model_range(x[:k, :, off:off + crop, off:off + crop].to(ctx.device))
        self.fixed_a, self.fixed_b = centre(self.images_a), centre(self.images_b)

    @torch.no_grad()
    def grid(self, sampler):
        """Per row: real A, fake B, reconstructed A, real B, fake A, reconstructed B."""
        out = sampler(self.fixed_a, self.fixed_b, identity=False)
        rows = torch.stack([self.fixed_a, out["fake_b"], out["rec_a"], self.fixed_b, out["fake_a"], out["rec_b"]], 1)
        return rows.flatten(0, 1).float().cpu(), 6

    def training_record(self) -> dict:
        """The family's own settings, for the card."""
        return {}

    def export_config(self) -> dict:
        names = self.ctx.data.names
        config = {"name": self.opts.name or f"{self.opts.arch}-{names[0]}2{names[1]}", "task": "translation",
                  "domains": names, "latent_dim": 0, "class_names": None,
                  "dataset": Path(self.opts.data).resolve().name, "training": self.training_record()}
        selected = [getattr(d, "selected_classes", None) for d in self.ctx.data.domains]
        if all(selected):  # domains that are classes of one data set: `gan eval` finds their test images there
            config["domain_classes"] = dict(zip(names, selected))
        return config


def _readable(files):
    """The images among ``files`` that decode (the training data's loader skips the others too)."""
    for f in files:
        try:
            yield open_image(f)
        except ValueError:
            continue


class TranslationMonitor:
    """``gan train --eval-every`` for a translator: a fixed set of photos of both domains, translated whole at their
    own size (a model trained on crops must work on full photos): the share the judge reads as the target domain,
    and the grey SSIM between input and output (the shape kept). The photos are the held-out testA/ and testB/
    beside trainA/ and trainB/; without them, training photos (the log says so)."""

    def __init__(self, judge, photos: dict[str, list[torch.Tensor]], targets: dict[str, int | None],
                 held_out: bool):
        self.judge, self.photos, self.targets, self.held_out = judge, photos, targets, held_out

    @classmethod
    def for_run(cls, data: str, data_b: str | None, names: list[str], channels: int, device, n: int,
                seed: int = 0) -> "TranslationMonitor":
        from gancli.quality.judges import load_judge

        root = Path(data)
        held_out = not data_b and (root / "testA").is_dir() and (root / "testB").is_dir()
        folders = [root / "testA", root / "testB"] if held_out else \
            ([root, Path(data_b)] if data_b else [root / "trainA", root / "trainB"])
        ds = datasets.identify(root)
        judge = load_judge(datasets.default_judge(ds, channels), device)
        own = {datasets.class_key(c): i for i, c in enumerate(judge.class_names)}
        photos, targets = {}, {}
        for direction, folder, target, fallback in (("a2b", folders[0], names[1], 1), ("b2a", folders[1], names[0], 0)):
            files = list_images(folder)
            pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n].sort().values
            photos[direction] = [to_tensor(im, channels) for im in _readable(files[i] for i in pick.tolist())]
            if not photos[direction]:
                raise DataError(f"--eval-every: none of the photos in {folder} could be read")
            # the target's class: by name, or by position for the data set the judge was made for (trainA = its
            # first class); for other data the judge's classes mean nothing here, and only SSIM is measured
            targets[direction] = own.get(datasets.class_key(target), fallback if ds is not None else None)
        return cls(judge, photos, targets, held_out)

    @torch.no_grad()
    def measure(self, generators: torch.nn.Module, device) -> tuple[dict, dict[str, list[torch.Tensor]]]:
        """(the row for metrics.jsonl, the translated photos by direction, on the CPU in [-1, 1])."""
        from torchmetrics.functional.image import structural_similarity_index_measure as ssim

        row, outputs = {"held_out": self.held_out, "feature_extractor": self.judge.name}, {}
        for direction, photos in self.photos.items():
            net = getattr(generators, direction)
            outs, structure, judged_as = [], [], []
            for x in photos:
                padded, (h, w) = pad_to_multiple(x[None].to(device), getattr(net, "multiple", 4))
                y = net(padded)[..., :h, :w].float().clamp(-1, 1).cpu()
                outs.append(y[0])
                structure.append(float(ssim(formulas.grey(y), formulas.grey(x[None]), data_range=2.0)))
                judged_as.append(int(self.judge.run(y)[1].argmax(1)))
            outputs[direction] = outs
            row[f"structure_{direction}"] = round(sum(structure) / len(structure), 4)
            if self.targets[direction] is not None:
                row[f"target_domain_rate_{direction}"] = round(
                    sum(j == self.targets[direction] for j in judged_as) / len(judged_as), 4)
        row["alarms"] = []
        return row, outputs


TRANSLATION = Ability("translation", operations={
    "translate": "gan translate", "direction": "--direction", "target_domain": "--direction", "domains": "--direction"},
    replaces_generate="translate")


class TranslatingModel(GANModel):
    """A loaded translator: two domains and a generator per direction, ``translate``."""

    abilities = (TRANSLATION,)

    @property
    def domains(self) -> list[str]:
        return list(self.config.get("domains") or ["A", "B"])

    def direction(self, spec: str = "a2b") -> str:
        """``a2b`` / ``b2a``, a target domain name (``zebra``), or ``horse2zebra``."""
        a, b = (datasets.class_key(d) for d in self.domains)
        key = datasets.class_key(spec)
        table = {"a2b": "a2b", "b2a": "b2a", b: "a2b", a: "b2a", f"{a}2{b}": "a2b", f"{b}2{a}": "b2a",
                 "atob": "a2b", "btoa": "b2a"}
        if key not in table:
            raise UnknownNameError("direction", spec, ["a2b", "b2a", *self.domains])
        if not hasattr(self.generator, table[key]):
            raise ValueError(f"{self.config.get('name', 'this model')} has no {table[key]} generator "
                             f"(it holds: {', '.join(n for n, _ in self.generator.named_children())})")
        return table[key]

    def target_domain(self, direction: str) -> str:
        return self.domains[1] if self.direction(direction) == "a2b" else self.domains[0]

    @torch.inference_mode()
    def translate(self, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """(N, C, H, W) in [-1, 1], sides multiples of the network's ``multiple`` (CycleGAN: 4; see gancli.use.translate
        for any size) -> same shape."""
        direction = self.direction(direction)
        if direction in self.runners:
            return self.runners[direction](images.float())
        net = getattr(self.generator, direction)
        net = self.prepared(net) if self.input_dtype else net
        x = images.to(self.device, self.input_dtype).contiguous(memory_format=self.memory_format)
        with self.autocast():
            return net(x).float().cpu()


    def measured(self, view: torch.Tensor, direction: str = "a2b") -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
        """For a picture too large to run whole: the ``direction`` generator with its instance norms' statistics
        measured once on ``view`` (1, C, h, w: the whole picture, smaller), as a function of tiles, and the input
        pixels each side of a tile its outputs need (its receptive field). Norms measured per tile would shade
        every tile its own way; these give seamless tiles, and the whole picture's colours."""
        net = getattr(self.generator, self.direction(direction))
        net = self.prepared(net) if self.input_dtype else net
        with self.autocast():
            fast = measure_norms(net, view.to(self.device, self.input_dtype).contiguous(
                memory_format=self.memory_format))

        @torch.inference_mode()
        def run(tiles: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return fast(tiles.to(self.device, self.input_dtype).contiguous(
                    memory_format=self.memory_format)).float().cpu()

        return run, math.ceil(receptive_radius(net))


class TranslationFamily(Family):
    """A family that translates between two domains: `gan translate`, not `gan sample`."""

    model_class = TranslatingModel
    data_folders = 2
    exported = ("generator",)
    options = OPTIMISER + LOSS + WIDTHS + TWO_DOMAINS
    summary = ("A `{architecture}` model translating {domains[0]} <-> {domains[1]} images (both directions; trained "
               "on {image_size}px images of {dataset}; applies to any size) with gan {gan_version}.")

    def card_use(self, config, where):
        a, b = config["domains"]
        return [f"gan translate {where} {a}.jpg                 # -> {a}-{b.lower()}.jpg",
                f"gan translate {where} {b}.jpg --direction {a}"]

    def pipeline_tag(self, config):
        return "image-to-image"

    def export_graphs(self, model) -> list[ExportGraph]:
        """One graph per direction the model holds: images of one domain -> the other's, any size its generator
        keeps (sides multiples of its ``multiple``)."""
        graphs, size = [], model.image_size
        for direction, (source, target) in (("a2b", model.domains), ("b2a", model.domains[::-1])):
            net = getattr(model.generator, direction, None)
            if net is None:
                continue
            m = getattr(net, "multiple", 1)
            graph = image_graph(net, model.channels, [(size, size), (max(m, size // 2 // m * m), size + m)],
                                "translated", multiple=m)
            graph.suffix = direction
            graph.metadata |= {"direction": direction, "source_domain": source, "target_domain": target}
            if self.translates_at_scale:  # what `gan translate` does first (see gancli.use.translate)
                graph.metadata["note"] = f"trained on {size}x{size} images: resize inputs to that size first"
            graphs.append(graph)
        return graphs
