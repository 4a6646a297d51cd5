"""DiscoGAN (Kim, Cha, Kim, Lee & Kim 2017): discovering a relation between two unpaired domains ("bags to shoes").

Two generators (A -> B and B -> A) and two discriminators. Each generator is an encoder-decoder: strided
convolutions down to 4x4 and transposed convolutions back, batch norm, LeakyReLU going down and ReLU going up; each
discriminator is the encoder half ending in one logit. The generators are trained to fool the discriminators and
to reconstruct their input after the round trip (the paper's L_CONST, a squared distance), which forces the
mapping to be a bijection instead of sending every bag to the same shoe.

Unlike CycleGAN (``families/cyclegan``) there are no residual blocks, no instance norm, no identity loss and no image
history: the bottleneck is the point, since a bag and a shoe differ in shape, not only in texture.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli.families import losses
from gancli.families.adversarial import LR_DECAY
from gancli.families.base import OPTION, TrainingData
from gancli.families.translation import (
    DiscriminatorPair,
    GeneratorPair,
    TranslationFamily,
    TranslationObjective,
    load_two_domains,
)
from gancli.options import Option, group, non_negative
from gancli.registry import register


def _depth(image_size: int) -> int:
    n = int(math.log2(image_size)) - 2 if image_size >= 8 else 0
    if image_size < 8 or 2 ** (n + 2) != image_size:
        raise ValueError(f"discogan image_size must be a power of two, at least 8 (e.g. 32, 64), not {image_size}")
    return n


class EncoderDecoder(nn.Module):
    """Image -> image through a 4x4 bottleneck; any size that is a multiple of ``multiple`` keeps its size."""

    def __init__(self, image_size: int, channels: int, width: int):
        super().__init__()
        n = _depth(image_size)
        self.multiple = 2 ** n
        widths = [width * 2 ** i for i in range(n)]
        down, c = [], channels
        for i, w in enumerate(widths):
            down += [nn.Conv2d(c, w, 4, 2, 1, bias=i == 0)] + ([nn.BatchNorm2d(w)] if i else []) \
                + [nn.LeakyReLU(0.2, True)]
            c = w
        up = []
        for w in reversed(widths[:-1]):
            up += [nn.ConvTranspose2d(c, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)]
            c = w
        up += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*down, *up)

    def forward(self, x):
        return self.net(x)


class Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int):
        super().__init__()
        n = _depth(image_size)
        layers, c = [], channels
        for i in range(n):
            w = width * 2 ** i
            layers += [nn.Conv2d(c, w, 4, 2, 1, bias=i == 0)] + ([nn.BatchNorm2d(w)] if i else []) \
                + [nn.LeakyReLU(0.2, True)]
            c = w
        self.net = nn.Sequential(*layers, nn.Conv2d(c, 1, 4))

    def forward(self, x, labels=None):
        return self.net(x).flatten()


class Discovery(TranslationObjective):
    shown = ("loss_d", "loss_g", "loss_rec", "d_real")

    def lr_factor(self, step: int) -> float:
        return self.decay_in_second_half(step) if self.opts.get("lr_decay") else 1.0

    def step(self, step: int) -> dict:
        ctx, opts = self.ctx, self.opts
        real_a = ctx.take(self.images_a, opts.seed + 11, opts.seed + 11, step)[0]
        real_b = ctx.take(self.images_b, opts.seed + 13, opts.seed + 13, step)[0]
        with ctx.autocast():
            out = self.G_train(real_a, real_b, identity=False)
            self.D.requires_grad_(False)  # G's step needs no D gradients
            fake_a_out, fake_b_out = self.D(out["fake_a"], out["fake_b"])
            loss_gan = losses.g_loss(opts.loss, fake_a_out.float()) + losses.g_loss(opts.loss, fake_b_out.float())
            loss_rec = F.mse_loss(out["rec_a"].float(), real_a) + F.mse_loss(out["rec_b"].float(), real_b)
            loss_g = loss_gan + opts.rec_weight * loss_rec
        ctx.optimize("g", loss_g)
        self.D.requires_grad_(True)
        with ctx.autocast():  # real and fake in separate passes: batch norm must not mix them
            real_a_out, real_b_out = self.D_train(real_a, real_b)
            fake_a_out, fake_b_out = self.D_train(out["fake_a"].detach(), out["fake_b"].detach())
            loss_d = losses.d_loss(opts.loss, real_a_out.float(), fake_a_out.float()) \
                + losses.d_loss(opts.loss, real_b_out.float(), fake_b_out.float())
        ctx.optimize("d", loss_d)
        sig = losses.get(opts.loss).logged
        with torch.no_grad():
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_gan": loss_gan.detach(),
                    "loss_rec": loss_rec.detach(), "d_real": (sig(real_a_out).mean() + sig(real_b_out).mean()) / 2,
                    "d_fake": (sig(fake_a_out).mean() + sig(fake_b_out).mean()) / 2}

    def training_record(self) -> dict:
        return {"rec_weight": self.opts.rec_weight, "domains": self.opts.domains}


@register
class DiscoGAN(TranslationFamily):
    name = "discogan"
    description = "DiscoGAN (Kim et al. 2017): encoder-decoder generators both ways, reconstruction loss"
    translates_at_scale = True  # its 4x4 bottleneck holds an object at the scale it was trained on
    options = TranslationFamily.options + LR_DECAY + group(
        "discogan options",
        Option("rec_weight", float, 1.0, "Weight of the reconstruction (round-trip) loss.", check=non_negative,
               resume=True),
    )

    def check_options(self, opts):
        losses.check_wired(self.name, opts.loss, Discovery.wires)

    def build(self, image_size: int = 64, channels: int = 3, g_width: int = OPTION, d_width: int = OPTION,
              directions: list[str] = ("a2b", "b2a")):
        return {"generator": GeneratorPair(**{d: EncoderDecoder(image_size, channels, g_width) for d in directions}),
                "discriminator": DiscriminatorPair(**{d[-1]: Discriminator(image_size, channels, d_width)
                                                      for d in directions})}

    def load_data(self, opts) -> TrainingData:
        domains, names = load_two_domains(opts, opts.channels, opts.size)
        crop = opts.size or domains[0].image_size
        return TrainingData(domains, crop, names, dataset=Path(opts.data).resolve().name)

    def arch_args(self, opts, data):
        _depth(data.crop)
        return self.option_args(opts, image_size=data.crop, channels=data.channels)

    def objective(self, ctx):
        return Discovery(ctx)
