"""GAN objectives, each written on discriminator logits.

With D = sigmoid(logit): log D = -softplus(-logit) and log(1 - D) = -softplus(logit), which stay finite where D
saturates. The value V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))] is logged on every step; at the equilibrium
p_g = p_data the optimal discriminator is 1/2 everywhere and V = -log 4 ~ -1.386.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OPTIMAL_VALUE = -math.log(4.0)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator maximises V: minimise -V."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor, kind: str = "ns") -> torch.Tensor:
    if kind == "ns":  # non-saturating: maximise log D(G(z)); strong gradients while D rejects the fakes
        return F.softplus(-fake_logits).mean()
    if kind == "minimax":  # the original objective: minimise log(1 - D(G(z))); saturates early in training
        return -F.softplus(fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}: use ns or minimax")


LOSSES = ("ns", "minimax")


@torch.no_grad()
def value(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    return float(-(F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()))
