"""The fully-connected GAN of Goodfellow et al. (2014), "Generative Adversarial Nets".

The paper's MNIST generator is a ReLU MLP with a sigmoid output; its discriminator used maxout units and dropout.
We keep the shape of both nets but use LeakyReLU + dropout in D (maxout adds parameters without helping on MNIST)
and a tanh output so every family in the tool shares the [-1, 1] pixel range.
"""
from __future__ import annotations

import math

from torch import nn

from gancli.registry import register


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, image_size: int, channels: int, hidden: list[int]):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        layers, width = [], latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Linear(width, math.prod(self.shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z.flatten(1)).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, hidden: list[int], dropout: float):
        super().__init__()
        layers, width = [], channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
            width = h
        layers += [nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1)).squeeze(1)  # logits


@register("mlp", "Fully-connected GAN of Goodfellow et al. 2014")
def build_mlp(latent_dim: int = 100, image_size: int = 28, channels: int = 1,
              g_hidden: list[int] = (256, 512, 1024), d_hidden: list[int] = (512, 256), dropout: float = 0.3):
    return (MLPGenerator(latent_dim, image_size, channels, list(g_hidden)),
            MLPDiscriminator(image_size, channels, list(d_hidden), dropout))
