"""Sample-quality measures that need no downloaded network.

``nearest_labels`` is a 1-nearest-neighbour classifier in pixel space: on MNIST it is ~97% accurate (LeCun et al.),
good enough to tell which digit a sample is, and so which modes of the data a generator covers.
"""
from __future__ import annotations

import math

import torch


def _flat(images: torch.Tensor) -> torch.Tensor:
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 127.5 - 1.0
    return x.flatten(1)


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 1024):
    """For each query image, the index of and distance to the closest reference image (L2 in [-1, 1] pixels)."""
    ref = _flat(reference)
    ref_sq = (ref * ref).sum(1)
    idx, dist = [], []
    for q in _flat(queries).split(chunk):
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ ref.T + ref_sq
        best = d2.min(1)
        idx.append(best.indices)
        dist.append(best.values.clamp_min(0).sqrt())
    return torch.cat(idx), torch.cat(dist)


def nearest_labels(queries, reference, reference_labels) -> torch.Tensor:
    return reference_labels[nearest_neighbours(queries, reference)[0]]


def class_histogram(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=num_classes).float() / max(len(labels), 1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> float:
    """KL(p || q) in nats, e.g. p = sample class histogram, q = real class histogram."""
    p, q = p.double(), q.double()
    mask = p > 0
    return float((p[mask] * (p[mask] / q[mask].clamp_min(eps)).log()).sum())


def coverage_report(labels: torch.Tensor, real_labels: torch.Tensor, num_classes: int) -> dict:
    p, q = class_histogram(labels, num_classes), class_histogram(real_labels, num_classes)
    return {"classes_covered": int((p > 0).sum()), "num_classes": num_classes, "kl": round(kl_divergence(p, q), 4),
            "smallest_class_share": round(float(p.min()), 4), "largest_class_share": round(float(p.max()), 4),
            "histogram": [round(float(v), 4) for v in p], "uniform_kl_bound": round(math.log(num_classes), 4)}
