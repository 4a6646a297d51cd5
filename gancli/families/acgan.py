"""ACGAN (Odena, Olah & Shlens 2017): the DCGAN networks, with an auxiliary classifier head in D.

D names the class of every image it sees, real or generated, besides judging it; G is rewarded when its images are
named as the class it was asked for. The extra losses are the ``AuxiliaryClassifier`` term of the shared
adversarial objective: nothing else changes.
"""
from __future__ import annotations

from gancli.families.adversarial import GAN, WIDTHS, AdversarialObjective, AuxiliaryClassifier, noise_arch_args
from gancli.families.base import OPTION, Family
from gancli.families.dcgan import (
    LADDER_SIZES,
    SPECTRAL,
    DCGANDiscriminator,
    DCGANGenerator,
    discriminator_norm,
    spatial_ladder,
)
from gancli.registry import register


@register
class ACGAN(Family):
    name = "acgan"
    description = "Auxiliary-classifier GAN (Odena et al. 2017) on the DCGAN networks"
    size_rule = LADDER_SIZES
    learns_after = 1000  # bench/learns_after.py: MNIST, batch 64: legible 30% at 1,000 (65% at 3,000)
    step_bytes_per_pixel = 1335  # the DCGAN's networks (dcgan.py)
    options = GAN + WIDTHS + SPECTRAL

    def build(self, num_classes: int, latent_dim: int = OPTION, image_size: int = 64, channels: int = 3,
              g_width: int = OPTION, d_width: int = OPTION, max_width: int = 512, d_norm: str = "batch"):
        if num_classes < 2:
            raise ValueError("acgan needs labelled data with at least two classes")
        return {"generator": DCGANGenerator(latent_dim, image_size, channels, g_width, max_width, num_classes),
                "discriminator": DCGANDiscriminator(image_size, channels, d_width, max_width, num_classes,
                                                    aux_classifier=True, norm=d_norm)}

    def arch_args(self, opts, data):
        spatial_ladder(data.crop)
        return noise_arch_args(opts, data, conditional=True) | {"g_width": opts.g_width, "d_width": opts.d_width} \
            | discriminator_norm(opts)

    def objective(self, ctx):
        return AdversarialObjective(ctx, terms=(AuxiliaryClassifier(),))
