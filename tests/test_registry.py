"""Families by name: the catalogue holds the family of every module that registers one, and a name builds that
family's networks (their shapes and widths; an unknown name or argument refused in words)."""
import re
from pathlib import Path

import pytest
import torch

from gancli.errors import UnknownNameError
from gancli.families import catalog
from gancli.use.model import GANModel


def build(arch, **arch_args):
    nets = GANModel.build({"architecture": arch, "arch_args": arch_args})
    return nets["generator"], nets.get("discriminator")


def test_every_family_is_registered():
    """Each module of gancli/families that registers a family (``@register``) is one the catalogue imports."""
    folder = Path(catalog.__file__).parent
    registering = {p.stem for p in folder.glob("*.py") if re.search(r"^@register\b", p.read_text(), re.M)}
    listed = {type(family).__module__.rpartition(".")[2] for family in catalog.all_families().values()}
    assert registering and listed == registering, (registering, listed)


@pytest.mark.parametrize("size,channels", [(28, 1), (64, 3), (32, 3), (64, 1)])
def test_dcgan_shapes(size, channels):
    g, d = build("dcgan", latent_dim=16, image_size=size, channels=channels, g_width=4, d_width=4)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)


def test_dcgan_width_and_latent_are_configurable():
    small, _ = build("dcgan", latent_dim=10, image_size=28, channels=1, g_width=8)
    big, _ = build("dcgan", latent_dim=10, image_size=28, channels=1, g_width=32)
    assert sum(p.numel() for p in big.parameters()) > 4 * sum(p.numel() for p in small.parameters())


def test_dcgan_rejects_impossible_size():
    with pytest.raises(ValueError, match="image size must be 4 or 7 times a power of two.*got 30"):
        build("dcgan", image_size=30)


def test_mlp_shapes():
    g, d = build("mlp", latent_dim=8, image_size=28, channels=1, g_hidden=[16], d_hidden=[16])
    x = g(torch.randn(5, 8))
    assert x.shape == (5, 1, 28, 28) and d(x).shape == (5,)


def test_unknown_architecture_suggests():
    with pytest.raises(UnknownNameError, match="dcgan"):
        catalog.get("dcgn")


def test_bad_builder_argument_is_a_value_error():
    with pytest.raises(ValueError, match="bad arguments"):
        build("dcgan", widht=3)
