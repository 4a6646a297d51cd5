"""Are a generator's illegible samples the ones between its modes? Legible share (judge confidence >= 0.9) by
quintile of the norm of G's Jacobian at each latent.

A generator fed one Gaussian maps a connected space onto data made of separate pieces (ten digits), so some latents
must land between pieces, and there G changes fast: its Jacobian norm is large (Tanielian et al. 2020, "Learning
disconnected manifolds: a no GAN's land", who also reject samples on it). If the malformed digits sit in those
regions, the legible share falls from the smoothest quintile to the steepest.

    python bench/jacobian_legible.py MODEL [--judge classifier-mnist] [-n 2000]

The Jacobian's Frobenius norm is estimated from central differences along 8 random directions, on the same latents
(seed 0) that `gan eval` draws.
"""
from __future__ import annotations

import argparse

import torch

import gancli
from gancli.evaluation.reference import judged
from gancli.quality.formulas import LEGIBLE
from gancli.quality.judges import load_judge


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--judge", default="classifier-mnist")
    ap.add_argument("-n", type=int, default=2000)
    args = ap.parse_args()
    try:
        model, judge = gancli.load(args.model, device="cpu"), load_judge(args.judge)
    except (OSError, ValueError, LookupError) as e:  # the package's own errors: unknown, planned, untrusted models
        raise SystemExit(f"error: {e}") from None
    if model.is_conditional or model.takes_text or model.is_translation:
        raise SystemExit(f"error: {args.model} is not an unconditional noise-to-image model")

    def draw(z):
        return torch.cat(list(model.generate(z)))

    z = model.latents_for(args.n, seed=0)
    directions, eps = torch.Generator().manual_seed(1), 1e-2
    with torch.no_grad():
        _, _, confidence = judged(judge, draw(z))
        squared = torch.zeros(args.n)
        for _ in range(8):
            v = torch.randn(z.shape, generator=directions)
            squared += ((draw(z + eps * v) - draw(z - eps * v)) / (2 * eps)).flatten(1).pow(2).sum(1) / 8
    norm, legible = squared.sqrt(), (confidence >= LEGIBLE).float()
    order = norm.argsort()
    print(f"{args.model}: {args.n} samples, legible {legible.mean():.1%} in all")
    print("| Jacobian quintile | mean norm | legible | mean confidence |\n| --- | --- | --- | --- |")
    for q, part in enumerate(order.chunk(5)):
        print(f"| {q + 1} ({'smoothest' if q == 0 else 'steepest' if q == 4 else ''}) | {norm[part].mean():.1f} | "
              f"{legible[part].mean():.1%} | {confidence[part].mean():.3f} |".replace(" ()", ""))


if __name__ == "__main__":
    main()
