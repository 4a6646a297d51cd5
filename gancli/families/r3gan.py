"""R3GAN (Huang, Gokaslan, Kuleshov & Tompkin, NeurIPS 2024, "The GAN is dead; long live the GAN!"): the
relativistic pairing loss with R1 and R2 on a plain modern ResNet, and none of StyleGAN's tricks.

The loss is the losses table's ``rpgan``: D's loss softplus(D(G(z)) - D(x)) on pairs, G's the mirror, both
penalties on every step. The paper proves that pairing with both penalties is locally convergent where the
non-saturating loss is not, and that it keeps every mode (1,000 of 1,000 on Stacked-MNIST). Its gamma, learning
rate and Adam's beta2 follow a schedule in the paper; here gamma falls from ``--r1r2-gamma`` to
``--gamma-end`` of it along a cosine over the run (the paper's CIFAR-10 run: 0.05 to 0.005), and the learning
rates decay in the second half with ``--lr-decay``.

The networks, as the paper describes them (written here from its text and figures):

- a residual block is an inverted bottleneck: 1x1 to ``expansion`` times the width, a grouped 3x3 (``cardinality``
  groups), 1x1 back, with a leaky ReLU and a bias before each of the last two; no normalisation;
- fix-up initialisation: every weight drawn with the variance its fan-in keeps the signal at, the activations'
  gain scaled by L^-1/4 for L blocks in all, and each block's last layer at zero, so that every block starts as
  the identity and the network as a shallow one;
- resampling by a fixed [1, 2, 1] filter (bilinear-like, no learnt transposed convolutions), widths changed by
  1x1 convolutions beside it;
- G starts from a learnt 4x4 (or 7x7, for 28 px) basis scaled per channel by a linear map of z; D ends with a
  depthwise convolution over its last 4x4 (7x7) map and a linear layer. Conditional models: G takes a learnt
  embedding of the label beside z; D projects its last features on the label's embedding.

Image sides are 4 or 7 times a power of two (8, 14, 16, 28, 32, 56, 64 ...), as DCGAN's.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancli.families import losses
from gancli.families.adversarial import CONDITIONAL, GAN, R1R2, WIDTHS, AdversarialObjective, noise_arch_args
from gancli.families.base import OPTION, Family
from gancli.families.dcgan import LADDER_SIZES, spatial_ladder
from gancli.options import Option, at_least, group
from gancli.registry import register

SLOPE = 0.2  # the leaky ReLU's
ACTIVATION_GAIN = math.sqrt(2 / (1 + SLOPE ** 2))  # what keeps a leaky ReLU's output at its input's variance


def fan_in_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """Weights N(0, gain^2 / fan-in), no bias: the signal's variance kept through the layer (gain 0: a zero layer)."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in)) if gain else nn.init.zeros_(layer.weight)
    return layer


class BiasedLeakyReLU(nn.Module):
    """A per-channel bias, then the leaky ReLU: the block's convolutions have no bias of their own."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), SLOPE)


class Block(nn.Module):
    """x + 1x1(act(grouped 3x3(act(1x1(x))))): an inverted bottleneck that starts as the identity."""

    def __init__(self, width: int, cardinality: int, expansion: int, total_blocks: int):
        super().__init__()
        wide = width * expansion
        if wide % cardinality:
            raise ValueError(f"cardinality {cardinality} must divide the block's {wide} expanded channels "
                             f"(width {width} x expansion {expansion})")
        gain = ACTIVATION_GAIN * total_blocks ** -0.25  # fix-up: L blocks of 3 layers, L^(-1/(2*3-2))
        self.expand = fan_in_init(nn.Conv2d(width, wide, 1, bias=False), gain)
        self.act1 = BiasedLeakyReLU(wide)
        self.mix = fan_in_init(nn.Conv2d(wide, wide, 3, padding=1, groups=cardinality, bias=False), gain)
        self.act2 = BiasedLeakyReLU(wide)
        self.contract = fan_in_init(nn.Conv2d(wide, width, 1, bias=False), 0.0)

    def forward(self, x):
        return x + self.contract(self.act2(self.mix(self.act1(self.expand(x)))))


def _binomial(channels: int, scale: float) -> torch.Tensor:
    """The [1, 2, 1] x [1, 2, 1] filter per channel, summing to ``scale``: built from numbers (the meta device
    would run reference ops on tensor arithmetic: gancli.store.meta)."""
    k = [[a * b * scale / 16 for b in (1.0, 2.0, 1.0)] for a in (1.0, 2.0, 1.0)]
    return torch.tensor([[k]] * channels)


class Upsample(nn.Module):
    """x2 by zero insertion and the [1, 2, 1] filter (bilinear-like): each output a fixed mix of its neighbours."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("kernel", _binomial(channels, 4.0), persistent=False)

    def forward(self, x):
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=2, padding=1, output_padding=1,
                                  groups=x.shape[1])


class Downsample(nn.Module):
    """The [1, 2, 1] low-pass, then every other pixel: no aliasing of what D reads."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("kernel", _binomial(channels, 1.0), persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, padding=1, groups=x.shape[1])


def stage_widths(image_size: int, width: int) -> tuple[int, list[int]]:
    """(the basis's side, each stage's width from the basis up): ``width`` at the image's size, doubling per
    halving of the side, at most 4x."""
    start, n = spatial_ladder(image_size)
    return start, [width * min(2 ** (n - i), 4) for i in range(n + 1)]


class R3Generator(nn.Module):
    def __init__(self, latent_dim: int, image_size: int, channels: int, width: int, blocks: int, cardinality: int,
                 expansion: int, num_classes: int = 0, embedding: int = 0):
        super().__init__()
        start, widths = stage_widths(image_size, width)
        total = blocks * len(widths)
        self.latent_dim, self.num_classes, self.start = latent_dim, num_classes, start
        self.embed = fan_in_init(nn.Linear(num_classes, embedding, bias=False)) if num_classes else None
        self.basis = nn.Parameter(torch.randn(widths[0], start, start))
        self.scales = fan_in_init(nn.Linear(latent_dim + (embedding if num_classes else 0), widths[0], bias=False))
        self.stages = nn.ModuleList()
        for i, w in enumerate(widths):
            layers = []
            if i:  # a new width by a 1x1 convolution, then the upsampling
                if widths[i - 1] != w:
                    layers.append(fan_in_init(nn.Conv2d(widths[i - 1], w, 1, bias=False)))
                layers.append(Upsample(w))
            layers += [Block(w, cardinality, expansion, total) for _ in range(blocks)]
            self.stages.append(nn.Sequential(*layers))
        self.to_image = fan_in_init(nn.Conv2d(widths[-1], channels, 1, bias=False))

    def forward(self, z, labels=None):
        z = z.flatten(1)
        if self.num_classes:
            z = torch.cat([z, self.embed(F.one_hot(labels, self.num_classes).to(z.dtype))], 1)
        x = self.basis.to(z.dtype)[None] * self.scales(z)[:, :, None, None]
        for stage in self.stages:
            x = stage(x)
        return self.to_image(x)


class R3Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, blocks: int, cardinality: int, expansion: int,
                 num_classes: int = 0, embedding: int = 0):
        super().__init__()
        start, widths = stage_widths(image_size, width)
        widths = widths[::-1]  # from the image's size down to the basis's
        total = blocks * len(widths)
        self.num_classes = num_classes
        self.from_image = fan_in_init(nn.Conv2d(channels, widths[0], 1, bias=False))
        self.stages = nn.ModuleList()
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [Block(w, cardinality, expansion, total) for _ in range(blocks)]
            if i < len(widths) - 1:
                layers.append(Downsample(w))
                if widths[i + 1] != w:
                    layers.append(fan_in_init(nn.Conv2d(w, widths[i + 1], 1, bias=False)))
            self.stages.append(nn.Sequential(*layers))
        self.basis = fan_in_init(nn.Conv2d(widths[-1], widths[-1], start, groups=widths[-1], bias=False))
        self.head = fan_in_init(nn.Linear(widths[-1], embedding if num_classes else 1, bias=False))
        self.embed = fan_in_init(nn.Linear(num_classes, embedding, bias=False), 1 / math.sqrt(embedding)) \
            if num_classes else None

    def forward(self, x, labels=None):
        """One score per image (a conditional D: its features projected on the label's embedding)."""
        h = self.from_image(x)
        for stage in self.stages:
            h = stage(h)
        out = self.head(self.basis(h).flatten(1))
        if self.num_classes:
            out = (out * self.embed(F.one_hot(labels, self.num_classes).to(out.dtype))).sum(1, keepdim=True)
        return out.flatten()


class ScheduledR1R2(R1R2):
    """R1 and R2 with gamma falling from ``start`` to ``end`` along a cosine over the run (R3GAN's schedule)."""

    def __init__(self, start: float, end: float):
        super().__init__(start)
        self.start, self.end = start, end

    def gamma_at(self, progress: float) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def discriminator(self, obj, step, real, fake, labels, real_extra, fake_extra, stats):
        self.gamma = self.gamma_at(step / max(1, obj.ctx.total_steps))
        stats["gamma"] = torch.tensor(self.gamma)
        return super().discriminator(obj, step, real, fake, labels, real_extra, fake_extra, stats)


class R3Objective(AdversarialObjective):
    """The adversarial objective with the scheduled penalties in place of the fixed ones the loss would add."""

    shown = AdversarialObjective.shown + ("r1", "gamma")

    def __init__(self, ctx):
        super().__init__(ctx)
        opts = ctx.opts
        self.terms = [t for t in self.terms if not isinstance(t, R1R2)] \
            + [ScheduledR1R2(opts.r1r2_gamma, opts.r1r2_gamma * opts.gamma_end)]


R3GAN_OPTIONS = group(
    "R3GAN networks",
    Option("r3_blocks", int, 2, "Residual blocks per resolution, in G and in D.", check=at_least(1), resume=True),
    Option("cardinality", int, 4, "Groups of each block's 3x3 convolution (it must divide the expanded width).",
           check=at_least(1), resume=True),
    Option("expansion", int, 2, "How much wider each block's inner layers are than its width.", check=at_least(1),
           resume=True),
    Option("gamma_end", float, 0.1, "Where the R1/R2 weight ends, as a share of --r1r2-gamma (a cosine over the "
           "run; the paper: 0.1). 1: constant.", check=lambda v: None if 0 <= v <= 1 else "must be in [0, 1]",
           resume=True),
)


@register
class R3GAN(Family):
    name = "r3gan"
    description = "R3GAN (Huang et al. 2024): relativistic pairing with R1 and R2 on a modern ResNet"
    photo_size = 64
    size_rule = LADDER_SIZES
    options = GAN + CONDITIONAL + WIDTHS + R3GAN_OPTIONS
    defaults = {"loss": "rpgan", "beta1": 0.0, "beta2": 0.99, "g_width": 32, "d_width": 32}
    arch_options = {"blocks": "r3_blocks"}

    def check_options(self, opts):
        if losses.get(opts.loss).penalty != losses.R1_R2:
            from gancli.errors import OptionError

            raise OptionError(f"r3gan trains with --loss rpgan (its R1 and R2 follow a schedule here), not "
                              f"{opts.loss}; to try another loss, use --arch dcgan")

    def build(self, latent_dim: int = OPTION, image_size: int = 32, channels: int = 3, g_width: int = OPTION,
              d_width: int = OPTION, blocks: int = OPTION, cardinality: int = OPTION, expansion: int = OPTION,
              num_classes: int = 0):
        embedding = 128 if num_classes else 0
        return {"generator": R3Generator(latent_dim, image_size, channels, g_width, blocks, cardinality, expansion,
                                         num_classes, embedding),
                "discriminator": R3Discriminator(image_size, channels, d_width, blocks, cardinality, expansion,
                                                 num_classes, embedding)}

    def arch_args(self, opts, data):
        spatial_ladder(data.crop)  # a clear error before anything is built
        return noise_arch_args(opts, data, opts.conditional) | self.option_args(opts)

    def objective(self, ctx):
        return R3Objective(ctx)
