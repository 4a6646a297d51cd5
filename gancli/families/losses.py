"""GAN objectives, written on the discriminator's raw outputs (logits, or critic scores), as a table of ``Loss``es.

With D = sigmoid(logit): log D = -softplus(-logit) and log(1 - D) = -softplus(logit), which stay finite where D
saturates. For the sigmoid losses the value V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))] is logged on every step;
at the equilibrium p_g = p_data the optimal discriminator D* = p_data / (p_data + p_g) is 1/2 everywhere and
V = -log 4 ~ -1.386 (the Jensen-Shannon divergence is then zero).

A loss is one entry of ``LOSSES``: ``--loss`` takes, lists and checks its names from the table when ``gan train``
runs, and an objective reads the rest from the entry (what D's outputs mean, the penalty D needs, whether G's loss
reads D on real images). An objective declares what it wires beyond the two loss functions (``Loss.needs``), and
``check_wired`` refuses the rest, in the same words for every family.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OPTIMAL_VALUE = -math.log(4.0)

# What a loss may need beyond D's and G's loss functions; an objective wires some of them (its ``wires``). The words
# are the refusal's: "rpgan is not wired here: it needs zero-centred R1 and R2 penalties and ...".
GRADIENT_PENALTY = "a gradient penalty on random mixes of real and generated images"
R1_R2 = "zero-centred R1 and R2 penalties"
REAL_OUTPUTS = "D's outputs on the real batch in G's loss"


@dataclass(frozen=True)
class Loss:
    name: str   # what --loss takes and options.json keeps: a run resumes by it, so it never changes
    help: str   # its words in --loss's help, after its name
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # D's loss: (D's outputs on real, on generated)
    # G's loss: (D's outputs on generated, on the paired real batch or None); D's outputs on real take no gradient
    g: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    # What D's outputs mean, which decides what is logged and drawn: "probability" (logits of one: d_real and d_fake
    # are logged through a sigmoid, with V(D, G) and its -log 4), "target" (pulled to 1 on real and 0 on generated
    # images: 1/2 at the equilibrium, as for probabilities) or "score" (no level of its own: only the gap between
    # D(x) and D(G(z)) means anything).
    reads_as: str = "probability"
    # The penalty on D's gradient it needs (GRADIENT_PENALTY, R1_R2), added by the objective; a per-sample one, so
    # D must have no batch statistics
    penalty: str | None = None
    g_reads_real: bool = False  # G's loss needs D's outputs on the real batch each generated one is paired with

    @property
    def needs(self) -> tuple[str, ...]:
        """What an objective must wire, beyond calling ``d`` and ``g``, to train with it."""
        return (*([self.penalty] if self.penalty else []), *([REAL_OUTPUTS] if self.g_reads_real else []))

    def logged(self, out: torch.Tensor) -> torch.Tensor:
        """D's outputs as d_real and d_fake log them: probabilities where they are logits of one."""
        return torch.sigmoid(out) if self.reads_as == "probability" else out


def cross_entropy(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's binary cross-entropy, real labelled 1 and generated 0: -V(D, G), which D minimises under both sigmoid
    losses."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    # non-saturating: maximise log D(G(z)); strong gradients while D rejects the fakes
    Loss("ns", "non-saturating", cross_entropy, lambda fake, real: F.softplus(-fake).mean()),
    # the original objective: minimise log(1 - D(G(z))); saturates early in training
    Loss("minimax", "the original log(1-D(G(z)))", cross_entropy, lambda fake, real: -F.softplus(fake).mean()),
    # Mao et al. 2017: least squares towards 1 (real) and 0 (fake)
    Loss("lsgan", "least squares", lambda real, fake: 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()),
         lambda fake, real: 0.5 * (fake - 1).pow(2).mean(), reads_as="target"),
    # the critic's Wasserstein estimate (Gulrajani et al. 2017)
    Loss("wgan-gp", "Wasserstein, with a gradient penalty", lambda real, fake: fake.mean() - real.mean(),
         lambda fake, real: -fake.mean(), reads_as="score", penalty=GRADIENT_PENALTY),
    Loss("hinge", "margins of 1 on D's scores", lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
         lambda fake, real: -fake.mean(), reads_as="score"),
    # relativistic pairing (Jolicoeur-Martineau 2019; R3GAN): each real beats its paired fake, and for G each fake
    # its paired real; with R1 and R2, no mode dropping (Huang et al. 2025)
    Loss("rpgan", "relativistic pairing with R1 and R2 penalties: R3GAN's loss",
         lambda real, fake: F.softplus(fake - real).mean(), lambda fake, real: F.softplus(real.detach() - fake).mean(),
         reads_as="score", penalty=R1_R2, g_reads_real=True),
)}


def get(name: str) -> Loss:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: use one of {', '.join(LOSSES)}")
    return LOSSES[name]


def help_words() -> str:
    """--loss's help, from the table as it is now: ``gan train`` builds its flags when it runs."""
    return _either([f"{loss.name} ({loss.help})" for loss in LOSSES.values()], ", or ") + "."


def not_a_loss(name: str) -> str | None:
    """--loss's check: what is wrong with ``name`` (None if it names a loss of the table as it is now)."""
    return None if name in LOSSES else f"must be one of {', '.join(LOSSES)}, not {name!r}"


def check_wired(owner: str, name: str, wires: frozenset[str]):
    """The one refusal of a loss that ``owner``'s objective cannot train with: it wires ``wires`` of what losses
    need (Loss.needs), and ``name`` needs more."""
    missing = [need for need in get(name).needs if need not in wires]
    if missing:
        wired = [loss.name for loss in LOSSES.values() if set(loss.needs) <= wires]
        raise ValueError(f"{owner} trains with {_either(wired)}; {name} is not wired here: it needs "
                         + " and ".join(missing))


def _either(words: list[str], last: str = " or ") -> str:
    return ", ".join(words[:-1]) + last + words[-1] if len(words) > 1 else "".join(words)


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """By name, for the loops that hold only the name: the translators', SRGAN's, SSGAN's and the toys'."""
    return get(kind).d(real, fake)


def g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """``real``: D's outputs on the real batch paired with ``fake``, for a loss that reads them (no gradient flows
    into them)."""
    loss = get(kind)
    if loss.g_reads_real and real is None:
        raise ValueError(f"{kind}'s generator loss needs D's outputs on the paired real images")
    return loss.g(fake, real)


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
    return float(-cross_entropy(real, fake))


def mode_seeking(a: torch.Tensor, b: torch.Tensor, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019), to minimise: the inverse of how far apart two images of one condition are
    for how far apart their noises are (mean absolute differences; the epsilon bounds it when they coincide)."""
    ratio = (a - b).abs().mean() / (za - zb).abs().mean()
    return 1 / (ratio + 1e-5)
