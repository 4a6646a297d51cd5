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

from gancli import latents
from gancli.data.reading import DataError, photo_side
from gancli.families import losses
from gancli.families.adversarial import BLOCKS
from gancli.families.base import INIT_FROM, OPTION, UPSAMPLE, TrainingData, init_generator
from gancli.families.translation import (
    DiscriminatorPair,
    GeneratorPair,
    TranslationFamily,
    TranslationMonitor,
    TranslationObjective,
    domain_folders,
    load_two_domains,
)
from gancli.options import Option, between, group, non_negative
from gancli.registry import register

LOAD_RATIO = 286 / 256
CROP = 128  # the default crop: see CycleGAN._laptop_size
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


UPSAMPLINGS = ("transpose", "resize")  # of family.UPSAMPLINGS, those this generator has


class ResnetGenerator(nn.Module):
    """Any input whose sides are multiples of 4 keeps its size. ``upsample="resize"`` replaces the reference's
    stride-2 transposed convolutions by nearest-neighbour doubling then a 3x3 convolution (Odena et al. 2016): a
    transposed convolution whose kernel the stride does not divide paints each output pixel of a 2x2 cell with other
    weights, a grid that narrow generators trained briefly did not learn to hide; doubling then convolving cannot
    draw one."""

    multiple = 4

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 9, upsample: str = "transpose"):
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLINGS)}, not {upsample!r}")
        layers = [ReflectionPad2d(3), nn.Conv2d(channels, width, 7), _norm(width), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(width * mult, width * mult * 2, 3, stride=2, padding=1), _norm(width * mult * 2),
                       nn.ReLU(True)]
        layers += [ResnetBlock(width * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            wide, narrow = width * mult, width * mult // 2
            layers += [nn.ConvTranspose2d(wide, narrow, 3, stride=2, padding=1, output_padding=1)] \
                if upsample == "transpose" else [nn.Upsample(scale_factor=2), ReflectionPad2d(1), nn.Conv2d(wide, narrow, 3)]
            layers += [_norm(narrow), nn.ReLU(True)]
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


def _init(module: nn.Module):
    # The reference's "normal" initialisation: N(0, 0.02) weights, zero biases.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class ImagePool:
    """The discriminators' history of generated images (Shrivastava et al. 2017): half of each batch they see
    comes from older generators, which damps oscillation.

    Batched on the images' device: until the pool is full, images enter it and pass through; after that each image,
    with probability 1/2, swaps with a stored one (the stored one goes to D). The swapped slots of one batch are
    distinct (a draw without replacement), so one scatter writes them and the result never depends on the order
    of writes: the same on every run, on the GPU too. ``g`` is a generator on the images' device."""

    def __init__(self, size: int):
        self.size = size
        self.count = 0
        self.stored: torch.Tensor | None = None  # (size, C, H, W); the first ``count`` are filled

    def query(self, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return batch
        batch = batch.detach()
        if self.stored is None:
            self.stored = batch.new_empty((self.size, *batch.shape[1:]))
        fill = min(len(batch), self.size - self.count)
        self.stored[self.count:self.count + fill] = batch[:fill]
        self.count += fill
        out = [batch[:fill]]
        for rest in batch[fill:].split(self.size):  # a batch larger than the pool: a pool's worth at a time
            swap = (torch.rand(len(rest), generator=g, device=batch.device) < 0.5)[:, None, None, None]
            slots = torch.randperm(self.size, generator=g, device=batch.device)[:len(rest)]
            old = self.stored[slots]
            self.stored[slots] = torch.where(swap, rest, old)
            out.append(torch.where(swap, old, rest))
        return torch.cat(out)

    def state(self) -> torch.Tensor:
        return self.stored[:self.count].clone() if self.count else torch.zeros(0)

    def load(self, t: torch.Tensor):
        """A pool saved by ``state`` (or, the same layout, by the per-image pool of earlier versions)."""
        self.count = min(len(t), self.size) if t.numel() else 0
        self.stored = None
        if self.count:
            self.stored = t.new_empty((self.size, *t.shape[1:]))
            self.stored[:self.count] = t[:self.count]


class CycleGANObjective(TranslationObjective):
    shown = ("loss_d", "loss_g", "loss_cycle", "d_real")
    measurable = True  # --eval-every: whole photos translated, judged (see evaluate)
    export_dtype = torch.float16      # halves the two generators (~45 MB fp32 at width 64)
    export_shard_bytes = 15 * 2**20   # and shards keep each file under 16 MiB

    def __init__(self, ctx):
        super().__init__(ctx)
        self.pools = [ImagePool(self.opts.pool_size), ImagePool(self.opts.pool_size)]
        if self.opts.init_from and not ctx.opts.resume:  # e.g. a model trained on crops, fine-tuned whole
            init_generator(self.G, self.opts.init_from, ctx.family, ctx.arch_args,
                           ("channels", "g_width", "n_blocks", "upsample"))

    def lr_factor(self, step: int) -> float:
        return self.decay_in_second_half(step)

    def state(self) -> dict:
        return {"pool_a": self.pools[0].state(), "pool_b": self.pools[1].state()}

    def load_state(self, state: dict):
        self.pools[0].load(state["pool_a"].to(self.ctx.device))
        self.pools[1].load(state["pool_b"].to(self.ctx.device))

    def step(self, step: int) -> dict:
        opts, ctx = self.opts, self.ctx
        seed = opts.seed
        real_a = ctx.take(self.images_a, seed + 11, seed + 11, step)[0]
        real_b = ctx.take(self.images_b, seed + 13, seed + 13, step)[0]
        identity = opts.identity_weight > 0
        D = self.D  # the generator step needs no discriminator gradients: skip DDP and freeze D
        with ctx.autocast():
            out = self.G_train(real_a, real_b, identity)
            D.requires_grad_(False)
            fake_a_out, fake_b_out = D(out["fake_a"], out["fake_b"])
            loss_gan = losses.g_loss(opts.loss, fake_a_out.float()) + losses.g_loss(opts.loss, fake_b_out.float())
            loss_cycle = F.l1_loss(out["rec_a"].float(), real_a) + F.l1_loss(out["rec_b"].float(), real_b)
            loss_idt = (F.l1_loss(out["idt_a"].float(), real_a) + F.l1_loss(out["idt_b"].float(), real_b)) \
                if identity else torch.zeros((), device=ctx.device)
            loss_g = loss_gan + opts.cycle_weight * (loss_cycle + opts.identity_weight * loss_idt)
        ctx.optimize("g", loss_g)
        D.requires_grad_(True)

        g = torch.Generator(ctx.device).manual_seed(latents.mix(seed + 17, step * ctx.dist.world + ctx.dist.rank))
        pooled_a = self.pools[0].query(out["fake_a"].detach(), g)
        pooled_b = self.pools[1].query(out["fake_b"].detach(), g)
        n = len(real_a)
        with ctx.autocast():  # real and fake in one pass: instance norm keeps the samples independent
            d_a, d_b = self.D_train(torch.cat([real_a, pooled_a.to(real_a.dtype)]),
                                    torch.cat([real_b, pooled_b.to(real_b.dtype)]))
            d_a, d_b = d_a.float(), d_b.float()
            loss_d = losses.d_loss(opts.loss, d_a[:n], d_a[n:]) + losses.d_loss(opts.loss, d_b[:n], d_b[n:])
        ctx.optimize("d", loss_d)
        with torch.no_grad():
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_gan": loss_gan.detach(),
                    "loss_cycle": loss_cycle.detach(), "loss_idt": loss_idt.detach(),
                    "d_real": (d_a[:n].mean() + d_b[:n].mean()) / 2, "d_fake": (d_a[n:].mean() + d_b[n:].mean()) / 2}

    @torch.no_grad()
    def evaluate(self, sampler) -> dict:
        """Photos of both domains translated whole at their own size (the held-out testA/ and testB/ where the data
        has them), as `gan translate` would: the share judged the target domain and the grey SSIM to the input;
        and RUN/translations/step-N.png, inputs over outputs."""
        from gancli.data.imageio import captioned, grid_image, save_image

        ctx = self.ctx
        if getattr(self, "monitor", None) is None:
            self.monitor = TranslationMonitor.for_run(self.opts.data, self.opts.data_b, ctx.data.names, ctx.data.channels,
                                                      ctx.device, min(self.opts.eval_samples, 100), self.opts.seed)
            if not self.monitor.held_out:
                ctx.log("--eval-every: no testA/ and testB/ beside the training photos: measured on training photos")
        row, outputs = self.monitor.measure(sampler, ctx.device)
        if ctx.dist.main:
            hw = tuple(self.monitor.photos["a2b"][0].shape[-2:])  # photos of other sizes are shown at this one
            fit = lambda x: x if tuple(x.shape[-2:]) == hw else \
                F.interpolate(x[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]
            k = min(4, *(len(p) for p in self.monitor.photos.values()))
            shown = [fit(x) for d in ("a2b", "b2a") for x in self.monitor.photos[d][:k] + outputs[d][:k]]
            picture = grid_image(torch.stack(shown), nrow=k)
            a, b = ctx.data.names
            caption = f"step {ctx.step}: inputs over outputs, {a} -> {b} (top), {b} -> {a}"
            save_image(captioned(picture, caption), ctx.out / "translations" / f"step-{ctx.step:08d}.png")
        return row

    def training_record(self) -> dict:
        return {"cycle_weight": self.opts.cycle_weight, "identity_weight": self.opts.identity_weight,
                "pool_size": self.opts.pool_size, "init_from": self.opts.init_from, "crop": self.ctx.crop, "load_size": int(self.images_a.shape[-1])}


@register
class CycleGAN(TranslationFamily):
    name = "cyclegan"
    step_bytes_per_pixel = 119000  # 2.4 GB at 128 px crops, batch 1: two of each network
    description = "CycleGAN (Zhu et al. 2017): ResNet generators and 70x70 PatchGAN discriminators"
    options = TranslationFamily.options + BLOCKS + UPSAMPLE + INIT_FROM + group(
        "cyclegan options",
        Option("cycle_weight", float, 10.0, "Weight of the cycle-consistency loss.", check=non_negative,
               resume=True),
        Option("identity_weight", float, 0.5, "Identity loss weight, relative to --cycle-weight.",
               check=non_negative, resume=True),
        Option("pool_size", int, 50, "Generated-image history for D.", check=non_negative, resume=True),
        Option("load_size", int, None, "Resize the images to this before the random --size crop (the reference: "
                                       "286 for 256 px photos; default --size x 286/256). A --size well under it "
                                       "trains on crops at the photos' own scale: less memory and time, and the "
                                       "model still translates whole photos.", check=between(4, 8192), resume=True),
    )
    defaults = {"loss": "lsgan", "batch_size": 1, "mirror": True, "random_crop": True, "upsample": "transpose"}

    def check_options(self, opts):
        if opts.upsample not in UPSAMPLINGS:
            raise ValueError(f"cyclegan's generator upsamples by {' or '.join(UPSAMPLINGS)}, not {opts.upsample}")
        losses.check_wired(self.name, opts.loss, CycleGANObjective.wires)

    def build(self, channels: int = 3, g_width: int = OPTION, d_width: int = OPTION, n_blocks: int = OPTION,
              upsample: str = OPTION, d_layers: int = 3, directions: list[str] = ("a2b", "b2a")):
        unknown = set(directions) - {"a2b", "b2a"}
        if unknown or not directions:
            raise ValueError(f"directions must be a2b and/or b2a, not {sorted(unknown) or 'none'}")
        generators = GeneratorPair(**{d: ResnetGenerator(channels, g_width, n_blocks, upsample) for d in directions})
        # D_b judges outputs of a2b (domain B), D_a those of b2a
        discriminators = DiscriminatorPair(**{d[-1]: PatchDiscriminator(channels, d_width, d_layers)
                                              for d in directions})
        return {"generator": _init(generators), "discriminator": _init(discriminators)}

    def load_data(self, opts) -> TrainingData:
        chosen = self._laptop_size(opts) if opts.size is None and not opts.resume else None
        crop = opts.size or 256
        load = opts.load_size or (math.ceil(crop * LOAD_RATIO) if opts.random_crop else crop)
        if load < crop:
            raise DataError(f"--load-size {load} is smaller than the --size {crop} crop cut from it")
        if crop < 24:  # three stride-2 convolutions, then two 4x4 ones: anything smaller leaves no patch to judge
            raise DataError(f"--size {crop}: the PatchGAN discriminator needs crops of at least 24 px")
        domains, names = load_two_domains(opts, opts.channels or 3, load)
        if chosen:
            domains[0].notes.insert(0, chosen)
        return TrainingData(domains, crop, names, dataset=Path(opts.data).resolve().name)

    @staticmethod
    def _laptop_size(opts) -> str | None:
        """Without --size, crops of CROP px cut from the photos at their own scale (loaded at LOAD_RATIO of their
        side, as the reference loads 256 px photos at 286): a quarter of whole 256 px photos' arithmetic and memory,
        and the fully convolutional generator still translates whole photos. Written into the options, so a resume
        keeps it. (Class selections of one labelled folder keep the size they had.)"""
        if opts.domains and ":" in opts.domains:
            return None
        side = photo_side(domain_folders(opts.data, opts.data_b)[0])
        crop, load = min(CROP, side), opts.load_size or math.ceil(side * LOAD_RATIO)
        opts.values["size"], opts.values["load_size"] = crop, load
        if crop == side:
            return (f"--size {crop} --load-size {load} chosen: the photos' own size, loaded {load - side} px larger "
                    "and cropped at random, as the reference does")
        return (f"--size {crop} --load-size {load} chosen: {crop} px crops of the photos at their own scale "
                f"({side} px); whole photos (--size {side}) would take about {round((side / crop) ** 2)}x the "
                "time and memory per image, and the model translates whole photos either way")

    def arch_args(self, opts, data):
        return self.option_args(opts, channels=data.channels)

    def objective(self, ctx):
        return CycleGANObjective(ctx)

    def convert(self, files, name=None, domains=None, direction=None):
        """The reference implementation's generators (``latest_net_G_A.pth`` is A->B) -> (config, state)."""
        from gancli.store.weights import WeightsError, read_state_dict

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
    from gancli.store.weights import WeightsError

    if "model.1.weight" not in state:
        raise WeightsError(f"{path} does not look like a CycleGAN ResNet generator (no model.1.weight)")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    w = state["model.1.weight"]
    return {"channels": int(w.shape[1]), "g_width": int(w.shape[0]), "n_blocks": len(blocks)}
