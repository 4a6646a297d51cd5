"""The fully-connected GAN of Goodfellow et al. (2014), "Generative Adversarial Nets".

The paper's MNIST generator is a ReLU MLP with a sigmoid output; its discriminator used maxout units and dropout.
We keep the shape of both nets but use LeakyReLU + dropout in D (maxout adds parameters without helping on MNIST)
and a tanh output so every family in the tool shares the [-1, 1] pixel range. With ``num_classes`` it becomes the
original conditional GAN of Mirza & Osindero (2014): a one-hot label is concatenated to the input of both nets.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancli.families.adversarial import CONDITIONAL, GAN, PACK, AdversarialObjective, check_pack, noise_arch_args
from gancli.families.base import OPTION, Family
from gancli.registry import register


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, image_size: int, channels: int, hidden: list[int], num_classes: int = 0):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        self.num_classes = num_classes
        layers, width = [], latent_dim + num_classes
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Linear(width, math.prod(self.shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z, labels=None):
        z = z.flatten(1)
        if self.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], 1)
        return self.net(z).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, hidden: list[int], dropout: float, num_classes: int = 0,
                 pack: int = 1):
        super().__init__()
        self.num_classes, self.pack = num_classes, pack
        layers, width = [], (channels * image_size * image_size + num_classes) * pack
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
            width = h
        layers += [nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x, labels=None):
        x = x.flatten(1)
        if self.num_classes:
            x = torch.cat([x, F.one_hot(labels, self.num_classes).to(x.dtype)], 1)
        return self.net(x.reshape(len(x) // self.pack, -1)).squeeze(1)  # logits, one per pack of images


@register
class MLP(Family):
    name = "mlp"
    description = "Fully-connected GAN of Goodfellow et al. 2014; conditional (Mirza & Osindero) with --conditional"
    photo_size = 28  # the 2014 GAN's 28 px: fully connected layers grow with the square of the side
    learns_after = 250  # bench/learns_after.py: MNIST, batch 64: legible 56% at 250 (then it wanders: 15% at 3,000)
    step_bytes_per_pixel = 4000  # 0.65 GB at 28 px, batch 64 (its weights grow with the pixels too)
    options = GAN + CONDITIONAL + PACK

    def check_options(self, opts):
        check_pack(opts)

    def build(self, latent_dim: int = OPTION, image_size: int = 28, channels: int = 1,
              g_hidden: list[int] = (256, 512, 1024), d_hidden: list[int] = (512, 256), dropout: float = 0.3,
              num_classes: int = 0, pack: int = OPTION):
        return {"generator": MLPGenerator(latent_dim, image_size, channels, list(g_hidden), num_classes),
                "discriminator": MLPDiscriminator(image_size, channels, list(d_hidden), dropout, num_classes, pack)}

    def arch_args(self, opts, data):
        return noise_arch_args(opts, data, opts.conditional)

    def objective(self, ctx):
        return AdversarialObjective(ctx)
