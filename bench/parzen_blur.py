"""How much the Parzen-window estimate rewards blur (Theis, van den Oord & Bethge 2016), on our own numbers.

    python bench/parzen_blur.py gan-mnist          # the model's samples, the same samples half-blurred, real images

Prints the `gan eval --parzen` protocol's score for three sets of 10,000 centres: the model's samples, the same
samples mixed half-and-half with a 3x3 binomial blur of themselves (no new information, only less detail), and
10,000 real training images. docs/eval.md quotes the result.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import gancli
from gancli.data import datasets
from gancli.evaluation.evaluate import PARZEN_VALIDATION
from gancli.quality import formulas


def score(centres: torch.Tensor, validation: torch.Tensor, test: torch.Tensor) -> tuple[float, float, float]:
    sigma, _ = formulas.parzen_select_sigma(centres, validation)
    ll, se = formulas.parzen_score(centres, test, sigma)
    return ll, se, sigma


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="gan-mnist")
    ap.add_argument("-n", type=int, default=10000)
    args = ap.parse_args()
    model = gancli.load(args.model, device="cpu")
    folder = datasets.find(datasets.lookup(model.config.get("dataset", "mnist")))
    train = datasets.load_idx_split(folder, "train").images
    test = datasets.load_idx_split(folder, "test").images.double() / 255
    validation = train[-PARZEN_VALIDATION:].double() / 255
    samples = (model.sample(args.n, seed=0).double() + 1) / 2
    kernel = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=torch.float64) / 16
    blurred = 0.5 * samples + 0.5 * F.conv2d(samples, kernel[None, None], padding=1)
    rows = [(f"{args.model} samples (seed 0)", samples), ("the same samples, half-blurred", blurred),
            (f"{args.n:,} real training images", train[:args.n].double() / 255)]
    print(f"| centres ({args.n:,}) | Parzen log-likelihood of {len(test):,} test images (nats) | sigma |")
    print("| --- | --- | --- |")
    for label, centres in rows:
        ll, se, sigma = score(centres, validation, test)
        print(f"| {label} | {ll:.2f} ± {se:.2f} | {sigma:.4f} |", flush=True)


if __name__ == "__main__":
    main()
