"""CycleGAN (Zhu, Park, Isola & Efros 2017): unpaired image-to-image translation.

The generator is the reference implementation's ResNet generator: reflection padding, instance norm without affine
parameters or running statistics, two stride-2 downsamplings, N residual blocks, two transposed-conv upsamplings and
a tanh. Its ``nn.Sequential`` is laid out exactly like the reference's, so the parameter names match
(``model.1.weight`` ... ``model.26.bias`` for 9 blocks) and published generator checkpoints load one to one.
The discriminator is the 70x70 PatchGAN: a grid of real/fake logits, one per overlapping 70x70 patch.
"""
from __future__ import annotations

from torch import nn

from gancli.registry import register


def _norm(width: int) -> nn.Module:
    return nn.InstanceNorm2d(width, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), _norm(width), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), _norm(width))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Any input whose sides are multiples of 4 keeps its size."""

    multiple = 4

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 9):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), _norm(width), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(width * mult, width * mult * 2, 3, stride=2, padding=1), _norm(width * mult * 2),
                       nn.ReLU(True)]
        layers += [ResnetBlock(width * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       _norm(width * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
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


class GeneratorPair(nn.Module):
    """``a2b`` (A -> B) and ``b2a``. One forward runs a whole cycle, so DistributedDataParallel sees every use."""

    def __init__(self, **nets: nn.Module):
        super().__init__()
        for name, net in nets.items():
            self.add_module(name, net)

    def forward(self, real_a, real_b, identity: bool = True):
        fake_b, fake_a = self.a2b(real_a), self.b2a(real_b)
        out = {"fake_b": fake_b, "fake_a": fake_a, "rec_a": self.b2a(fake_b), "rec_b": self.a2b(fake_a)}
        if identity:  # a generator fed an image of its target domain should leave it alone
            out |= {"idt_b": self.a2b(real_b), "idt_a": self.b2a(real_a)}
        return out


class DiscriminatorPair(nn.Module):
    """``a`` judges images of domain A, ``b`` those of domain B."""

    def __init__(self, **nets: nn.Module):
        super().__init__()
        for name, net in nets.items():
            self.add_module(name, net)

    def forward(self, x_a, x_b):
        return self.a(x_a), self.b(x_b)


def _init(module: nn.Module):
    # The reference's "normal" initialisation: N(0, 0.02) weights, zero biases.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


@register("cyclegan", "CycleGAN (Zhu et al. 2017): ResNet generators and 70x70 PatchGAN discriminators",
          task="translation")
def build_cyclegan(channels: int = 3, g_width: int = 64, d_width: int = 64, n_blocks: int = 9, d_layers: int = 3,
                   directions: list[str] = ("a2b", "b2a")):
    unknown = set(directions) - {"a2b", "b2a"}
    if unknown or not directions:
        raise ValueError(f"directions must be a2b and/or b2a, not {sorted(unknown) or 'none'}")
    generators = GeneratorPair(**{d: ResnetGenerator(channels, g_width, n_blocks) for d in directions})
    # D_b judges outputs of a2b (domain B), D_a those of b2a
    discriminators = DiscriminatorPair(**{d[-1]: PatchDiscriminator(channels, d_width, d_layers) for d in directions})
    return _init(generators), _init(discriminators)
