import pytest
import torch

from gancli import latents
from gancli.errors import UnknownNameError
from gancli.families import catalog
from gancli.use.model import GANModel


def build(arch, **arch_args):
    nets = GANModel.build({"architecture": arch, "arch_args": arch_args})
    return nets["generator"], nets.get("discriminator")


def test_every_family_is_registered():
    assert set(catalog.all_families()) == {"acgan", "began", "cyclegan", "dcgan", "design", "discogan", "mlp", "srgan", "ssgan",
                                           "stackgan", "stylegan", "vae"}


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
    with pytest.raises(ValueError, match="image_size"):
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


def test_parse_seeds():
    assert latents.parse_seeds("0-3,42") == [0, 1, 2, 3, 42]
    for bad in ("a", "3-1", "", "1,,x"):
        with pytest.raises(ValueError):
            latents.parse_seeds(bad)


def test_latent_is_a_function_of_seed_and_index():
    a = latents.latents([(5, 0), (5, 1), (6, 0)], 32)
    b = latents.latents([(6, 0), (5, 1)], 32)
    assert torch.equal(a[2], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], a[2])


def test_walk_returns_to_start_and_hits_keys():
    keys = latents.latents([(1, 0), (2, 0), (3, 0)], 16)
    for method in ("slerp", "lerp"):
        frames = latents.walk(keys, 5, method)
        assert frames.shape == (15, 16)
        assert torch.allclose(frames[0], keys[0]) and torch.allclose(frames[5], keys[1], atol=1e-5)
        # the last frame is one step before the first: the animation loops without a jump
        assert (frames[-1] - keys[0]).norm() < (keys[2] - keys[0]).norm()


def test_slerp_keeps_norm_better_than_lerp():
    a, b = latents.latents([(1, 0), (2, 0)], 512)
    assert latents.slerp(a, b, 0.5).norm() > torch.lerp(a, b, 0.5).norm() * 1.2
