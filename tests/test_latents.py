"""The latents (gancli.latents): seed lists, each image's latent a function of (seed, index), and the walks between
key latents that `gan interpolate` animates."""
import pytest
import torch

from gancli import latents


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
