"""DCGAN (Radford, Metz & Chintala 2016): strided (transposed) convolutions, batch norm, ReLU in G, LeakyReLU in D.

The spatial ladder starts at 4x4 (32, 64, 128 ... px) or 7x7 (28, 56 ... px) and doubles per block, so MNIST-sized
28x28 images need no padding or resizing. Widths halve per upsampling block from ``width * 2**(blocks-1)``.
"""
from __future__ import annotations

from torch import nn

from gancli.registry import register


def spatial_ladder(image_size: int) -> tuple[int, int]:
    """Return (start_size, number_of_doublings) with start_size * 2**n == image_size."""
    for start in (4, 7):
        size, n = image_size, 0
        while size > start and size % 2 == 0:
            size //= 2
            n += 1
        if size == start and n >= 1:
            return start, n
    raise ValueError(f"DCGAN image_size must be 4 or 7 times a power of two (e.g. 28, 32, 64, 128), got {image_size}")


def _init_dcgan(module: nn.Module):
    # The DCGAN paper's initialisation: N(0, 0.02) for convolutions, N(1, 0.02) for batch-norm scales.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, image_size: int, channels: int, width: int, max_width: int):
        super().__init__()
        start, n = spatial_ladder(image_size)
        widths = [min(width * 2 ** i, max_width) for i in reversed(range(n))]
        layers = [nn.ConvTranspose2d(latent_dim, widths[0], start, 1, 0, bias=False),
                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        _init_dcgan(self)

    def forward(self, z):
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, max_width: int):
        super().__init__()
        start, n = spatial_ladder(image_size)
        widths = [min(width * 2 ** i, max_width) for i in range(n)]
        layers = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(widths[-1], 1, start, 1, 0)]
        self.net = nn.Sequential(*layers)
        _init_dcgan(self)

    def forward(self, x):
        return self.net(x).flatten()  # logits, one per image


@register("dcgan", "Deep convolutional GAN (Radford et al. 2016)")
def build_dcgan(latent_dim: int = 100, image_size: int = 64, channels: int = 3,
                g_width: int = 64, d_width: int = 64, max_width: int = 512):
    return (DCGANGenerator(latent_dim, image_size, channels, g_width, max_width),
            DCGANDiscriminator(image_size, channels, d_width, max_width))
