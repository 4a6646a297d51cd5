"""Which classes does a model draw? Classify N samples with a 1-NN classifier on an MNIST-family training set.

    python bench/mnist_quality.py dcgan-mnist -n 10000
    python bench/mnist_quality.py cgan-fashion --data ../shared/data/fashion-mnist

Prints the judge's own accuracy on the real test set, the class histogram of the samples, the classes covered, the KL
divergence to the real class histogram, and the mean nearest-neighbour distance of samples vs. real test images
(a blurry or broken generator sits far from every real image). For conditional models, also the share of
``--label k`` samples that the judge assigns to class k.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import gancli
from gancli.data import read_idx
from gancli.metrics import coverage_report, nearest_labels, nearest_neighbours

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def load_split(folder: Path, split: str):
    prefix = "train" if split == "train" else "t10k"
    images = torch.from_numpy(read_idx(folder / f"{prefix}-images-idx3-ubyte.gz").copy())[:, None]
    labels = torch.from_numpy(read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype("int64"))
    return images, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    train_x, train_y = load_split(args.data, "train")
    test_x, test_y = load_split(args.data, "test")
    t0 = time.time()
    judge_acc = float((nearest_labels(test_x[:2000], train_x, train_y) == test_y[:2000]).float().mean())
    model = gancli.load(args.model)
    samples = model.sample(args.n, seed=args.seed)
    labels = nearest_labels(samples, train_x, train_y)
    report = coverage_report(labels, train_y, 10)
    if model.is_conditional:
        per = args.n // 10
        hits = []
        for k in range(10):
            judged = nearest_labels(model.sample(per, seed=args.seed + 1, label=k), train_x, train_y)
            hits.append(float((judged == k).float().mean()))
        report["label_accuracy"] = round(sum(hits) / 10, 4)
        report["label_accuracy_per_class"] = [round(h, 3) for h in hits]
    _, d_fake = nearest_neighbours(samples[:2000], train_x)
    _, d_real = nearest_neighbours(test_x[:2000], train_x)
    report |= {"model": args.model, "samples": args.n, "seed": args.seed,
               "judge": f"1-NN on the 60,000 training images of {args.data.name}", "judge_test_accuracy": round(judge_acc, 4),
               "nn_distance_samples": round(float(d_fake.mean()), 3), "nn_distance_real_test": round(float(d_real.mean()), 3),
               "seconds": round(time.time() - t0, 1)}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
