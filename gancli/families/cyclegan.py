"""CycleGAN (Zhu, Park, Isola & Efros 2017): unpaired image-to-image translation.

The generator is the reference implementation's ResNet generator: reflection padding, instance norm without affine
parameters or running statistics, two stride-2 downsamplings, N residual blocks, two transposed-conv upsamplings and
a tanh. Its ``nn.Sequential`` is laid out exactly like the reference's, so the parameter names match
(``model.1.weight`` ... ``model.26.bias`` for 9 blocks) and published generator checkpoints load one to one.
The discriminator is the 70x70 PatchGAN: a grid of real/fake logits, one per overlapping 70x70 patch.

Training follows the paper: LSGAN loss, cycle-consistency weight 10, identity weight 0.5 x 10, a history pool of 50
generated images per domain for the discriminators, Adam 2e-4 with beta1 0.5, a constant learning rate for the first
half of training and a linear decay to zero over the second; images loaded at 286 px, randomly cropped to 256 and
mirrored. ``convert`` imports the reference implementation's ``latest_net_G_A.pth`` / ``latest_net_G_B.pth``.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli import datasets, latents, losses, metrics
from gancli.adversarial import BLOCKS, LOSS, OPTIMISER, WIDTHS, TwoPlayer
from gancli.data import DataError, ImageData, list_images, load_data, open_image, to_model_range
from gancli.family import INIT_FROM, ExportGraph, Family, TrainingData, image_graph, init_generator
from gancli.options import Option, at_least, group, non_negative
from gancli.registry import register
from gancli.translate import pad_to_multiple, to_tensor

LOAD_RATIO = 286 / 256
LEGACY_NORM = ("running_mean", "running_var", "num_batches_tracked")  # old instance-norm buffers: dropped


def _norm(width: int) -> nn.Module:
    return nn.InstanceNorm2d(width, affine=False, track_running_stats=False)


class ReflectionPad2d(nn.ReflectionPad2d):
    """nn.ReflectionPad2d whose gradient is the same on every run on CUDA: PyTorch's CUDA backward adds into the
    padded borders with atomics, in an order that varies, so a resumed CycleGAN run parted from an uninterrupted one
    there (bench/cuda_check.py). Training on CUDA pads with slices, mirrored and joined, whose backward has no
    atomics; elsewhere (the CPU, inference, export) it is PyTorch's own padding. Both give the same values."""

    def forward(self, x):
        return mirror_pad(x, self.padding) if x.is_cuda and torch.is_grad_enabled() else super().forward(x)


def mirror_pad(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflection padding (left, right, top, bottom) from slices: no atomics in its backward."""
    left, right, top, bottom = padding
    x = torch.cat([x[..., 1:left + 1].flip(-1), x, x[..., x.shape[-1] - right - 1:-1].flip(-1)], -1)
    return torch.cat([x[..., 1:top + 1, :].flip(-2), x, x[..., x.shape[-2] - bottom - 1:-1, :].flip(-2)], -2)


class ResnetBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            ReflectionPad2d(1), nn.Conv2d(width, width, 3), _norm(width), nn.ReLU(True),
            ReflectionPad2d(1), nn.Conv2d(width, width, 3), _norm(width))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Any input whose sides are multiples of 4 keeps its size."""

    multiple = 4

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 9):
        super().__init__()
        layers = [ReflectionPad2d(3), nn.Conv2d(channels, width, 7), _norm(width), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(width * mult, width * mult * 2, 3, stride=2, padding=1), _norm(width * mult * 2),
                       nn.ReLU(True)]
        layers += [ResnetBlock(width * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       _norm(width * mult // 2), nn.ReLU(True)]
        layers += [ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (3 layers): logits of shape (N, 1, H/8 - 2, W/8 - 2)."""

    def __init__(self, channels: int = 3, width: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width * prev, width * mult, 4, stride, 1), _norm(width * mult), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(width * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x, labels=None):
        return self.model(x)


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


def _init(module: nn.Module):
    # The reference's "normal" initialisation: N(0, 0.02) weights, zero biases.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


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


class ImagePool:
    """The discriminators' history of generated images (Shrivastava et al. 2017): half of each batch they see
    comes from older generators, which damps oscillation."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=g) < 0.5:
                k = int(torch.randint(0, self.size, (), generator=g))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> torch.Tensor:
        return torch.stack(self.images) if self.images else torch.zeros(0)

    def load(self, t: torch.Tensor):
        self.images = [x for x in t] if t.numel() else []


class TranslationObjective(TwoPlayer):
    """What two-domain translators share: fixed test pairs for the grid, and a config that names the domains."""

    measurable = False

    def __init__(self, trainer):
        super().__init__(trainer)
        self.G, self.D = trainer.nets["generator"], trainer.nets["discriminator"]
        self.G_train, self.D_train = trainer.train_nets["generator"], trainer.train_nets["discriminator"]
        self.images_a, self.images_b = trainer.images
        k = min(4, len(self.images_a), len(self.images_b))
        crop, off = trainer.crop, (self.images_a.shape[-1] - trainer.crop) // 2
        centre = lambda x: to_model_range(x[:k, :, off:off + crop, off:off + crop].to(trainer.device))
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
        names = self.t.data.names
        config = {"name": self.opts.name or f"{self.opts.arch}-{names[0]}2{names[1]}", "task": "translation",
                  "domains": names, "latent_dim": 0, "class_names": None,
                  "dataset": Path(self.opts.data).resolve().name, "training": self.training_record()}
        selected = [getattr(d, "selected_classes", None) for d in self.t.data.domains]
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
        from gancli.classifiers import load_judge

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
                structure.append(float(ssim(metrics.grey(y), metrics.grey(x[None]), data_range=2.0)))
                judged_as.append(int(self.judge.run(y)[1].argmax(1)))
            outputs[direction] = outs
            row[f"structure_{direction}"] = round(sum(structure) / len(structure), 4)
            if self.targets[direction] is not None:
                row[f"target_domain_rate_{direction}"] = round(
                    sum(j == self.targets[direction] for j in judged_as) / len(judged_as), 4)
        row["alarms"] = []
        return row, outputs


class CycleGANObjective(TranslationObjective):
    shown = ("loss_d", "loss_g", "loss_cycle", "d_real")
    measurable = True  # --eval-every: whole photos translated, judged (see evaluate)
    export_dtype = torch.float16      # halves the two generators (~45 MB fp32 at width 64)
    export_shard_bytes = 15 * 2**20   # and shards keep each file under 16 MiB

    def __init__(self, trainer):
        super().__init__(trainer)
        self.pools = [ImagePool(self.opts.pool_size), ImagePool(self.opts.pool_size)]
        if self.opts.init_from and not trainer.opts.resume:  # e.g. a model trained on crops, fine-tuned whole
            init_generator(self.G, self.opts.init_from, trainer.family, trainer.arch_args,
                           ("channels", "g_width", "n_blocks"))

    def lr_factor(self, step: int) -> float:
        return self.decay_in_second_half(step)

    def state(self) -> dict:
        return {"pool_a": self.pools[0].state(), "pool_b": self.pools[1].state()}

    def load_state(self, state: dict):
        self.pools[0].load(state["pool_a"].to(self.t.device))
        self.pools[1].load(state["pool_b"].to(self.t.device))

    def step(self, step: int) -> dict:
        opts, t = self.opts, self.t
        seed = opts.seed
        real_a = t.take(self.images_a, seed + 11, seed + 11, step)[0]
        real_b = t.take(self.images_b, seed + 13, seed + 13, step)[0]
        identity = opts.identity_weight > 0
        D = self.D  # the generator step needs no discriminator gradients: skip DDP and freeze D
        with t.autocast():
            out = self.G_train(real_a, real_b, identity)
            D.requires_grad_(False)
            fake_a_out, fake_b_out = D(out["fake_a"], out["fake_b"])
            loss_gan = losses.g_loss(opts.loss, fake_a_out.float()) + losses.g_loss(opts.loss, fake_b_out.float())
            loss_cycle = F.l1_loss(out["rec_a"].float(), real_a) + F.l1_loss(out["rec_b"].float(), real_b)
            loss_idt = (F.l1_loss(out["idt_a"].float(), real_a) + F.l1_loss(out["idt_b"].float(), real_b)) \
                if identity else torch.zeros((), device=t.device)
            loss_g = loss_gan + opts.cycle_weight * (loss_cycle + opts.identity_weight * loss_idt)
        t.optimize("g", loss_g)
        D.requires_grad_(True)

        g = torch.Generator().manual_seed(latents._mix(seed + 17, step * t.dist.world + t.dist.rank))
        pooled_a = self.pools[0].query(out["fake_a"].detach(), g)
        pooled_b = self.pools[1].query(out["fake_b"].detach(), g)
        n = len(real_a)
        with t.autocast():  # real and fake in one pass: instance norm keeps the samples independent
            d_a, d_b = self.D_train(torch.cat([real_a, pooled_a.to(real_a.dtype)]),
                                    torch.cat([real_b, pooled_b.to(real_b.dtype)]))
            d_a, d_b = d_a.float(), d_b.float()
            loss_d = losses.d_loss(opts.loss, d_a[:n], d_a[n:]) + losses.d_loss(opts.loss, d_b[:n], d_b[n:])
        t.optimize("d", loss_d)
        with torch.no_grad():
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_gan": loss_gan.detach(),
                    "loss_cycle": loss_cycle.detach(), "loss_idt": loss_idt.detach(),
                    "d_real": (d_a[:n].mean() + d_b[:n].mean()) / 2, "d_fake": (d_a[n:].mean() + d_b[n:].mean()) / 2}

    @torch.no_grad()
    def evaluate(self, sampler) -> dict:
        """Photos of both domains translated whole at their own size (the held-out testA/ and testB/ where the data
        has them), as `gan translate` would: the share judged the target domain and the grey SSIM to the input;
        and RUN/translations/step-N.png, inputs over outputs."""
        from gancli.imageio import captioned, grid_image, save_image

        t = self.t
        if getattr(self, "monitor", None) is None:
            self.monitor = TranslationMonitor.for_run(self.opts.data, self.opts.data_b, t.data.names, t.data.channels,
                                                      t.device, min(self.opts.eval_samples, 100), self.opts.seed)
            if not self.monitor.held_out:
                t.log("--eval-every: no testA/ and testB/ beside the training photos: measured on training photos")
        row, outputs = self.monitor.measure(sampler, t.device)
        if t.dist.main:
            hw = tuple(self.monitor.photos["a2b"][0].shape[-2:])  # photos of other sizes are shown at this one
            fit = lambda x: x if tuple(x.shape[-2:]) == hw else \
                F.interpolate(x[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]
            k = min(4, *(len(p) for p in self.monitor.photos.values()))
            shown = [fit(x) for d in ("a2b", "b2a") for x in self.monitor.photos[d][:k] + outputs[d][:k]]
            picture = grid_image(torch.stack(shown), nrow=k)
            a, b = t.data.names
            caption = f"step {t.step}: inputs over outputs, {a} -> {b} (top), {b} -> {a}"
            save_image(captioned(picture, caption), t.out / "translations" / f"step-{t.step:08d}.png")
        return row

    def training_record(self) -> dict:
        return {"cycle_weight": self.opts.cycle_weight, "identity_weight": self.opts.identity_weight,
                "pool_size": self.opts.pool_size, "init_from": self.opts.init_from, "crop": self.t.crop, "load_size": int(self.images_a.shape[-1])}


class TranslationFamily(Family):
    """A family that translates between two domains: `gan translate`, not `gan sample`."""

    task = "translation"
    capabilities = frozenset({"translate"})
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
            if self.translates_at_scale:  # what `gan translate` does first (see gancli.translate)
                graph.metadata["note"] = f"trained on {size}x{size} images: resize inputs to that size first"
            graphs.append(graph)
        return graphs


@register
class CycleGAN(TranslationFamily):
    name = "cyclegan"
    description = "CycleGAN (Zhu et al. 2017): ResNet generators and 70x70 PatchGAN discriminators"
    options = TranslationFamily.options + BLOCKS + INIT_FROM + group(
        "cyclegan options",
        Option("cycle_weight", float, 10.0, "Weight of the cycle-consistency loss.", check=non_negative,
               resume=True),
        Option("identity_weight", float, 0.5, "Identity loss weight, relative to --cycle-weight.",
               check=non_negative, resume=True),
        Option("pool_size", int, 50, "Generated-image history for D.", check=non_negative, resume=True),
        Option("load_size", int, None, "Resize the images to this before the random --size crop (the reference: "
                                       "286 for 256 px photos; default --size x 286/256). A --size well under it "
                                       "trains on crops at the photos' own scale: less memory and time, and the "
                                       "model still translates whole photos.", check=at_least(4), resume=True),
    )
    defaults = {"loss": "lsgan", "batch_size": 1, "mirror": True, "random_crop": True}

    def check_options(self, opts):
        if opts.loss == "wgan-gp":
            raise ValueError("cyclegan trains with lsgan, ns, minimax or hinge; wgan-gp's penalty is not wired here")

    def build(self, channels: int = 3, g_width: int = 64, d_width: int = 64, n_blocks: int = 9, d_layers: int = 3,
              directions: list[str] = ("a2b", "b2a")):
        unknown = set(directions) - {"a2b", "b2a"}
        if unknown or not directions:
            raise ValueError(f"directions must be a2b and/or b2a, not {sorted(unknown) or 'none'}")
        generators = GeneratorPair(**{d: ResnetGenerator(channels, g_width, n_blocks) for d in directions})
        # D_b judges outputs of a2b (domain B), D_a those of b2a
        discriminators = DiscriminatorPair(**{d[-1]: PatchDiscriminator(channels, d_width, d_layers)
                                              for d in directions})
        return {"generator": _init(generators), "discriminator": _init(discriminators)}

    def load_data(self, opts) -> TrainingData:
        crop = opts.size or 256
        load = opts.load_size or (math.ceil(crop * LOAD_RATIO) if opts.random_crop else crop)
        if load < crop:
            raise DataError(f"--load-size {load} is smaller than the --size {crop} crop cut from it")
        if crop < 24:  # three stride-2 convolutions, then two 4x4 ones: anything smaller leaves no patch to judge
            raise DataError(f"--size {crop}: the PatchGAN discriminator needs crops of at least 24 px")
        domains, names = load_two_domains(opts, opts.channels or 3, load)
        return TrainingData(domains, crop, names, dataset=Path(opts.data).resolve().name)

    def arch_args(self, opts, data):
        return {"channels": data.channels, "g_width": opts.g_width, "d_width": opts.d_width,
                "n_blocks": opts.n_blocks}

    def objective(self, trainer):
        return CycleGANObjective(trainer)

    def convert(self, files, name=None, domains=None, direction=None):
        """The reference implementation's generators (``latest_net_G_A.pth`` is A->B) -> (config, state)."""
        from gancli.weights import WeightsError, read_state_dict

        domains = [d.strip() for d in (domains or "A,B").split(",")]
        if len(domains) != 2 or not all(domains):
            raise ValueError("--domains needs two names, e.g. horse,zebra")
        directions = [d.strip() for d in direction.split(",")] if direction else \
            (["a2b", "b2a"] if len(files) == 2 else ["a2b"])
        if len(directions) != len(files):
            raise ValueError(f"{len(files)} file(s) but {len(directions)} direction(s): give one direction per file")
        states = []
        for f in files:
            state = {k: v for k, v in read_state_dict(f).items() if not k.endswith(LEGACY_NORM)}
            states.append((f, state, _generator_args(state, f)))
        args = states[0][2]
        for f, _, other in states[1:]:
            if other != args:
                raise WeightsError(f"{f} has another shape ({other}) than {states[0][0]} ({args})")
        config = {"name": name or Path(files[0]).stem, "architecture": "cyclegan",
                  "arch_args": args | {"directions": directions}, "task": "translation", "domains": domains,
                  "image_size": 256, "channels": args["channels"], "latent_dim": 0,
                  "converted_from": [Path(f).name for f in files]}
        state = {f"generator.{d}.{k}": v for d, (_, st, _) in zip(directions, states) for k, v in st.items()}
        return config, state


def _generator_args(state: dict[str, torch.Tensor], path) -> dict:
    from gancli.weights import WeightsError

    if "model.1.weight" not in state:
        raise WeightsError(f"{path} does not look like a CycleGAN ResNet generator (no model.1.weight)")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    w = state["model.1.weight"]
    return {"channels": int(w.shape[1]), "g_width": int(w.shape[0]), "n_blocks": len(blocks)}
