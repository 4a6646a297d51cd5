"""DesignGAN: "making new T-shirt designs". After CAN (Elgammal et al. 2017) and DeSIGN (Sbai et al. 2018).

D judges real/fake and also names the class of real images (a garment type); G is unconditional and, besides
fooling D, gets a *creativity* term: the cross-entropy between D's class distribution for its images and the
uniform one. It is smallest when D finds an image equally like every known class, so G is pushed towards designs
that look real but belong to no one class in particular. ``--creativity 0`` is a plain DCGAN with a class head.

The networks are DCGAN's (``families/dcgan``): an unconditional generator and the auxiliary-classifier discriminator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gancli.families.adversarial import GAN, WIDTHS, AdversarialObjective, Term, noise_arch_args
from gancli.families.base import OPTION, Family
from gancli.families.dcgan import SPECTRAL, DCGANDiscriminator, DCGANGenerator, discriminator_norm, spatial_ladder
from gancli.options import Option, group, non_negative
from gancli.registry import register


def creativity_loss(class_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the uniform distribution u over K classes to D's p: -1/K sum_k log p_k = log K + KL(u || p).
    Its minimum, log K, is reached exactly where p is uniform, where the class entropy is largest."""
    return -F.log_softmax(class_logits.float(), 1).mean(1).mean()


def class_entropy(class_logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the class distribution, per image, in nats (log K at most)."""
    logp = F.log_softmax(class_logits.float(), 1)
    return -(logp.exp() * logp).sum(1)


class Creativity(Term):
    """D learns the classes of real images; G is rewarded for images D cannot place in one class."""

    def __init__(self, weight: float):
        self.weight = weight

    def discriminator(self, obj, step, real, fake, labels, real_extra, fake_extra, stats):
        stats["class_acc_real"] = (real_extra.argmax(1) == labels).float().mean().detach()
        return F.cross_entropy(real_extra, labels)

    def generator(self, obj, fake_extra, labels, stats):
        stats["class_entropy_fake"] = class_entropy(fake_extra).mean().detach()
        return self.weight * creativity_loss(fake_extra) if self.weight else None


class DesignObjective(AdversarialObjective):
    """The adversarial objective on labelled data with an unconditional G: labels reach D's class term only."""

    def __init__(self, ctx):
        super().__init__(ctx, terms=(Creativity(ctx.opts.creativity),))
        self.labels = ctx.data.labels.to(ctx.device)


@register
class DesignGAN(Family):
    name = "design"
    exported = ("generator",)  # no command uses its discriminator
    summary = ("A DesignGAN generator (CAN / DeSIGN: rewarded for realistic images that fit no one known class) "
               "for {images}, trained on {dataset} with gan {gan_version}.")
    description = "DesignGAN (CAN / DeSIGN): a GAN rewarded for realistic images that fit no one known class"
    options = GAN + WIDTHS + SPECTRAL + group(
        "design options",
        Option("creativity", float, 1.0, "Weight of the creativity term (0: none).", check=non_negative, resume=True),
    )

    def build(self, design_classes: int, latent_dim: int = OPTION, image_size: int = 64, channels: int = 3,
              g_width: int = OPTION, d_width: int = OPTION, max_width: int = 512, d_norm: str = "batch"):
        if design_classes < 2:
            raise ValueError("design needs labelled data with at least two classes")
        return {"generator": DCGANGenerator(latent_dim, image_size, channels, g_width, max_width),
                "discriminator": DCGANDiscriminator(image_size, channels, d_width, max_width, design_classes,
                                                    aux_classifier=True, norm=d_norm)}

    def arch_args(self, opts, data):
        spatial_ladder(data.crop)
        if data.labels is None:
            raise ValueError(f"design needs labelled data (the known classes): put each class's images in its own "
                             f"sub-folder of {opts.data}")
        return noise_arch_args(opts, data, conditional=False) | {
            "design_classes": len(data.class_names), "g_width": opts.g_width, "d_width": opts.d_width} \
            | discriminator_norm(opts)

    def objective(self, ctx):
        return DesignObjective(ctx)

