"""GAN objectives, written on the discriminator's raw outputs (logits, or critic scores).

With D = sigmoid(logit): log D = -softplus(-logit) and log(1 - D) = -softplus(logit), which stay finite where D
saturates. For the sigmoid losses the value V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))] is logged on every step;
at the equilibrium p_g = p_data the optimal discriminator D* = p_data / (p_data + p_g) is 1/2 everywhere and
V = -log 4 ~ -1.386 (the Jensen-Shannon divergence is then zero).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OPTIMAL_VALUE = -math.log(4.0)
LOSSES = ("ns", "minimax", "lsgan", "wgan-gp", "hinge", "rpgan")
SIGMOID_LOSSES = ("ns", "minimax")
# Losses whose D outputs are raw scores, with no level of their own (the sigmoid losses' D is a probability, and
# LSGAN's is pulled towards its 0/1 targets): only the gap between D(x) and D(G(z)) means anything.
SCORE_LOSSES = tuple(k for k in LOSSES if k not in (*SIGMOID_LOSSES, "lsgan"))
# Losses that need more than a loss function: a gradient penalty on D (a per-sample one: no batch statistics in D),
# and for rpgan D's current logits on real images in G's loss. The noise-to-image families' objective
# (gancli.families.adversarial) wires them; a family with a loop of its own refuses them.
PENALISED = ("wgan-gp", "rpgan")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind in SIGMOID_LOSSES:  # D maximises V: minimise -V
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "lsgan":  # Mao et al. 2017: least squares towards 1 (real) and 0 (fake)
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan-gp":  # the critic's Wasserstein estimate; the gradient penalty is added by the trainer
        return fake.mean() - real.mean()
    if kind == "rpgan":  # relativistic pairing (Jolicoeur-Martineau 2019; R3GAN): each real beats its paired fake
        return F.softplus(fake - real).mean()
    raise ValueError(f"unknown loss {kind!r}: use one of {', '.join(LOSSES)}")


def g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """``real``: D's logits on the real batch paired with ``fake`` (rpgan only; no gradient flows into them)."""
    if kind == "ns":  # non-saturating: maximise log D(G(z)); strong gradients while D rejects the fakes
        return F.softplus(-fake).mean()
    if kind == "minimax":  # the original objective: minimise log(1 - D(G(z))); saturates early in training
        return -F.softplus(fake).mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1).pow(2).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    if kind == "rpgan":  # each fake beats its paired real: with R1 and R2, no mode dropping (Huang et al. 2025)
        if real is None:
            raise ValueError("rpgan's generator loss needs D's logits on the paired real images")
        return F.softplus(real.detach() - fake).mean()
    raise ValueError(f"unknown loss {kind!r}: use one of {', '.join(LOSSES)}")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, labels=None, pack: int = 1) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on random mixes of real and fake. ``pack`` > 1
    (PacGAN): the critic's input is ``pack`` images, so one mixing weight and one norm per pack."""
    alpha = torch.rand(real.shape[0] // pack, *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    alpha = alpha.repeat_interleave(pack, 0)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(mixed, labels)
    out = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return (grad.reshape(len(grad) // pack, -1).norm(dim=1) - 1).pow(2).mean()


def zero_centred_penalty(critic, x: torch.Tensor, labels=None, pack: int = 1) -> torch.Tensor:
    """||grad D(x)||^2 per input of D (a pack), averaged: R1 on real images, R2 on generated ones (Mescheder et al.
    2018; R3GAN needs both for its convergence proof). In fp32: second-order gradients are precision-hungry."""
    x = x.detach().float().requires_grad_(True)
    out = critic(x, labels)
    out = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.reshape(len(grad) // pack, -1).pow(2).sum(1).mean()


@torch.no_grad()
def value(real: torch.Tensor, fake: torch.Tensor) -> float:
    """V(D, G) for the sigmoid losses."""
    return float(-(F.softplus(-real).mean() + F.softplus(fake).mean()))
