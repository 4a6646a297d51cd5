"""DCGAN (Radford, Metz & Chintala 2016): strided (transposed) convolutions, batch norm, ReLU in G, LeakyReLU in D.

The spatial ladder starts at 4x4 (32, 64, 128 ... px) or 7x7 (28, 56 ... px) and doubles per block, so MNIST-sized
28x28 images need no padding or resizing. Widths halve per upsampling block from ``width * 2**(blocks-1)``.

With ``num_classes`` the pair is class-conditional (cGAN, Mirza & Osindero 2014): G sees z concatenated with a
one-hot label, and D sees the image with one constant one-hot plane per class stacked on its channels.
(A learned label embedding in G collapsed every class to a single image on MNIST in our runs; the one-hot input
did not.) ``acgan`` (its own module) reuses these networks with an auxiliary classifier head in D.

With ``codes`` (``--codes K``, InfoGAN: Chen et al. 2016) the pair stays unconditional but G draws one of K
categories, and a head on D must name the category back from the image. The category is not a new input: it is the
largest of z's first K entries (uniform over K for Gaussian z), which G replaces by its one-hot, so a sample stays a
pure function of (seed, i) and every command that feeds G noise works unchanged. Maximising that mutual information
gives G K separate pieces of latent space; Chen et al. found the ten digits in them on MNIST. Which factor a category
takes is G's choice, though: in our MNIST run (R3GAN loss, G width 128) z had settled the digit before the categories
were learnt, and they took a stroke style instead (``bench/latent_pieces.py`` shows what each one draws).

With ``mixture`` (``--mixture K``, a Gaussian-mixture latent as in DeLiGAN, Gurumurthy et al. 2017, and GM-GAN,
Ben-Yosef & Weinshall 2018) G's latent is K separate Gaussians, N(mu_k, sigma^2 I) with learnt centres mu_k and a
fixed sigma (``--mixture-sigma``), instead of one. A generator fed one connected Gaussian must spend some samples
between its modes (Tanielian et al. 2020: on MNIST, strokes between digits); separate pieces let it leave the gaps
empty. Like
the InfoGAN category, the component comes from z itself: z's first entry, through the normal CDF, is a uniform
number whose integer part (times K) picks k and whose fractional part is that entry's new value, so a sample is
still a pure function of (seed, i).

``convert`` imports the generator of the classic PyTorch DCGAN example (``netG.pth``, keys ``main.N.*``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancli.data.reading import SizeRule
from gancli.errors import OptionError
from gancli.families import losses
from gancli.families.adversarial import (
    CONDITIONAL,
    GAN,
    PACK,
    WIDTHS,
    AdversarialObjective,
    Term,
    check_pack,
    noise_arch_args,
    pack,
)
from gancli.families.base import OPTION, Family
from gancli.options import Option, group, non_negative, positive
from gancli.registry import register


def largest_ladder_size(side: int) -> int:
    """The largest size at most ``side`` that a DCGAN ladder reaches (4 or 7 times a power of two, at least 8)."""
    return max([8] + [start << n for start in (4, 7) for n in range(1, 12) if start << n <= side])


LADDER_SIZES = SizeRule(largest_ladder_size, "the networks take 4 or 7 times a power of two (8, 14, 16, 28, 32, 56, "
                                             "64 ...)")


def spatial_ladder(image_size: int) -> tuple[int, int]:
    """Return (start_size, number_of_doublings) with start_size * 2**n == image_size."""
    for start in (4, 7):
        size, n = image_size, 0
        while size > start and size % 2 == 0:
            size //= 2
            n += 1
        if size == start and n >= 1:
            return start, n
    raise ValueError(f"the image size must be 4 or 7 times a power of two, at least 8 (e.g. 14, 16, 28, 32, 64, "
                     f"128), got {image_size}")


def _init_dcgan(module: nn.Module):
    # The DCGAN paper's initialisation: N(0, 0.02) for convolutions, N(1, 0.02) for batch-norm scales.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def code_of(z: torch.Tensor, codes: int) -> torch.Tensor:
    """The InfoGAN category of each noise vector: which of its first ``codes`` entries is largest."""
    return z.flatten(1)[:, :codes].argmax(1)


class MixtureLatent(nn.Module):
    """Standard normal z -> a draw from K equally likely Gaussians N(mu_k, sigma^2 I), mu_k learnt (initialised
    uniform in [-1, 1] as DeLiGAN's), sigma fixed: learnt, DeLiGAN's sigmas shrink to 0 unless penalised. Even at
    sigma 1 the pieces barely touch in z's 100 dimensions (centres ~8 apart along the line between them); a small
    sigma leaves G's batch norm little variation within a piece to draw from."""

    def __init__(self, components: int, latent_dim: int, sigma: float = 1.0):
        super().__init__()
        self.sigma = sigma
        self.centres = nn.Parameter(torch.empty(components, latent_dim).uniform_(-1, 1))

    def component(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, z with its first entry made independent of k), both functions of z alone. That entry becomes uniform
        with unit variance rather than normal again: erf exports to ONNX, its inverse does not."""
        uniform = 0.5 * (1 + torch.erf(z[:, 0].float() / math.sqrt(2)))  # float32: MPS has no float64
        scaled = uniform * len(self.centres)
        k = scaled.floor().clamp(max=len(self.centres) - 1)
        first = ((scaled - k - 0.5) * math.sqrt(12)).to(z.dtype)
        return k.long(), torch.cat([first[:, None], z[:, 1:]], 1)

    def steer(self, z: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z with its first entry redrawn inside component k's slice (what ``component`` reads back as k): to see
        what one piece draws."""
        u = (k + torch.rand(len(z), generator=generator)) / len(self.centres)
        z = z.clone()
        z[:, 0] = math.sqrt(2) * torch.erfinv((2 * u - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        return z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k, z = self.component(z)
        return self.centres[k].to(z.dtype) + self.sigma * z


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, image_size: int, channels: int, width: int, max_width: int,
                 num_classes: int = 0, codes: int = 0, mixture: int = 0, mixture_sigma: float = 1.0):
        super().__init__()
        start, n = spatial_ladder(image_size)
        widths = [min(width * 2 ** i, max_width) for i in reversed(range(n))]
        if codes and not 2 <= codes < latent_dim:
            raise ValueError(f"codes {codes} must be at least 2 and below latent_dim {latent_dim}")
        self.latent_dim, self.num_classes, self.codes = latent_dim, num_classes, codes
        in_dim = latent_dim + num_classes
        layers = [nn.ConvTranspose2d(in_dim, widths[0], start, 1, 0, bias=False),
                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_dcgan(self)
        # after _init_dcgan: its own initialisation, and the other weights' draws stay as they were without it
        self.mixture = MixtureLatent(mixture, latent_dim, mixture_sigma) if mixture else None

    def forward(self, z, labels=None):
        z = z.flatten(1)
        if self.mixture is not None:
            z = self.mixture(z)
        if self.codes:
            z = torch.cat([F.one_hot(code_of(z, self.codes), self.codes).to(z.dtype), z[:, self.codes:]], 1)
        if self.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], 1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, max_width: int, num_classes: int = 0,
                 aux_classifier: bool = False, norm: str = "batch", pack: int = 1):
        super().__init__()
        start, n = spatial_ladder(image_size)
        widths = [min(width * 2 ** i, max_width) for i in range(n)]
        self.num_classes, self.aux_classifier, self.pack = num_classes, aux_classifier, pack
        label_planes = num_classes if num_classes and not aux_classifier else 0
        layers = [nn.Conv2d((channels + label_planes) * pack, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=norm in ("none", "spectral")), *_norm(norm, w_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(widths[-1], 1, start, 1, 0)]
        self.net = nn.Sequential(*layers)
        if aux_classifier:
            self.classifier = nn.Linear(widths[-1] * start * start, num_classes)
        _init_dcgan(self)
        if norm == "spectral":  # every weight, the head's too: D's Lipschitz bound is the product of all of them
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x, labels=None):
        """Logits, one per image (per pack of ``pack`` images, each with its label planes); with an auxiliary
        classifier, (logits, class logits)."""
        if self.aux_classifier:
            h = self.net[:-1](x)
            return self.net[-1](h).flatten(), self.classifier(h.flatten(1))
        if self.num_classes:
            planes = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, planes.contiguous(memory_format=_format_of(x))], 1)
        return self.net(pack(x, self.pack)).flatten()


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def _norm(kind: str, width: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(width)]
    if kind == "layer":  # WGAN-GP's advice: no batch statistics in the critic
        return [nn.GroupNorm(1, width)]
    if kind in ("none", "spectral"):  # spectral: the weights are normalised instead (DCGANDiscriminator)
        return []
    raise ValueError(f"unknown discriminator norm {kind!r}: use batch, layer, spectral or none")


def discriminator_norm(opts) -> dict:
    """D's ``d_norm`` for the families on DCGANDiscriminator; none when it is batch norm, so that the configs of
    models made before the choice existed stay as they were."""
    if opts.spectral_norm:
        return {"d_norm": "spectral"}
    # the gradient penalties are per sample: batch statistics in the critic break them (Gulrajani et al.)
    return {"d_norm": "layer"} if losses.get(opts.loss).penalty else {}


SPECTRAL = group(
    "Discriminator",
    Option("spectral_norm", bool, False, "Spectral normalisation (Miyato et al. 2018) of every weight in D, in place "
           "of its batch or layer norm: D's largest singular values are held at 1, which bounds how sharply it can "
           "change and keeps its gradients useful to G. Per sample, so it goes with every --loss.", resume=True),
)


INFOGAN = group(
    "InfoGAN",
    Option("codes", int, 0, "InfoGAN (Chen et al. 2016): G draws one of this many categories (read from its noise) "
           "and D must name it back, so an unconditional G splits into separate modes (Chen et al. found MNIST's "
           "digits in them; which factor they take is G's choice). 0: off.",
           check=lambda v: None if v == 0 or 2 <= v <= 100 else "must be 0 (off) or between 2 and 100", resume=True),
    Option("info_weight", float, 1.0, "Weight of the --codes term (lambda of InfoGAN's mutual-information bound).",
           check=non_negative, resume=True),
)


MIXTURE = group(
    "Mixture latent",
    Option("mixture", int, 0, "G's latent as this many separate Gaussians with learnt centres (DeLiGAN, "
           "Gurumurthy et al. 2017) instead of one, so that it need not draw between its modes (Tanielian et al. "
           "2020). Read from the noise like --codes: every command samples it unchanged. 0: off.",
           check=lambda v: None if v == 0 or 2 <= v <= 1000 else "must be 0 (off) or between 2 and 1000",
           resume=True),
    Option("mixture_sigma", float, 1.0, "Standard deviation of each --mixture Gaussian (DeLiGAN starts at 0.2; on "
           "MNIST that left each piece a few blurred shapes).", check=positive, resume=True),
)


class InfoCode(Term):
    """InfoGAN's term: the cross-entropy of D's category head on generated images against the category each was drawn
    with, minimised by D (the head learns to read it) and by G (it draws categories the head can read)."""

    def __init__(self, weight: float):
        self.weight = weight

    def discriminator(self, obj, step, real, fake, labels, real_extra, fake_extra, stats):
        stats["code_acc"] = (fake_extra.argmax(1) == obj.codes).float().mean().detach()
        return self.weight * F.cross_entropy(fake_extra, obj.codes)

    def generator(self, obj, fake_extra, labels, stats):
        return self.weight * F.cross_entropy(fake_extra, obj.codes)


class InfoObjective(AdversarialObjective):
    """The adversarial objective, remembering the category of the batch G drew last for ``InfoCode``."""

    shown = AdversarialObjective.shown + ("code_acc",)

    def __init__(self, ctx):
        super().__init__(ctx, terms=(InfoCode(ctx.opts.info_weight),))

    def generate(self, z, labels, index: int):
        self.codes = code_of(z, self.opts.codes)
        return super().generate(z, labels, index)


@register
class DCGAN(Family):
    name = "dcgan"
    description = "Deep convolutional GAN (Radford et al. 2016); class-conditional with --conditional"
    photo_size = 64  # DCGAN's own 64 px (Radford et al. 2016)
    size_rule = LADDER_SIZES
    learns_after = 1750  # bench/learns_after.py: MNIST, batch 64: legible 24% at 1,500, 28% at 1,750 (real 96%)
    step_bytes_per_pixel = 1335  # 0.8 GB at 64 px, batch 64 (0.45 GB of it torch's)
    options = GAN + CONDITIONAL + WIDTHS + SPECTRAL + PACK + INFOGAN + MIXTURE

    def check_options(self, opts):
        check_pack(opts)
        if opts.mixture and opts.codes:
            raise OptionError("--mixture and --codes both read z's first entries: give one of them")
        if not opts.mixture and opts.mixture_sigma != 1.0:
            raise OptionError("--mixture-sigma is the spread of each --mixture Gaussian: give --mixture K too")
        if opts.codes:
            for flag, on in (("--conditional", opts.conditional), ("--pack", opts.pack > 1)):
                if on:
                    raise OptionError(f"--codes is for an unconditional, unpacked D: it cannot go with {flag}")
            if opts.codes >= opts.latent_dim:
                raise OptionError(f"--codes {opts.codes} needs --latent-dim above {opts.codes}: the category is read "
                                  "from z's first entries, and the rest is G's noise")
        elif opts.info_weight != 1.0:  # not opts.given: a resume gives every saved option
            raise OptionError("--info-weight weighs the --codes term: give --codes K too")

    def build(self, latent_dim: int = OPTION, image_size: int = 64, channels: int = 3, g_width: int = OPTION,
              d_width: int = OPTION, max_width: int = 512, num_classes: int = 0, d_norm: str = "batch",
              pack: int = OPTION, codes: int = OPTION, mixture: int = OPTION, mixture_sigma: float = OPTION):
        generator = DCGANGenerator(latent_dim, image_size, channels, g_width, max_width, num_classes, codes, mixture,
                                   mixture_sigma)
        if codes:  # D's head names the category; it sees no label planes
            discriminator = DCGANDiscriminator(image_size, channels, d_width, max_width, codes, aux_classifier=True,
                                               norm=d_norm)
        else:
            discriminator = DCGANDiscriminator(image_size, channels, d_width, max_width, num_classes, norm=d_norm,
                                               pack=pack)
        return {"generator": generator, "discriminator": discriminator}

    def arch_args(self, opts, data):
        spatial_ladder(data.crop)  # a clear error before anything is built
        # only when on, so that other models' config stays as it was
        latent = {k: v for k in ("codes", "mixture") if (v := getattr(opts, k))}
        if opts.mixture:
            latent["mixture_sigma"] = opts.mixture_sigma
        return noise_arch_args(opts, data, opts.conditional) | {"g_width": opts.g_width, "d_width": opts.d_width} \
            | discriminator_norm(opts) | latent

    def objective(self, ctx):
        return InfoObjective(ctx) if ctx.opts.codes else AdversarialObjective(ctx)

    def convert(self, files, name=None, **unsupported):
        """The PyTorch DCGAN example's ``netG.pth`` -> (config, state)."""
        import re
        from pathlib import Path

        from gancli.store.weights import WeightsError, read_state_dict

        if unsupported:
            raise ValueError(f"--{next(iter(unsupported))} is for cyclegan checkpoints, not dcgan")
        if len(files) != 1:
            raise ValueError("--arch dcgan converts one generator file")
        path = files[0]
        state = read_state_dict(path)
        convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"main\.(\d+)\.weight", k))
                       and state[k].dim() == 4)
        if not convs:
            raise WeightsError(f"{path} does not look like the DCGAN example's generator (no main.N.weight)")
        first, last = state[f"main.{convs[0]}.weight"], state[f"main.{convs[-1]}.weight"]
        latent, top = int(first.shape[0]), int(first.shape[1])
        image_size = 4 * 2 ** (len(convs) - 1)
        width = top // 2 ** (len(convs) - 2)
        args = {"latent_dim": latent, "image_size": image_size, "channels": int(last.shape[1]), "g_width": width,
                "d_width": width, "max_width": top}
        mapped = {f"generator.net.{k.removeprefix('main.')}": v for k, v in state.items()}
        mapped.setdefault(f"generator.net.{convs[-1]}.bias", torch.zeros(last.shape[1]))  # the example has none
        config = {"name": name or Path(path).stem, "architecture": "dcgan", "arch_args": args,
                  "task": "unconditional", "latent_dim": latent, "image_size": image_size,
                  "channels": args["channels"], "converted_from": [Path(path).name]}
        return config, mapped
