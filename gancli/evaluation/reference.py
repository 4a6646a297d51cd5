"""The reference side of ``gan eval``: a ``Reference`` (real images as the judge sees them), the judge's reading of
images, the standard Inception network's features, and ``compare``, the distribution measures of samples against
a reference. Imported by the measures of samplers (``gancli.evaluation.samplers``) and of translators
(``gancli.evaluation.translation``); ``gancli.evaluation.evaluate`` builds references from data sets and re-exports these names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from gancli.data import datasets
from gancli.data.reading import ImageData
from gancli.quality import formulas
from gancli.quality.judges import Judge

OnProgress = Callable[[str, int, int], None]  # (what, done, total)


def quiet(*_):
    pass


@dataclass
class Reference:
    """Real images as the judge sees them."""
    name: str
    judge: Judge
    features: torch.Tensor
    labels: torch.Tensor | None = None     # true classes, in the judge's class order (or Stacked-MNIST modes)
    num_classes: int = 0
    stack: int = 1                         # digits per image (Stacked-MNIST: 3)
    images: int = 0
    notes: list[str] = field(default_factory=list)
    inception: torch.nn.Module | None = None     # the standard FID network, when the user has its weights
    inception_features: torch.Tensor | None = None
    data: ImageData | None = None                # the real images themselves (a VAE's test ELBO reads them)
    confidence: torch.Tensor | None = None       # the judge's confidence in each real image's class
    real_sharpness: float | None = None          # mean Laplacian energy of the real images (see evaluate_generator)

    @property
    def num_modes(self) -> int:
        return self.num_classes ** self.stack


def embed(judge: Judge, images: torch.Tensor, stack: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, predicted class) of images; see ``judged``."""
    return judged(judge, images, stack)[:2]


def judged(judge: Judge, images: torch.Tensor, stack: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, predicted class, the judge's confidence in it) of images; with ``stack`` > 1 each channel is
    judged on its own and the features are concatenated, the prediction read as a number (channel 0 = most
    significant digit), and the confidence is the least sure channel's (every digit must be legible)."""
    if stack == 1:
        feats, logits = judge.run(images)
        return feats, logits.argmax(1), logits.softmax(1).amax(1)
    parts, modes = [], torch.zeros(len(images), dtype=torch.long)
    confidence = torch.ones(len(images))
    for c in range(stack):
        f, logits = judge.run(images[:, c:c + 1])
        parts.append(f)
        modes = modes * judge.net.head[-1].out_features + logits.argmax(1)
        confidence = torch.minimum(confidence, logits.softmax(1).amax(1))
    return torch.cat(parts, 1), modes, confidence


def reference_labels(labels, class_names, judge: Judge, judged: torch.Tensor, stack: int) -> torch.Tensor:
    """The real images' classes in the judge's order: their own labels where the judge knows those classes (or the
    Stacked-MNIST modes), else the judge's reading of them."""
    if stack > 1:
        return labels
    if labels is not None and class_names and _same_classes(class_names, judge.class_names):
        order = {datasets.class_key(c): i for i, c in enumerate(judge.class_names)}
        return torch.tensor([order[datasets.class_key(class_names[int(y)])] for y in labels])
    return judged


def _same_classes(a: list[str], b: list[str]) -> bool:
    return {datasets.class_key(x) for x in a} <= {datasets.class_key(x) for x in b}


@torch.inference_mode()
def inception_embed(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    device = next(net.parameters()).device
    out = []
    for batch in images.split(batch_size):
        x = batch.to(device).float()
        if batch.dtype != torch.uint8:  # published FIDs are of 8-bit images: quantise samples the same way
            x = ((x + 1) * 127.5).round().clamp(0, 255)
        out.append(net(x / 127.5 - 1).float().cpu())
    return torch.cat(out)


DISTANCES = "distances (KID, FID, precision/recall)"
# of compare's measures, those a translator reports
TRANSLATION_DISTANCES = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage")


def compare(ref: Reference, fake_feats: torch.Tensor, fake_classes: torch.Tensor, seed: int = 0,
            kid_subsets: int = 100, confidence: torch.Tensor | None = None, progress: OnProgress = quiet,
            what: str = DISTANCES) -> dict:
    """The distribution measures of samples against the reference; ``confidence``: the judge's in each sample's
    class, for the legible share. KID's subsets and precision/recall's k-NN take seconds each at 10,000 samples:
    ``progress`` says which is running."""
    progress(what, 0, 3)
    kid_mean, kid_std = formulas.kernel_distance(ref.features, fake_feats, subsets=kid_subsets, seed=seed)
    progress(what, 1, 3)
    fid = formulas.frechet_distance(ref.features, fake_feats)
    progress(what, 2, 3)
    manifold = formulas.manifold_measures(ref.features, fake_feats)
    progress(what, 3, 3)
    result = {"fid": round(fid, 4), "kid": round(kid_mean, 6), "kid_std": round(kid_std, 6),
              **{key: round(value, 4) for key, value in manifold.items()},  # precision, recall, density, coverage
              "diversity": round(formulas.diversity(fake_feats, seed=seed), 4),
              "real_diversity": round(formulas.diversity(ref.features, seed=seed), 4)}
    if ref.labels is not None:
        if ref.stack > 1:
            p = formulas.class_histogram(fake_classes, ref.num_modes)
            uniform = torch.full((ref.num_modes,), 1.0 / ref.num_modes)
            result |= {"modes_covered": int((p > 0).sum()), "num_modes": ref.num_modes,
                       "kl": round(formulas.kl_divergence(p, uniform), 4)}
        else:
            cov = formulas.coverage_report(fake_classes, ref.labels, ref.num_classes)
            result |= {k: cov[k] for k in ("classes_covered", "num_classes", "kl", "smallest_class_share",
                                           "largest_class_share")}
            result["class_shares"] = dict(zip(ref.judge.class_names, cov["histogram"]))
        if confidence is not None and ref.confidence is not None:  # beside the real images' share, its scale
            result["legible_share"] = round(formulas.legible_share(confidence), 4)
            result["real_legible_share"] = round(formulas.legible_share(ref.confidence), 4)
    return result
