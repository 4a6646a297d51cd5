"""``gan eval``'s measures of samplers (generators): the standard set against a reference, label accuracy of
conditional models, the monitor ``gan train --eval-every`` runs, novelty (are the samples copies?) and
Goodfellow et al. 2014's Parzen-window estimate. ``gancli.evaluation.evaluate`` dispatches here and re-exports these names.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from gancli.data import datasets
from gancli.data.reading import DataError, ImageData, find_idx, resize_batch
from gancli.evaluation import feature_cache
from gancli.evaluation.reference import (
    DISTANCES,
    OnProgress,
    Reference,
    compare,
    inception_embed,
    judged,
    quiet,
    reference_labels,
)
from gancli.quality import formulas
from gancli.quality.judges import load_judge


def evaluate_generator(model, ref: Reference, n: int = 10000, seed: int = 0, batch_size: int = 256,
                       progress: OnProgress = quiet, **use) -> dict:
    """Sample ``n`` images of a (conditional) generator and measure them against ``ref``; ``use``: the model's
    use-time options (a StyleGAN's ``truncation``), recorded in the result."""
    t0 = time.time()
    if model.channels != ref.stack and ref.stack > 1:
        raise DataError(f"{ref.name} images have {ref.stack} channels (one digit each); the model draws "
                        f"{model.channels}")
    given = {k: v for k, v in use.items() if v is not None}
    said = "".join(f", {part}" for part in model.describe_use(**given))
    feats, classes, inception, sharpness, confidence = _embed_batches(
        ref, model.generate(model.latents_for(n, seed), model.labels_for(n, **given), batch_size, **given),
        lambda d: progress(f"sampling{said}", d, n))
    result = {"samples": n, "seed": seed, "real_images": ref.images} | given \
        | compare(ref, feats, classes, seed, confidence=confidence, progress=progress, what=DISTANCES + said)
    if ref.data is not None:  # blur shows here, where class-feature distances barely see it
        real_sharpness = ref.real_sharpness if ref.real_sharpness is not None \
            else float(formulas.laplacian_energy(ref.data.images).mean())
        result["sharpness"] = round(float(sharpness.mean()) / max(real_sharpness, 1e-12), 4)
    if inception is not None:
        result["fid_inception"] = round(formulas.frechet_distance(ref.inception_features, inception), 4)
    if model.is_conditional:
        result |= label_accuracy(model, ref, max(1, n // len(model.class_names or [0] * 10)), seed + 1, batch_size,
                                 progress)
    result["seconds"] = round(time.time() - t0, 1)
    return result


def _embed_batches(ref: Reference, batches, advance: Callable[[int], None] = lambda done: None,
                   inception: bool = True):
    """Judge features, classes, Inception features (if the reference has them), sharpness and the judge's confidence
    of image batches."""
    feats, classes, incep, sharp, sure, done = [], [], [], [], [], 0
    for batch in batches:
        batch = batch.float().cpu()
        f, c, p = judged(ref.judge, batch, ref.stack)
        sure.append(p)
        sharp.append(formulas.laplacian_energy(_at_size(batch, ref.data)))
        feats.append(f)
        classes.append(c)
        if inception and ref.inception is not None:
            incep.append(inception_embed(ref.inception, batch))
        done += len(batch)
        advance(done)
    return torch.cat(feats), torch.cat(classes), (torch.cat(incep) if incep else None), torch.cat(sharp), \
        torch.cat(sure)


def _at_size(batch: torch.Tensor, real: ImageData | None) -> torch.Tensor:
    """Samples at the real images' size, so that sharpness compares like with like (a 32 px StyleGAN against
    28 px digits)."""
    if real is None or batch.shape[-2:] == real.images.shape[-2:]:
        return batch
    return torch.nn.functional.interpolate(batch, size=tuple(real.images.shape[-2:]), mode="bilinear",
                                           antialias=True, align_corners=False)


def label_accuracy(model, ref: Reference, per_class: int, seed: int, batch_size: int = 256,
                   progress: OnProgress = quiet) -> dict:
    """Share of class-k samples the judge reads as k, per class and overall; and each class's diversity: the mean
    distance between pairs of its samples' judge features over the same for the real images of that class (1: as
    varied as the data; a label that draws one picture is near 0), per class and the worst class."""
    names = model.class_names or [str(i) for i in range(model.config["arch_args"]["num_classes"])]
    judge_index = {datasets.class_key(c): i for i, c in enumerate(ref.judge.class_names)}
    if ref.stack > 1 or not all(datasets.class_key(c) in judge_index for c in names):
        return {"label_accuracy": None,
                "label_accuracy_note": f"{ref.judge.name} does not know the classes {', '.join(names)}"}
    per, spread = {}, {}
    for k, name in enumerate(names):
        z = model.latents_for(per_class, seed + k)
        feats, judged_as, _, _, _ = _embed_batches(ref, model.generate(z, torch.full((per_class,), k), batch_size),
                                                   lambda d, k=k: progress("label accuracy", k * per_class + d,
                                                                           len(names) * per_class), inception=False)
        target = judge_index[datasets.class_key(name)]
        per[name] = round(float((judged_as == target).float().mean()), 4)
        real = ref.features[ref.labels == target] if ref.labels is not None else ref.features[:0]
        if len(real) > 1 and per_class > 1:
            spread[name] = round(formulas.diversity(feats, seed=seed) / max(formulas.diversity(real, seed=seed),
                                                                             1e-12), 4)
    return {"label_accuracy": round(sum(per.values()) / len(per), 4), "label_accuracy_per_class": per} \
        | ({"class_diversity": min(spread.values()), "class_diversity_per_class": spread} if spread else {})


# ---------------------------------------------------------------------------------------------- during training
class TrainingMonitor:
    """``gan train --eval-every``: fixed latents, a fixed sample of the training data, and the collapse alarm."""

    def __init__(self, ref: Reference, n: int, seed: int):
        self.ref, self.n, self.seed = ref, n, seed
        self.best: dict[str, float] = {}

    @classmethod
    def for_data(cls, data_path: str, data: ImageData, n: int, seed: int, device, stack: int = 1) -> "TrainingMonitor":
        ds = datasets.DATASETS["stacked-mnist"] if stack > 1 else \
            (datasets.identify(Path(data_path)) if Path(data_path).is_dir() else None)
        judge = load_judge(datasets.default_judge(ds, data.channels), device)
        keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
        feats, judged_as, confidence = judged(judge, data.images[keep], stack)
        ref = Reference(f"{len(keep)} training images", judge, feats, images=len(keep), stack=stack,
                        num_classes=len(judge.class_names), confidence=confidence)
        ref.labels = reference_labels(data.labels[keep] if data.labels is not None else None, data.class_names, judge,
                                       judged_as, stack)
        return cls(ref, len(keep), seed)

    @torch.no_grad()
    def measure(self, generate: Callable, latent_dim: int, num_classes: int | None = None, batch_size: int = 250) -> dict:
        from gancli import latents
        z = latents.latents([(self.seed + 7919, i) for i in range(self.n)], latent_dim)  # not the grid's latents
        y = torch.arange(self.n) % num_classes if num_classes else None
        batches = (generate(z[i:i + batch_size], y[i:i + batch_size] if y is not None else None)
                   for i in range(0, self.n, batch_size))
        feats, classes, _, _, confidence = _embed_batches(self.ref, batches)
        result = compare(self.ref, feats, classes, self.seed, kid_subsets=10, confidence=confidence)
        result.pop("class_shares", None)
        result["alarms"] = collapse_alarms(result, self.best)
        self.remember([result])
        result["feature_extractor"] = self.ref.judge.name
        return result

    def remember(self, rows: list[dict]):
        """Fold evaluations (this one, or a resumed run's earlier ones) into the best-so-far the alarm compares with."""
        for row in rows:
            for key in ("classes_covered", "modes_covered", "recall", "diversity"):
                if row.get(key) is not None:
                    self.best[key] = max(self.best.get(key) or 0, row[key])


def collapse_alarms(result: dict, best: dict) -> list[str]:
    """Signs of mode collapse, in words: diversity or coverage lost since the best evaluation so far.

    Only losses count: an untrained generator's blobs are not diverse either, and that is no collapse."""
    alarms = []
    real, best_div = max(result["real_diversity"], 1e-9), best.get("diversity") or 0
    if best_div >= 0.5 * real and result["diversity"] < 0.5 * best_div:
        alarms.append(f"sample diversity fell to {result['diversity'] / real:.0%} of the real images' "
                      f"(it was {best_div / real:.0%})")
    if result.get("classes_covered") is not None and result["classes_covered"] < (best.get("classes_covered") or 0):
        alarms.append(f"samples now cover {result['classes_covered']} of {result['num_classes']} classes "
                      f"(earlier {best['classes_covered']:.0f})")
    if result.get("modes_covered") is not None and result["modes_covered"] < 0.75 * (best.get("modes_covered") or 0):
        alarms.append(f"samples now cover {result['modes_covered']} modes (earlier {best['modes_covered']:.0f})")
    if (best.get("recall") or 0) >= 0.2 and result["recall"] < 0.5 * best["recall"]:
        alarms.append(f"recall fell to {result['recall']:.2f} (best {best['recall']:.2f}): the samples cover less of "
                      "the data")
    return alarms


# ---------------------------------------------------------------------------------------------- novelty
def novelty(model, ref: Reference, dataset: datasets.Dataset | None, n: int = 2000, seed: int = 0,
            batch_size: int = 256, grid_path: str | Path | None = None) -> dict:
    """Are the samples new? The judge's class entropy (high: the image fits no one known class) and the pixel
    distance from each sample to its nearest training image (near 0: a copy), each beside the same for real test
    images, which are new by construction. ``grid_path``: 8 samples above their nearest training images."""
    from gancli.data.imageio import grid_image, save_image

    if dataset is None or dataset.kind != "idx" or dataset.stack > 1:
        raise DataError("--novelty compares samples with a named data set's training images (mnist, fashion)")
    train = datasets.load_idx_split(datasets.find(dataset), "train").images
    if ref.data is not None and train.shape[-1] != ref.data.image_size:
        train = resize_batch(train, ref.data.image_size)  # as the model was trained
    n = min(n, len(ref.data.images)) if ref.data is not None else n
    samples = torch.cat(list(model.generate(model.latents_for(n, seed), model.labels_for(n), batch_size)))
    samples = _at_size(samples, ref.data) if ref.data is not None else samples
    _, sample_logits = ref.judge.run(samples)
    real = ref.data.images[:n]
    _, real_logits = ref.judge.run(real)
    entropy = lambda logits: float((-(logits.log_softmax(1).exp() * logits.log_softmax(1)).sum(1)).mean())
    idx, dist = formulas.nearest_neighbours(samples, train)
    _, real_dist = formulas.nearest_neighbours(real, train)
    if grid_path is not None:
        nearest = train[idx[:8]].float() / 127.5 - 1
        save_image(grid_image(torch.cat([samples[:8], nearest]), 8), grid_path)
    return {"novelty_samples": n, "class_entropy": round(entropy(sample_logits), 4),
            "real_class_entropy": round(entropy(real_logits), 4),
            "nearest_train_distance": round(float(dist.mean()), 4),
            "real_nearest_train_distance": round(float(real_dist.mean()), 4)}


# ---------------------------------------------------------------------------------------------- Parzen window
PARZEN_VALIDATION = 10000  # the last 10,000 training images, as the original code's MNIST 'valid' split


def parzen_folder(real: str | None, dataset: datasets.Dataset | None, model) -> Path:
    """The IDX folder whose training and test splits the Parzen protocol reads; a DataError where it cannot run."""
    if model.channels != 1 or model.image_size != 28:
        raise DataError(f"--parzen is the 28x28 grey-image protocol of Goodfellow et al. 2014; this model draws "
                        f"{model.image_size}x{model.image_size}x{model.channels} images")
    if dataset is None or dataset.kind != "idx" or dataset.stack > 1:
        raise DataError("--parzen needs a data set with training and test splits: --real mnist or fashion (or their "
                        "IDX folder)")
    folder = Path(real).expanduser() if real else Path()
    return folder if real and folder.is_dir() else datasets.find(dataset)


def parzen(model, folder: Path, n: int, seed: int, batch_size: int = 256, progress: OnProgress = quiet,
           cache: bool = True) -> dict:
    """Goodfellow et al. 2014, Table 1: a Gaussian Parzen window on ``n`` samples (pixels in [0, 1]); sigma is the
    grid value (``formulas.PARZEN_SIGMAS``, the original code's logspace(-1, 0, 10)) that gives the last 10,000
    training images (held out from the score, never the test set) the highest likelihood; the score is the mean
    log-likelihood of the test images in nats with its standard error; beside it, as its scale, the same score with
    as many real training images in the samples' place."""
    t0 = time.time()
    train = datasets.load_idx_split(folder, "train").images
    test = datasets.load_idx_split(folder, "test").images.double() / 255
    validation = train[-PARZEN_VALIDATION:].double() / 255
    samples, done = [], 0
    for batch in model.generate(model.latents_for(n, seed), model.labels_for(n), batch_size):
        samples.append((batch.double() + 1) / 2)
        done += len(batch)
        progress("Parzen: sampling", done, n)
    samples = torch.cat(samples)
    progress("Parzen: choosing sigma on held-out training images", 0, 4)
    sigma, per_sigma = formulas.parzen_select_sigma(samples, validation)
    progress("Parzen: scoring the test images", 1, 4)
    ll, se = formulas.parzen_score(samples, test, sigma)
    real_count = min(n, len(train) - PARZEN_VALIDATION)
    progress("Parzen: the same with real training images", 2, 4)
    real_ll = _real_parzen(folder, train, validation, test, real_count, cache)
    progress("Parzen: the same with real training images", 4, 4)
    return {"parzen_log_likelihood": round(ll, 2), "parzen_standard_error": round(se, 2),
            "parzen_real_log_likelihood": round(real_ll, 2), "parzen_real_images": real_count,
            "parzen_sigma": round(sigma, 4), "parzen_samples": n,
            "parzen_validation_images": len(validation), "parzen_test_images": len(test),
            "parzen_validation_log_likelihood": {f"{s:.4f}": round(v, 2) for s, v in
                                                 zip(formulas.PARZEN_SIGMAS, per_sigma)},
            "parzen_seconds": round(time.time() - t0, 1)}


def _real_parzen(folder: Path, train, validation, test, count: int, cache: bool) -> float:
    """The Parzen score's scale: the same protocol with the first ``count`` real training images (apart from the
    validation ones) in the samples' place; a model can pass it, since the estimate rewards blur (docs/eval.md).
    It depends on the data alone, so it is kept in the evaluation cache beside the real features."""
    files = [p for p in (find_idx(folder, f"{split}-images-idx3-ubyte") for split in ("train", "t10k")) if p]
    key = {"measure": "parzen-real", "format": 1, "data": str(folder.resolve()),
           "files": feature_cache.files_digest(files, folder), "images": count, "validation": len(validation),
           "sigmas": [round(s, 6) for s in formulas.PARZEN_SIGMAS]}
    stored = feature_cache.load(key, {"log_likelihood": ((1,), torch.float64)}) if cache else None
    if stored is not None:
        return float(stored[0]["log_likelihood"][0])
    real = train[:count].double() / 255
    sigma, _ = formulas.parzen_select_sigma(real, validation)
    ll, _ = formulas.parzen_score(real, test, sigma)
    if cache:
        feature_cache.save(key, {"log_likelihood": torch.tensor([ll], dtype=torch.float64)})
    return ll
