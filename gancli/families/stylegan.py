"""StyleGAN (Karras, Laine & Aila 2019), with StyleGAN2's modulated convolutions (Karras et al. 2020).

z is not fed to the image network. A mapping network (an 8-layer MLP) turns z into w, and each layer of the
synthesis network reads its own copy of w as a *style*: it scales the layer's input channels (modulation) and
rescales the outputs to unit variance (demodulation, StyleGAN2's replacement for AdaIN, which caused droplet
artefacts). The synthesis starts from a learned 4x4 constant; per-pixel noise with a learned strength per layer
supplies the stochastic detail. Coarse layers (4-8 px) set pose and shape, middle ones (16-32 px) features, the
finest ones colour and texture: ``gan mix`` shows this by swapping styles between two images.

Training: non-saturating loss with lazy R1 on D (every 16 steps), style-mixing regularisation (with probability
0.9 a batch switches from one w to another at a random layer, so neighbouring layers do not learn to depend on
each other), an average w tracked for the truncation trick (w' = w_avg + psi (w - w_avg)), equalised learning rates
(weights stored at unit scale, multiplied by He's constant at run time; the mapping at 1/100 the rate) and,
with --ema, the averaged generator that is sampled and exported.

Sampling must be a function of (seed, i) alone, so in eval mode the noise inputs are fixed buffers drawn at
initialisation (StyleGAN3's "const" noise); training draws fresh noise.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancli import latents
from gancli.errors import UnknownNameError
from gancli.families import losses
from gancli.families.abilities import GENERATE, Ability
from gancli.families.adversarial import GAN, PACK, R1, WIDTHS, AdversarialObjective, check_pack, noise_arch_args, pack
from gancli.families.base import OPTION, Family
from gancli.families.model import GANModel
from gancli.options import Option, at_least, group, non_negative, unit
from gancli.registry import register

SQRT2 = math.sqrt(2.0)


def lrelu(x):
    return F.leaky_relu(x, 0.2) * SQRT2  # gain sqrt(2) keeps unit variance through the nonlinearity


class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_features), lr_mul, activation

    def forward(self, x):
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(x) if self.activation else x


class EqualConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, activation: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale, self.padding, self.activation = 1 / math.sqrt(in_ch * kernel * kernel), kernel // 2, activation

    def forward(self, x):
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return lrelu(x) if self.activation else x


class Mapping(nn.Module):
    """z -> w, and the running average of w that truncation pulls towards."""

    def __init__(self, latent_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        self.net = nn.Sequential(*[EqualLinear(latent_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul, activation=True)
                                   for i in range(layers)])
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.w_avg_beta = w_avg_beta

    def forward(self, z, truncation: float = 1.0, track: bool = True):
        w = self.net(z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8))
        if self.training and track:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation != 1:
            w = self.w_avg.lerp(w, truncation)
        return w


class ModulatedConv(nn.Module):
    """A convolution whose input channels are scaled by a style, and whose outputs are demodulated.

    Written as scale-input, shared-weight convolution, rescale-output: the same arithmetic as StyleGAN2's
    per-sample weights, but one ordinary convolution for the whole batch (fast on the CPU)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.scale, self.padding = 1 / math.sqrt(in_ch * kernel * kernel), kernel // 2
        self.demodulate, self.up = demodulate, up

    def forward(self, x, w):
        styles = self.affine(w)
        weight = self.weight * self.scale
        x = x * styles[:, :, None, None]
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:  # 1 / sqrt(sum over inputs and taps of (weight * style)^2), per sample and output
            d = torch.rsqrt(styles.pow(2) @ weight.pow(2).sum((2, 3)).t() + 1e-8)
            x = x * d[:, :, None, None]
        return x


class StyledLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x, w):
        x = self.conv(x, w)
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype) if self.training \
            else self.noise_const.to(x.dtype)
        return lrelu(x + noise * self.noise_strength + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(in_ch, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None]


def resolutions(image_size: int) -> list[int]:
    n = int(math.log2(image_size)) if image_size >= 8 else 0
    if image_size < 8 or 2 ** n != image_size:
        raise ValueError(f"stylegan image_size must be a power of two, at least 8 (e.g. 32, 64), not {image_size}")
    return [2 ** k for k in range(2, n + 1)]


def widths(g_width: int, image_size: int, max_width: int) -> dict[int, int]:
    """Channels per resolution: g_width at the top, doubling per halving, capped at max_width."""
    return {r: min(max_width, g_width * image_size // r) for r in resolutions(image_size)}


class Synthesis(nn.Module):
    """The image network: 4x4 constant, then per resolution two styled 3x3 convolutions (the first upsamples) and
    an RGB output added to the upsampled image so far (StyleGAN2's skip architecture).

    Style ``k`` drives the layers listed in ``layer_of``: w[0] the 4x4 convolution, then two per resolution; the
    last w only the final RGB output. ``num_ws`` = 2 log2(size) - 2."""

    def __init__(self, w_dim: int, image_size: int, channels: int, g_width: int, max_width: int):
        super().__init__()
        ch = widths(g_width, image_size, max_width)
        res = resolutions(image_size)
        self.const = nn.Parameter(torch.randn(ch[4], 4, 4))
        self.convs, self.rgbs = nn.ModuleList(), nn.ModuleList()
        self.resolution_of_w = []
        for r in res:
            if r == 4:
                self.convs.append(StyledLayer(ch[4], ch[4], w_dim, 4))
                self.resolution_of_w.append(4)
            else:
                self.convs.append(StyledLayer(ch[r // 2], ch[r], w_dim, r, up=True))
                self.convs.append(StyledLayer(ch[r], ch[r], w_dim, r))
                self.resolution_of_w += [r, r]
            self.rgbs.append(ToRGB(ch[r], channels, w_dim))
        self.resolution_of_w.append(image_size)  # the last RGB output's own w
        self.num_ws = len(self.resolution_of_w)

    def forward(self, ws):
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.num_ws, -1)
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        x = self.convs[0](x, ws[:, 0])
        image, k = self.rgbs[0](x, ws[:, 1]), 1
        for i, rgb in enumerate(self.rgbs[1:]):
            x = self.convs[1 + 2 * i](x, ws[:, k])
            x = self.convs[2 + 2 * i](x, ws[:, k + 1])
            image = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False) + rgb(x, ws[:, k + 2])
            k += 2
        return image


class StyleGenerator(nn.Module):
    def __init__(self, latent_dim: int, w_dim: int, mapping_layers: int, image_size: int, channels: int,
                 g_width: int, max_width: int):
        super().__init__()
        self.mapping = Mapping(latent_dim, w_dim, mapping_layers)
        self.synthesis = Synthesis(w_dim, image_size, channels, g_width, max_width)
        self.num_ws = self.synthesis.num_ws

    def forward(self, z, labels=None, truncation: float = 1.0, mix_z=None, mix_from: int | None = None):
        """Images for z; with ``mix_z``, layers from ``mix_from`` on take the styles of ``mix_z`` instead."""
        w = self.mapping(z, truncation)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if mix_z is not None and mix_from is not None and mix_from < self.num_ws:
            ws[:, mix_from:] = self.mapping(mix_z, truncation, track=False)[:, None]
        return self.synthesis(ws)

    def mixed_styles(self, base: torch.Tensor, other: torch.Tensor, layers: list[int]) -> torch.Tensor:
        """Per-layer styles (N, num_ws, w_dim): ``base``'s w everywhere but at ``layers``, which take ``other``."""
        ws = base[:, None].repeat(1, self.num_ws, 1)
        ws[:, layers] = other
        return ws

    def levels(self) -> dict[str, list[int]]:
        """Which styles the paper's coarse (4-8 px), middle (16-32 px) and fine (the rest) levels are. Small models
        keep all three: the top resolution is always fine, and a 16 px model's coarse level is 4 px alone."""
        res = sorted(set(self.synthesis.resolution_of_w))
        coarse_top = min(8, res[-3]) if len(res) >= 3 else res[0]
        table = {"coarse": [], "middle": [], "fine": []}
        for k, r in enumerate(self.synthesis.resolution_of_w):
            table["coarse" if r <= coarse_top else "middle" if r <= 32 and r < res[-1] else "fine"].append(k)
        return table


class MinibatchStd(nn.Module):
    """Appends the average standard deviation across groups of samples: D sees a batch's diversity, so a
    collapsed G is easy to spot (Karras et al. 2018)."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x):
        n, c, h, w = x.shape
        g = math.gcd(self.group_size, n)
        y = x.reshape(g, -1, c, h, w).float()
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt().mean((1, 2, 3))  # (n/g,)
        y = y.to(x.dtype).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], 1)


class StyleDiscriminator(nn.Module):
    """StyleGAN2's residual discriminator: from-RGB, a residual block per halving, minibatch stddev, two dense."""

    def __init__(self, image_size: int, channels: int, d_width: int, max_width: int, pack: int = 1):
        super().__init__()
        ch = widths(d_width, image_size, max_width)
        res = resolutions(image_size)[::-1]  # image_size ... 4
        self.pack = pack
        self.from_rgb = EqualConv(channels * pack, ch[image_size], 1)
        self.blocks = nn.ModuleList()
        for r in res[:-1]:
            self.blocks.append(nn.ModuleDict({"conv0": EqualConv(ch[r], ch[r], 3), "conv1": EqualConv(ch[r], ch[r // 2], 3),
                                              "skip": EqualConv(ch[r], ch[r // 2], 1, bias=False, activation=False)}))
        self.mbstd = MinibatchStd()
        self.conv = EqualConv(ch[4] + 1, ch[4], 3)
        self.fc = EqualLinear(ch[4] * 16, ch[4], activation=True)
        self.out = EqualLinear(ch[4], 1)

    def forward(self, x, labels=None):
        x = self.from_rgb(pack(x, self.pack))  # one logit per pack of images
        for b in self.blocks:
            skip = b["skip"](F.avg_pool2d(x, 2))
            x = F.avg_pool2d(b["conv1"](b["conv0"](x)), 2)
            x = (x + skip) / SQRT2
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1))).flatten()


class StyleObjective(AdversarialObjective):
    """The adversarial objective with lazy R1, and style mixing in every generated batch."""

    wires = frozenset({losses.REAL_OUTPUTS})  # R1 is its penalty: a loss's own (R1 and R2, WGAN-GP's) is not wired

    def __init__(self, ctx):
        opts = ctx.opts
        super().__init__(ctx, terms=(R1(opts.r1_gamma, opts.r1_every),))
        self.num_ws = self.G.num_ws

    def generate(self, z, labels, index):
        # whether this batch mixes, where, and the second z: a function of (seed, index, rank), so a resume repeats it
        g = torch.Generator().manual_seed(latents.mix(self.opts.seed + 23, index * self.ctx.dist.world
                                                       + self.ctx.dist.rank))
        if float(torch.rand((), generator=g)) >= self.opts.style_mixing:
            return self.G_train(z, labels)
        mix_from = int(torch.randint(1, self.num_ws, (), generator=g))
        mix_z = torch.randn(z.shape, generator=g).to(z.device)
        return self.G_train(z, labels, mix_z=mix_z, mix_from=mix_from)


TRUNCATION = Option("truncation", float, None, "Psi, pulling each style towards the average (1: none; 0.7 is usual; "
                                              "0: the average image).", operations=(GENERATE, "style_mix"))
STYLE_SPACE = Ability("style space", operations={
    "truncation": "--truncation", "map": "w space", "synthesize": "w space", "walk_in_w": "w space",
    "mixing_levels": "style mixing", "style_mix": "style mixing"}, options=(TRUNCATION,))


class StyleGANModel(GANModel):
    """A loaded StyleGAN: beyond sampling, truncation, the w space and style mixing."""

    abilities = (STYLE_SPACE,)

    def generator_options(self, truncation: float | None = None, **rest) -> dict:
        return super().generator_options(**rest) | ({} if truncation is None else
                                                    {"truncation": self.truncation(truncation)})

    def describe_use(self, truncation: float | None = None, **rest) -> list[str]:
        return ([] if truncation is None else [f"truncation {truncation:g}"]) + super().describe_use(**rest)

    def truncation(self, psi: float | None) -> float:
        """A checked psi (None: none, 1.0). Values above 1 extrapolate away from the average, as StyleGAN allows."""
        if psi is None:
            return 1.0
        if not math.isfinite(psi) or not -1 <= psi <= 2:
            raise ValueError(f"--truncation {psi:g}: psi runs from 0 (the average image) to 1 (no truncation)")
        return float(psi)

    @torch.inference_mode()
    def map(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """z -> w through the mapping network (with truncation psi): (N, w_dim)."""
        return self.generator.mapping(z.to(self.device), truncation=self.truncation(truncation)).cpu()

    @torch.inference_mode()
    def synthesize(self, ws: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images from w: (N, w_dim) for one style everywhere, or (N, layers, w_dim) for one per layer."""
        return torch.cat([self.generator.synthesis(w.to(self.device)).float().cpu() for w in ws.split(batch_size)])

    def walk_in_w(self, keys: torch.Tensor, steps: int, loop: bool = True, truncation: float | None = None,
                  **use) -> torch.Tensor:
        """Frames on straight lines between the key latents' w (w is not Gaussian: slerp's argument does not hold
        there), ``steps`` apart; with ``loop`` back to the first."""
        self.check_use(**use)
        return self.synthesize(latents.walk(self.map(keys, truncation), steps, "lerp", loop=loop))

    def mixing_levels(self) -> dict[str, list[int]]:
        return self.generator.levels()

    @torch.inference_mode()
    def style_mix(self, row_seeds: list[int], col_seeds: list[int], levels: str | list[str] = "coarse",
                  truncation: float | None = None) -> tuple[torch.Tensor, int]:
        """The style-mixing figure of Karras et al. 2019: column sources along the top, row sources down the side;
        each cell is its column source with the styles of ``levels`` (coarse, middle, fine) taken from its row
        source. Returns the images in grid order (a blank corner first) and the grid's width."""
        table = self.mixing_levels()
        names = [levels] if isinstance(levels, str) else list(levels)
        names = [n.strip() for part in names for n in part.split(",") if n.strip()]
        for n in names:
            if n not in table:
                raise UnknownNameError("style level", n, list(table))
        layers = sorted({i for n in names for i in table[n]})
        if not layers:
            raise ValueError(f"--levels {levels!r} selects no styles of this {self.image_size} px model "
                             f"(its levels: {', '.join(k for k, v in table.items() if v)})")
        w_rows = self.map(self.latents_for(seeds=row_seeds), truncation)
        w_cols = self.map(self.latents_for(seeds=col_seeds), truncation)
        rows, cols = self.synthesize(w_rows), self.synthesize(w_cols)
        cells = [self.synthesize(self.generator.mixed_styles(w_cols, w_rows[r], layers)) for r in range(len(row_seeds))]
        blank = torch.full_like(cols[:1], -1.0)
        grid = [blank, cols] + [torch.cat([rows[r:r + 1], cells[r]]) for r in range(len(row_seeds))]
        return torch.cat(grid), len(col_seeds) + 1


@register
class StyleGAN(Family):
    name = "stylegan"
    step_bytes_per_pixel = 11250  # 3.4 GB at 64 px, batch 64
    description = ("StyleGAN (Karras et al. 2019) with StyleGAN2's modulated convolutions: mapping network, "
                   "styles per layer, noise inputs, style mixing, truncation, lazy R1")
    photo_size = 64  # 64 px: a laptop CPU trains it in hours
    model_class = StyleGANModel
    exported = ("generator",)
    options = GAN + WIDTHS + PACK + group(
        "stylegan options",
        Option("w_dim", int, 128, "Size of w (the style vectors).", check=at_least(1), resume=True),
        Option("mapping_layers", int, 8, "Layers of the mapping network z -> w.", check=at_least(1), resume=True),
        Option("max_width", int, 256, "Cap on the channels of any layer.", check=at_least(1), resume=True),
        Option("r1_gamma", float, 0.05, "R1 penalty weight on D's gradient at real images (0: none).",
               check=non_negative, resume=True),
        Option("r1_every", int, 16, "Apply R1 every N steps, scaled by N (lazy regularisation).", check=at_least(1),
               resume=True),
        Option("style_mixing", float, 0.9, "Share of batches trained with two styles (mixing regularisation).",
               check=unit, resume=True),
    )
    summary = ("A StyleGAN generator (mapping network of {arch_args[mapping_layers]} layers, w of {arch_args[w_dim]}, "
               "modulated convolutions, noise inputs) drawing {images}, trained on {dataset} with gan {gan_version}.")
    examples = ("gan sample {where} -n 64 --truncation 0.7 -o truncated.png",
                "gan mix {where} --rows 1,2,3 --cols 4,5,6 --levels coarse -o mix.png",
                "gan interpolate {where} --space w --seeds 0-3 -o walk.gif")
    # StyleGAN2's optimiser settings; z and w of 128 suit small images
    defaults = {"lr_g": 0.0025, "lr_d": 0.0025, "beta1": 0.0, "beta2": 0.99, "latent_dim": 128, "g_width": 32,
                "d_width": 32}

    def sweep_title(self, option: str) -> str:
        if option == "truncation":
            return "truncation trade-off (lower psi: samples nearer the average w)"
        return super().sweep_title(option)

    def check_options(self, opts):
        check_pack(opts)
        losses.check_wired(self.name, opts.loss, StyleObjective.wires)

    def build(self, latent_dim: int = OPTION, image_size: int = 32, channels: int = 1, w_dim: int = OPTION,
              mapping_layers: int = OPTION, g_width: int = OPTION, d_width: int = OPTION, max_width: int = OPTION,
              pack: int = OPTION):
        return {"generator": StyleGenerator(latent_dim, w_dim, mapping_layers, image_size, channels, g_width,
                                            max_width),
                "discriminator": StyleDiscriminator(image_size, channels, d_width, max_width, pack)}

    def arch_args(self, opts, data):
        resolutions(data.crop)
        return noise_arch_args(opts, data, conditional=False) | {
            "w_dim": opts.w_dim, "mapping_layers": opts.mapping_layers, "g_width": opts.g_width,
            "d_width": opts.d_width, "max_width": opts.max_width}

    def objective(self, ctx):
        return StyleObjective(ctx)
