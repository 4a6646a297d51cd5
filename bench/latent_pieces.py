"""What each piece of a latent split into pieces draws: the InfoGAN categories of a `--codes K` model, or the
Gaussians of a `--mixture K` one. Per piece, the classes the judge names in its samples, how pure the piece is (its
top class's share) and how legible (judge confidence >= 0.9).

    python bench/latent_pieces.py MODEL_OR_RUN [--judge classifier-mnist] [-n 500]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import gancli
from gancli.families import catalog
from gancli.quality.judges import load_judge


def generator(where: Path):
    """A model folder's generator, or, for a run still training, its latest checkpoint's (not the EMA copy)."""
    checkpoints = sorted((where / "checkpoints").glob("step-*.pt")) if where.is_dir() else []
    if (where / "config.json").exists() or (where / "export" / "config.json").exists() or not checkpoints:
        return gancli.load(where, device="cpu").generator
    state = torch.load(checkpoints[-1], map_location="cpu", weights_only=True)
    G = catalog.get(state["arch"]).build(**state["arch_args"])["generator"]
    G.load_state_dict(state["networks"]["generator"])
    return G


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--judge", default="classifier-mnist")
    ap.add_argument("-n", type=int, default=500, help="samples per piece")
    args = ap.parse_args()
    try:
        G = generator(Path(args.model)).eval()
    except (OSError, ValueError, LookupError) as e:  # the package's own errors: unknown, planned, untrusted models
        raise SystemExit(f"error: {e}") from None
    mixture = getattr(G, "mixture", None)
    k = len(mixture.centres) if mixture is not None else getattr(G, "codes", 0)
    if not k:
        raise SystemExit(f"error: {args.model} has no latent pieces (--codes or --mixture)")
    judge = load_judge(args.judge)
    rows, legible_all = [], 0.0
    g = torch.Generator().manual_seed(0)
    for c in range(k):
        z = torch.randn(args.n, G.latent_dim, generator=g)
        if mixture is not None:
            z = mixture.steer(z, c, generator=g)
        else:
            z[:, c] = z[:, :k].abs().amax(1) + 1  # the largest of the first k entries: category c
        with torch.no_grad():
            images = G(z)
        probs = judge.run(images)[1].softmax(1)
        conf, named = probs.max(1)
        counts = torch.bincount(named, minlength=len(judge.class_names)).float() / args.n
        top = int(counts.argmax())
        legible = float((conf >= 0.9).float().mean())
        legible_all += legible / k
        rows.append({"piece": c, "top_class": judge.class_names[top], "purity": round(float(counts[top]), 3),
                     "legible": round(legible, 3),
                     "classes": {judge.class_names[i]: round(float(v), 3) for i, v in enumerate(counts) if v >= 0.02}})
    print(json.dumps({"model": args.model, "pieces": k, "legible_mean": round(legible_all, 3),
                      "top_classes_covered": len({r["top_class"] for r in rows}), "per_piece": rows}, indent=1))


if __name__ == "__main__":
    main()
