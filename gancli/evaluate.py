"""``gan eval``: how good is a generator, measured offline against real data.

A *reference* is real data as a judge (a zoo classifier, see ``gancli.classifiers``) sees it: feature vectors, and
true labels where the data has them. A generator's samples are embedded by the same judge, then compared:

- ``fid`` / ``kid``: Fréchet distance and kernel distance of the feature distributions (lower is better);
- ``precision`` / ``recall``: realism of samples / coverage of the data (k-NN manifolds);
- ``classes_covered`` / ``kl``: which classes the judge assigns the samples to, and KL(samples ‖ real) of the shares;
- ``legible_share``: share of samples the judge is at least 90% sure of, beside the real images' share;
- ``modes_covered`` / ``kl``: Stacked-MNIST, where the judge reads each channel's digit (1000 modes);
- ``label_accuracy``: conditional models, share of ``--label k`` samples judged as k;
- ``target_domain_rate`` / ``structure``: translation models, share of outputs judged as the target domain and SSIM
  between input and output (both in grey);
- ``parzen_log_likelihood`` (``--parzen``): Goodfellow et al. 2014's Parzen-window estimate for 28x28 grey data.

Every sample is a function of (seed, i), so the same command gives the same numbers.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from gancli import datasets, evalcache, metrics
from gancli.classifiers import Judge, load_judge
from gancli.data import DataError, ImageData, find_idx, list_images, load_image_folder, resize_batch
from gancli.family import Family

Progress = Callable[[str, int, int], None]  # (what, done, total)


def _quiet(*_):
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


def pick_judge(real: str | None, model_config: dict | None, features: str | None) -> tuple[str, datasets.Dataset | None]:
    """(the classifier that judges, the named data set ``real`` is, if any).

    The judge is ``--features`` if given, else the classifier of the real data, else of the model's training data,
    else one chosen by channels. With no ``real``, the model's training data set is the reference."""
    model_ds = datasets.lookup(str((model_config or {}).get("dataset", "")))
    ds = model_ds if real is None else datasets.lookup(real)
    if real is not None and ds is None:
        path = Path(real).expanduser()
        if not path.exists():
            from gancli.errors import UnknownNameError

            raise UnknownNameError("data set (or folder)", real, list(datasets.DATASETS))
        ds = datasets.identify(path) if path.is_dir() else None
    judge = features or datasets.default_judge(ds or model_ds, (model_config or {}).get("channels", 1))
    return judge, ds


def build_reference(real: str, judge: Judge, dataset: datasets.Dataset | None, n: int | None = None,
                    seed: int = 0, split: str = "test", inception: torch.nn.Module | None = None,
                    size: int | None = None, cache: bool = True, progress: Progress = _quiet) -> Reference:
    """Real images of ``real`` (a dataset name or folder), embedded by ``judge``. ``size``: the model's; data sets
    of another size are resized to it first, as its training images were (28 px Fashion-MNIST for a 32 px
    StyleGAN), so that the resize's blur is not counted against the model. ``cache``: reuse (and keep) the
    embedding on disk (``gancli.evalcache``); the images themselves are always loaded, some measures read them."""
    progress("loading the real images", 0, 1)
    data, identity = _real_images(real, judge, dataset, n, seed, split, size)
    progress("loading the real images", 1, 1)
    stack = dataset.stack if dataset is not None else 1
    shapes = _reference_shapes(len(data), judge.num_features * stack, inception is not None)
    incep = evalcache.tensors_digest(inception.state_dict()) if inception is not None else None
    key = identity | {"stack": stack, "judge": judge.name, "judge_weights": _judge_digest(judge),
                      "device": judge.device.type, "inception": incep}
    stored = evalcache.load(key, shapes) if cache else None
    notes = []
    if stored is not None:
        tensors, labels_from = stored[0], stored[1].get("labels_from")
        progress("real features from cache", 1, 1)
    else:
        tensors, labels_from = _embed_reference(data, judge, stack, inception, progress)
        failed = evalcache.save(key, tensors, {"labels_from": labels_from}) if cache else None
        notes += [failed] if failed else []
    ref = Reference(real, judge, tensors["features"], labels=tensors["labels"], images=len(data), stack=stack,
                    num_classes=len(judge.class_names), inception=inception, data=data,
                    confidence=tensors["confidence"], inception_features=tensors.get("inception_features"),
                    real_sharpness=float(tensors["sharpness"]), notes=notes)
    if labels_from == "judge":
        ref.notes.append("real class shares are the judge's reading of the real images (no matching labels)")
    return ref


def _real_images(real: str, judge: Judge, dataset: datasets.Dataset | None, n: int | None, seed: int, split: str,
                 size: int | None) -> tuple[ImageData, dict]:
    """The reference's images, and what they are for the cache's key: the files read (their sizes and times) and
    each step that changed them (a resize, a draw of n, the stacking)."""
    folder = Path(real).expanduser()
    identity = {"split": None, "resized_to": None, "draw": None}
    if dataset is not None and dataset.kind == "idx":
        folder = folder if folder.is_dir() else datasets.find(dataset)
        data = datasets.load_idx_split(folder, split)
        prefix = "train" if split == "train" else "t10k"
        stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte", "train-labels-idx1-ubyte")  # names
        files = [p for p in (find_idx(folder, stem) for stem in stems) if p is not None]
        identity["split"] = split
        if size and data.image_size != size:
            data = ImageData(resize_batch(data.images, size), data.labels, data.class_names, data.source)
            identity["resized_to"] = size
        if dataset.stack > 1:
            data = datasets.stack_digits(data, n or len(data), seed=seed + 1, k=dataset.stack)
            identity["draw"] = {"n": len(data), "seed": seed + 1}
    elif folder.is_dir():
        files = list_images(folder)
        data = load_image_folder(folder, judge.net.image_size, judge.net.channels)
    else:
        raise DataError(f"--real {real!r} is neither a folder nor a known dataset "
                        f"({', '.join(datasets.DATASETS)})")
    if n and len(data) > n and (dataset is None or dataset.stack == 1):
        keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        data = ImageData(data.images[keep], data.labels[keep] if data.labels is not None else None, data.class_names,
                         data.source)
        identity["draw"] = {"n": n, "seed": seed}
    return data, identity | {"data": str(folder.resolve()), "files": evalcache.files_digest(files, folder)}


def _judge_digest(judge: Judge) -> str:
    """The sha256s config.json records for the judge's weights (checked when it was loaded), else its weights'."""
    recorded = judge.config.get("files")
    if isinstance(recorded, dict) and recorded and all(isinstance(e, dict) for e in recorded.values()):
        return ",".join(f"{name}:{e.get('sha256')}" for name, e in sorted(recorded.items()))
    return evalcache.tensors_digest(judge.net.state_dict())


def _reference_shapes(images: int, features: int, inception: bool) -> dict:
    shapes = {"features": ((images, features), torch.float32), "labels": ((images,), torch.int64),
              "confidence": ((images,), torch.float32), "sharpness": ((1,), torch.float32)}
    return shapes | ({"inception_features": ((images, 2048), torch.float32)} if inception else {})


REFERENCE_CHUNK = 1000  # a multiple of Judge.run's batch (500) and inception_embed's (50): the same batches as before


def _embed_reference(data: ImageData, judge: Judge, stack: int, inception, progress: Progress) -> tuple[dict, str]:
    """The tensors a Reference holds, computed in chunks so that the progress bar moves; and where its labels come
    from ("data" or "judge")."""
    parts, total = [], len(data)
    for start in range(0, total, REFERENCE_CHUNK):
        parts.append(judged(judge, data.images[start:start + REFERENCE_CHUNK], stack))
        progress("embedding the real images", min(start + REFERENCE_CHUNK, total), total)
    feats, judged_as, confidence = (torch.cat(t) for t in zip(*parts))
    labels = _reference_labels(data.labels, data.class_names, judge, judged_as, stack)
    tensors = {"features": feats, "labels": labels, "confidence": confidence,
               "sharpness": metrics.laplacian_energy(data.images).mean().float().reshape(1)}
    if inception is not None:
        incep = []
        for start in range(0, total, REFERENCE_CHUNK):
            incep.append(inception_embed(inception, data.images[start:start + REFERENCE_CHUNK]))
            progress("Inception features of the real images", min(start + REFERENCE_CHUNK, total), total)
        tensors["inception_features"] = torch.cat(incep)
    return tensors, "judge" if labels is judged_as else "data"


def _reference_labels(labels, class_names, judge: Judge, judged: torch.Tensor, stack: int) -> torch.Tensor:
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


DISTANCES = "distances (KID, FID, precision/recall)"


def compare(ref: Reference, fake_feats: torch.Tensor, fake_classes: torch.Tensor, seed: int = 0,
            kid_subsets: int = 100, confidence: torch.Tensor | None = None, progress: Progress = _quiet,
            what: str = DISTANCES) -> dict:
    """The distribution measures of samples against the reference; ``confidence``: the judge's in each sample's
    class, for the legible share. KID's subsets and precision/recall's k-NN take seconds each at 10,000 samples:
    ``progress`` says which is running."""
    progress(what, 0, 3)
    kid_mean, kid_std = metrics.kernel_distance(ref.features, fake_feats, subsets=kid_subsets, seed=seed)
    progress(what, 1, 3)
    fid = metrics.frechet_distance(ref.features, fake_feats)
    progress(what, 2, 3)
    precision, recall = metrics.precision_recall(ref.features, fake_feats)
    progress(what, 3, 3)
    result = {"fid": round(fid, 4), "kid": round(kid_mean, 6), "kid_std": round(kid_std, 6),
              "precision": round(precision, 4), "recall": round(recall, 4),
              "diversity": round(metrics.diversity(fake_feats, seed=seed), 4),
              "real_diversity": round(metrics.diversity(ref.features, seed=seed), 4)}
    if ref.labels is not None:
        if ref.stack > 1:
            p = metrics.class_histogram(fake_classes, ref.num_modes)
            uniform = torch.full((ref.num_modes,), 1.0 / ref.num_modes)
            result |= {"modes_covered": int((p > 0).sum()), "num_modes": ref.num_modes,
                       "kl": round(metrics.kl_divergence(p, uniform), 4)}
        else:
            cov = metrics.coverage_report(fake_classes, ref.labels, ref.num_classes)
            result |= {k: cov[k] for k in ("classes_covered", "num_classes", "kl", "smallest_class_share",
                                           "largest_class_share")}
            result["class_shares"] = dict(zip(ref.judge.class_names, cov["histogram"]))
        if confidence is not None and ref.confidence is not None:  # beside the real images' share, its scale
            result["legible_share"] = round(metrics.legible_share(confidence), 4)
            result["real_legible_share"] = round(metrics.legible_share(ref.confidence), 4)
    return result


def evaluate_generator(model, ref: Reference, n: int = 10000, seed: int = 0, batch_size: int = 256,
                       progress: Progress = _quiet, truncation: float | None = None) -> dict:
    """Sample ``n`` images of a (conditional) generator and measure them against ``ref``; ``truncation``: psi for
    StyleGAN models."""
    t0 = time.time()
    if model.channels != ref.stack and ref.stack > 1:
        raise DataError(f"{ref.name} images have {ref.stack} channels (one digit each); the model draws "
                        f"{model.channels}")
    psi = "" if truncation is None else f", psi {truncation:g}"
    feats, classes, inception, sharpness, confidence = _embed_batches(
        ref, model.generate(model.latents_for(n, seed), model.labels_for(n), batch_size, truncation),
        lambda d: progress(f"sampling{psi}", d, n))
    result = {"samples": n, "seed": seed, "real_images": ref.images} \
        | ({"truncation": truncation} if truncation is not None else {}) \
        | compare(ref, feats, classes, seed, confidence=confidence, progress=progress, what=DISTANCES + psi)
    if ref.data is not None:  # blur shows here, where class-feature distances barely see it
        real_sharpness = ref.real_sharpness if ref.real_sharpness is not None \
            else float(metrics.laplacian_energy(ref.data.images).mean())
        result["sharpness"] = round(float(sharpness.mean()) / max(real_sharpness, 1e-12), 4)
    if inception is not None:
        result["fid_inception"] = round(metrics.frechet_distance(ref.inception_features, inception), 4)
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
        sharp.append(metrics.laplacian_energy(_at_size(batch, ref.data)))
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


def label_accuracy(model, ref: Reference, per_class: int, seed: int, batch_size: int = 256,
                   progress: Progress = _quiet) -> dict:
    """Share of class-k samples the judge reads as k, per class and overall."""
    names = model.class_names or [str(i) for i in range(model.config["arch_args"]["num_classes"])]
    judge_index = {datasets.class_key(c): i for i, c in enumerate(ref.judge.class_names)}
    if ref.stack > 1 or not all(datasets.class_key(c) in judge_index for c in names):
        return {"label_accuracy": None,
                "label_accuracy_note": f"{ref.judge.name} does not know the classes {', '.join(names)}"}
    per = {}
    for k, name in enumerate(names):
        z = model.latents_for(per_class, seed + k)
        _, judged_as, _, _, _ = _embed_batches(ref, model.generate(z, torch.full((per_class,), k), batch_size),
                                      lambda d, k=k: progress("label accuracy", k * per_class + d,
                                                              len(names) * per_class), inception=False)
        per[name] = round(float((judged_as == judge_index[datasets.class_key(name)]).float().mean()), 4)
    return {"label_accuracy": round(sum(per.values()) / len(per), 4), "label_accuracy_per_class": per}


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
        ref.labels = _reference_labels(data.labels[keep] if data.labels is not None else None, data.class_names, judge,
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


# ---------------------------------------------------------------------------------------------- translation
def evaluate_translation(model, real: str, judge: Judge, direction: str = "a2b", size: int | None = None,
                         batch_size: int = 4, seed: int = 0, progress: Progress = _quiet,
                         inception: torch.nn.Module | None = None) -> dict:
    """Translate the held-out images of the source domain; judge the outputs against the target domain's."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    direction = model.direction(direction)
    folder = Path(real).expanduser()
    ds = datasets.lookup(real)
    if ds is not None:
        folder = datasets.find(ds)
    if not (folder / "testA").is_dir() or not (folder / "testB").is_dir():
        raise DataError(f"{folder} needs testA/ and testB/ folders of held-out images for a translation model")
    source, target = ("testA", "testB") if direction == "a2b" else ("testB", "testA")
    target_domain = model.target_domain(direction)
    target_class = _target_class(judge, target_domain, 1 if direction == "a2b" else 0)
    progress("loading the real images", 0, 2)
    inputs = load_image_folder(folder / source, size, 3)
    real_target = load_image_folder(folder / target, judge.net.image_size, judge.net.channels)
    progress("loading the real images", 1, 2)
    ref = Reference(str(folder / target), judge, judge.embed(real_target.images), images=len(real_target))
    progress("loading the real images", 2, 2)

    outputs, structure = [], []
    for start in range(0, len(inputs), batch_size):
        x = inputs.images[start:start + batch_size].float() / 127.5 - 1
        y = model.translate(x, direction)
        outputs.append(y)
        structure.append(ssim(metrics.grey(y), metrics.grey(x), data_range=2.0, reduction="none"))
        progress(f"-> {target_domain}", min(start + batch_size, len(inputs)), len(inputs))
    outputs = torch.cat(outputs)
    progress("judging the outputs", 0, 1)
    out_feats, out_logits = judge.run(outputs)
    _, in_logits = judge.run(inputs.images)
    progress("judging the outputs", 1, 1)
    result = {"direction": direction, "source": str(folder / source), "target_domain": target_domain,
              "images": len(inputs), "real_images": len(real_target),
              "target_domain_rate": round(float((out_logits.argmax(1) == target_class).float().mean()), 4),
              "input_target_domain_rate": round(float((in_logits.argmax(1) == target_class).float().mean()), 4),
              "structure": round(float(torch.cat(structure).mean()), 4)}
    result |= {k: v for k, v in compare(ref, out_feats, out_logits.argmax(1), seed, kid_subsets=100,
                                        progress=progress).items()
               if k in ("fid", "kid", "kid_std", "precision", "recall")}
    if inception is not None:
        progress("Inception FID", 0, 1)
        real_full = load_image_folder(folder / target, None, 3)
        result["fid_inception"] = round(metrics.frechet_distance(inception_embed(inception, real_full.images),
                                                                 inception_embed(inception, outputs)), 4)
        progress("Inception FID", 1, 1)
    return result


def evaluate_class_translation(model, real: str, judge: Judge, direction: str = "a2b", batch_size: int = 64,
                               seed: int = 0, progress: Progress = _quiet) -> dict:
    """A translator between classes of one labelled data set (DiscoGAN's bags <-> shoes of Fashion-MNIST): translate
    the source classes' test images; report the share the judge reads as a target class, the round trip's error,
    and the distance of the outputs to the target classes' test images."""
    direction = model.direction(direction)
    ds = datasets.lookup(real)
    if ds is None or ds.kind != "idx":
        raise DataError(f"{model.config.get('name', 'this model')} translates between classes of "
                        f"{model.config.get('dataset')}: give --real as that data set's name (e.g. fashion)")
    progress("loading the real images", 0, 1)
    test = datasets.load_idx_split(datasets.find(ds), "test")
    progress("loading the real images", 1, 1)
    classes = model.config["domain_classes"]
    src, dst = (model.domains[0], model.domains[1]) if direction == "a2b" else (model.domains[1], model.domains[0])
    pick = lambda name: test.images[torch.isin(test.labels, torch.tensor(classes[name]))]
    inputs, targets = pick(src), pick(dst)
    size = model.image_size
    x = torch.nn.functional.interpolate(inputs.float() / 127.5 - 1, size=(size, size), mode="bilinear",
                                        antialias=True, align_corners=False) if inputs.shape[-1] != size \
        else inputs.float() / 127.5 - 1
    back = "b2a" if direction == "a2b" else "a2b"
    outputs, rec_error = [], []
    for start in range(0, len(x), batch_size):
        y = model.translate(x[start:start + batch_size], direction)
        outputs.append(y)
        rec_error.append((model.translate(y, back) - x[start:start + batch_size]).abs().flatten(1).mean(1))
        progress(f"-> {dst}", min(start + batch_size, len(x)), len(x))
    outputs = torch.cat(outputs)
    judge_index = {datasets.class_key(c): i for i, c in enumerate(judge.class_names)}
    names = test.class_names
    target_ids = torch.tensor([judge_index[datasets.class_key(names[c])] for c in classes[dst]])
    progress("judging the outputs and the real images", 0, 1)
    _, out_logits = judge.run(outputs)
    _, in_logits = judge.run(inputs)
    ref = Reference(f"{real} test {dst}", judge, judge.embed(targets), images=len(targets))
    out_feats = judge.embed(outputs)
    progress("judging the outputs and the real images", 1, 1)
    result = {"direction": direction, "source": f"{real} test, {src} ({'+'.join(map(str, classes[src]))})",
              "target_domain": dst, "images": len(x), "real_images": len(targets),
              "target_domain_rate": round(float(torch.isin(out_logits.argmax(1), target_ids).float().mean()), 4),
              "input_target_domain_rate": round(float(torch.isin(in_logits.argmax(1), target_ids).float().mean()), 4),
              "reconstruction_error": round(float(torch.cat(rec_error).mean()), 4)}
    result |= {k: v for k, v in compare(ref, out_feats, out_logits.argmax(1), seed, kid_subsets=100,
                                        progress=progress).items()
               if k in ("fid", "kid", "kid_std", "precision", "recall")}
    return result


def _target_class(judge: Judge, domain: str, fallback: int) -> int:
    names = [datasets.class_key(c) for c in judge.class_names]
    return names.index(datasets.class_key(domain)) if datasets.class_key(domain) in names else fallback


# ---------------------------------------------------------------------------------------------- novelty
def novelty(model, ref: Reference, dataset: datasets.Dataset | None, n: int = 2000, seed: int = 0,
            batch_size: int = 256, grid_path: str | Path | None = None) -> dict:
    """Are the samples new? The judge's class entropy (high: the image fits no one known class) and the pixel
    distance from each sample to its nearest training image (near 0: a copy), each beside the same for real test
    images, which are new by construction. ``grid_path``: 8 samples above their nearest training images."""
    from gancli.imageio import grid_image, save_image

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
    idx, dist = metrics.nearest_neighbours(samples, train)
    _, real_dist = metrics.nearest_neighbours(real, train)
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


def parzen(model, folder: Path, n: int, seed: int, batch_size: int = 256, progress: Progress = _quiet,
           cache: bool = True) -> dict:
    """Goodfellow et al. 2014, Table 1: a Gaussian Parzen window on ``n`` samples (pixels in [0, 1]); sigma is the
    grid value (``metrics.PARZEN_SIGMAS``, the original code's logspace(-1, 0, 10)) that gives the last 10,000
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
    sigma, per_sigma = metrics.parzen_select_sigma(samples, validation)
    progress("Parzen: scoring the test images", 1, 4)
    ll, se = metrics.parzen_score(samples, test, sigma)
    real_count = min(n, len(train) - PARZEN_VALIDATION)
    progress("Parzen: the same with real training images", 2, 4)
    real_ll = _real_parzen(folder, train, validation, test, real_count, cache)
    progress("Parzen: the same with real training images", 4, 4)
    return {"parzen_log_likelihood": round(ll, 2), "parzen_standard_error": round(se, 2),
            "parzen_real_log_likelihood": round(real_ll, 2), "parzen_real_images": real_count,
            "parzen_sigma": round(sigma, 4), "parzen_samples": n,
            "parzen_validation_images": len(validation), "parzen_test_images": len(test),
            "parzen_validation_log_likelihood": {f"{s:.4f}": round(v, 2) for s, v in
                                                 zip(metrics.PARZEN_SIGMAS, per_sigma)},
            "parzen_seconds": round(time.time() - t0, 1)}


def _real_parzen(folder: Path, train, validation, test, count: int, cache: bool) -> float:
    """The Parzen score's scale: the same protocol with the first ``count`` real training images (apart from the
    validation ones) in the samples' place; a model can pass it, since the estimate rewards blur (docs/eval.md).
    It depends on the data alone, so it is kept in the evaluation cache beside the real features."""
    files = [p for p in (find_idx(folder, f"{split}-images-idx3-ubyte") for split in ("train", "t10k")) if p]
    key = {"measure": "parzen-real", "format": 1, "data": str(folder.resolve()),
           "files": evalcache.files_digest(files, folder), "images": count, "validation": len(validation),
           "sigmas": [round(s, 6) for s in metrics.PARZEN_SIGMAS]}
    stored = evalcache.load(key, {"log_likelihood": ((1,), torch.float64)}) if cache else None
    if stored is not None:
        return float(stored[0]["log_likelihood"][0])
    real = train[:count].double() / 255
    sigma, _ = metrics.parzen_select_sigma(real, validation)
    ll, _ = metrics.parzen_score(real, test, sigma)
    if cache:
        evalcache.save(key, {"log_likelihood": torch.tensor([ll], dtype=torch.float64)})
    return ll


# ---------------------------------------------------------------------------------------------- the whole command
def evaluate_upscaling(model, name: str, real: str | None, progress: Progress = _quiet) -> dict:
    """Super-resolution models: PSNR, SSIM and sharpness against the originals, beside bicubic's (no judge)."""
    from gancli.upscale import measure

    real = real or model.config.get("dataset", "")
    ds = datasets.lookup(real)
    folder = datasets.find(ds) if ds is not None else Path(real).expanduser()
    if not folder.is_dir():
        raise DataError(f"--real {real!r} is neither a folder of images nor a known dataset "
                        f"({', '.join(datasets.DATASETS)})")
    return {"model": str(name), "real": real, "feature_extractor": None, "device": str(model.device)} \
        | measure(model, folder, progress)


DEFAULT_SAMPLES = 10000


def evaluate(name: str, real: str | None = None, n: int | None = None, seed: int = 0, features: str | None = None,
             direction: str = "a2b", size: int | None = None, batch_size: int = 256, device: str = "auto",
             progress: Progress = _quiet, inception_weights: str | Path | None = None,
             truncation: list[float] | None = None, novelty_grid: str | Path | None = None,
             with_novelty: bool = False, with_parzen: bool = False, cache: bool = True,
             started: float | None = None) -> dict:
    """What ``gan eval`` prints: a dict of measures (see the module docstring) plus what produced them.

    ``n``: samples drawn from a sampler (default 10,000); a translator or upscaler is measured on every held-out
    photo instead, and ``n`` given for one is refused rather than ignored.
    ``truncation`` (StyleGAN): several psi give ``by_truncation``, one full set of measures per psi, on the same
    latents, so the precision/recall trade-off of the truncation trick can be read off. ``cache``: keep the real
    images' features on disk and reuse them (``gancli.evalcache``). ``seconds`` is the whole wall time, from
    ``started`` (a ``time.monotonic()`` reading: the command's start) or this call's, model loading included."""
    started = time.monotonic() if started is None else started
    result = _evaluate(name, real, n, seed, features, direction, size, batch_size, device, progress,
                       inception_weights, truncation, novelty_grid, with_novelty, with_parzen, cache)
    result["seconds"] = math.ceil((time.monotonic() - started) * 10) / 10  # up: never less than it took
    return result


def _evaluate(name, real, n, seed, features, direction, size, batch_size, device, progress, inception_weights,
              truncation, novelty_grid, with_novelty, with_parzen, cache) -> dict:
    from gancli.pretrained import load

    progress("loading the model", 0, 1)
    model = load(name, device=device)
    progress("loading the model", 1, 1)
    if n is not None and model.image_command:  # refused, not ignored
        raise ValueError(f"-n is the number of samples a sampler draws; {name} {model.image_command}s images and is "
                         "measured on every held-out photo of --real: drop -n")
    n = DEFAULT_SAMPLES if n is None else n
    if with_parzen and model.image_command:  # refused, not ignored
        raise DataError(f"--parzen measures samplers of 28x28 grey images (Goodfellow et al. 2014); {name} "
                        f"{model.image_command}s images")
    if model.image_command == "upscale":
        return evaluate_upscaling(model, name, real, progress)
    truncation = [model.truncation(psi) for psi in truncation] if truncation else None
    judge_name, ds = pick_judge(real, model.config, features)
    if real is None:
        if ds is None:
            raise ValueError(f"{name} does not say which data it was trained on: give --real DIR or a dataset name "
                             f"({', '.join(datasets.DATASETS)})")
        real = ds.name
    parzen_data = parzen_folder(real, ds, model) if with_parzen else None  # refused before minutes of sampling
    progress("loading the judge", 0, 1)
    judge = load_judge(judge_name, device=model.device)
    inception = None
    if inception_weights is not None:
        from gancli.inception import load_fid_inception

        inception = load_fid_inception(inception_weights, device=model.device)
    progress("loading the judge", 1, 1)
    head = {"model": str(name), "real": real, "feature_extractor": judge.name,
            "feature_extractor_test_accuracy": judge.config.get("test_accuracy"), "device": str(model.device)}
    if model.is_translation and model.config.get("domain_classes"):
        return head | evaluate_class_translation(model, real, judge, direction, min(batch_size, 256), seed, progress)
    if model.is_translation:
        return head | evaluate_translation(model, real, judge, direction, size, min(batch_size, 16), seed, progress,
                                           inception)
    ref = build_reference(real, judge, ds, n=None if ds is None or ds.stack == 1 else max(n, 10000), seed=seed,
                          size=model.image_size, inception=inception, cache=cache, progress=progress)
    if truncation and len(truncation) > 1:
        sweep = [evaluate_generator(model, ref, n, seed, batch_size, progress, psi) for psi in truncation]
        result = head | {"samples": n, "seed": seed, "real_images": ref.images, "by_truncation": sweep}
    else:
        result = head | evaluate_generator(model, ref, n, seed, batch_size, progress,
                                           truncation[0] if truncation else None)
    if type(model.family).evaluate_extra is not Family.evaluate_extra:  # the VAE's ELBO, StackGAN's captions
        progress(f"{model.family.name} measures", 0, 1)
        result |= model.family.evaluate_extra(model, ref.data, ref.judge)
        progress(f"{model.family.name} measures", 1, 1)
    if with_novelty or novelty_grid is not None:
        progress("novelty", 0, 1)
        result |= novelty(model, ref, ds, min(n, 2000), seed, batch_size, novelty_grid)
        progress("novelty", 1, 1)
    if with_parzen:
        result |= parzen(model, parzen_data, n, seed, batch_size, progress, cache)
    if ref.notes:
        result["notes"] = ref.notes
    return result
