"""The EMA generator (``--ema``): an exponential moving average of G's weights, which samples and is exported in
G's place."""
from __future__ import annotations

import copy

import torch
from torch import nn

from gancli import latents


def ema_copy(G: nn.Module) -> nn.Module:
    return copy.deepcopy(G).eval().requires_grad_(False)


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, decay: float):
    """Parameters averaged; buffers (StyleGAN's average w) copied. Batch-norm statistics of the average are
    measured afresh before it samples (``calibrate_ema``)."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1.0 - decay)  # one launch, not one a tensor
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


@torch.no_grad()
def calibrate_ema(G_ema: nn.Module, device: torch.device, seed: int, latent_dim: int, num_classes: int,
                  batches: int = 50, batch_size: int = 256):
    """Batch-norm statistics for the averaged weights ("precise BN"): the live G's running statistics were
    measured on other weights, and using them blurs the EMA generator's samples."""
    norms = [m for m in G_ema.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over all calibration batches
    G_ema.train()
    g = torch.Generator(device).manual_seed(latents.mix(seed, 2))
    for _ in range(batches):
        z = torch.randn(batch_size, latent_dim, device=device, generator=g)
        y = torch.arange(batch_size, device=device) % num_classes if num_classes else None
        G_ema(z, y)
    for m in norms:
        m.momentum = 0.1
    G_ema.eval()
