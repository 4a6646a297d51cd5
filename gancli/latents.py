"""Seeded latent vectors and paths between them.

Sample ``i`` of a request with seed ``s`` uses its own CPU generator seeded from ``(s, i)``. That makes every image a
pure function of (model, seed, index): asking for 1 or 1000 images, in any batch size, on any device, gives the same
latent and therefore the same picture. ``--seeds 3`` names the image ``(3, 0)``, so it equals ``--seed 3 -n 1``.
"""
from __future__ import annotations

import re

import torch

from gancli.options import seed_problem

_MASK64 = (1 << 64) - 1


def mix(seed: int, index: int) -> int:
    # splitmix64 of the pair: nearby (seed, index) pairs get unrelated generator seeds
    x = (seed * 0x9E3779B97F4A7C15 + index + 0x632BE59BD9B4E019) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) & ((1 << 63) - 1)


def latent(seed: int, index: int, dim: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(mix(seed, index))
    return torch.randn(dim, generator=g)


def latents(pairs: list[tuple[int, int]], dim: int) -> torch.Tensor:
    if not pairs:
        return torch.empty(0, dim)
    return torch.stack([latent(s, i, dim) for s, i in pairs])


def check_seed(seed: int, option: str = "--seed") -> int:
    problem = seed_problem(seed)
    if problem:
        raise ValueError(f"{option} {seed} {problem}")
    return seed


def parse_seeds(text: str) -> list[int]:
    """``"0-7,42"`` -> [0, 1, ..., 7, 42]."""
    seeds: list[int] = []
    if not str(text).strip():
        raise ValueError("empty seed list: give seeds like 0-7,42")
    for part in str(text).replace(" ", "").split(","):
        if not part:  # "1,,2" or "1,": a typo, not a request for fewer images
            raise ValueError(f"bad seed list {text!r}: an empty item between commas (use e.g. 0-7,42)")
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad seed list {text!r}: use numbers and ranges like 0-7,42")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if seed_problem(hi):
            raise ValueError(f"seed {hi} in {text!r} {seed_problem(hi)}")
        if hi < lo:
            raise ValueError(f"bad seed range {part!r}: the end is before the start")
        if hi - lo >= 1_000_000:
            raise ValueError(f"seed range {part!r} is too long")
        seeds.extend(range(lo, hi + 1))
    return seeds


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents live near a sphere, so straight lines pass through rare, low-norm z."""
    a_n, b_n = a / a.norm(), b / b.norm()
    omega = torch.arccos((a_n * b_n).sum().clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t)
    so = torch.sin(omega)
    return (torch.sin((1.0 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def walk(keys: torch.Tensor, steps: int, method: str = "slerp", loop: bool = True) -> torch.Tensor:
    """``steps`` frames between each pair of consecutive key latents; with ``loop`` the walk returns to the first."""
    if method not in ("slerp", "lerp"):
        raise ValueError(f"unknown interpolation method {method!r}: use slerp or lerp")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    ends = list(keys) + ([keys[0]] if loop else [])
    frames = []
    for a, b in zip(ends, ends[1:]):
        for k in range(steps):
            t = k / steps
            frames.append(slerp(a, b, t) if method == "slerp" else torch.lerp(a, b, t))
    if not loop:
        frames.append(ends[-1])
    return torch.stack(frames)
