"""``gan eval``: how good is a generator, measured offline against real data.

A *reference* is real data as a judge (a zoo classifier, see ``gancli.quality.judges``) sees it: feature vectors, and
true labels where the data has them. A generator's samples are embedded by the same judge, then compared:

- ``fid`` / ``kid``: Fréchet distance and kernel distance of the feature distributions (lower is better);
- ``precision`` / ``recall``: realism of samples / breadth of the data they reach (k-NN manifolds);
- ``coverage`` / ``density``: the share of real images with a sample nearby, and how crowded the samples are
  around the real ones (the real k-NN balls only, so outlying samples cannot inflate them as they do recall);
- ``classes_covered`` / ``kl``: which classes the judge assigns the samples to, and KL(samples ‖ real) of the shares;
- ``legible_share``: share of samples the judge is at least 90% sure of, beside the real images' share;
- ``modes_covered`` / ``kl``: Stacked-MNIST, where the judge reads each channel's digit (1000 modes);
- ``label_accuracy``: conditional models, share of ``--label k`` samples judged as k;
- ``target_domain_rate`` / ``structure``: translation models, share of outputs judged as the target domain and SSIM
  between input and output (both in grey);
- ``parzen_log_likelihood`` (``--parzen``): Goodfellow et al. 2014's Parzen-window estimate for 28x28 grey data.

Every sample is a function of (seed, i), so the same command gives the same numbers. How each number reads
(label, which way is better, format) is declared once, in ``gancli.quality.measures``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gancli import registry
from gancli.data import datasets
from gancli.data.reading import DataError, ImageData, find_idx, list_images, load_image_folder, resize_batch
from gancli.evaluation import feature_cache
from gancli.evaluation.reference import (
    DISTANCES,
    TRANSLATION_DISTANCES,
    OnProgress,
    Reference,
    compare,
    embed,
    inception_embed,
    judged,
    quiet,
    reference_labels,
)
from gancli.evaluation.samplers import (
    PARZEN_VALIDATION,
    TrainingMonitor,
    collapse_alarms,
    evaluate_generator,
    label_accuracy,
    novelty,
    parzen,
    parzen_folder,
)
from gancli.evaluation.translation import evaluate_class_translation, evaluate_translation, evaluate_upscaling
from gancli.families.base import Family
from gancli.quality import formulas, measures
from gancli.quality.judges import Judge, load_judge
from gancli.quality.measures import Table

# The measures live in gancli.evaluation.reference, gancli.evaluation.samplers and gancli.evaluation.translation; their names stay
# reachable here, where callers import them from. build_reference and _embed_reference stay in this module: tests
# replace them (and load_judge) here, for the calls evaluate makes.
__all__ = ["DEFAULT_SAMPLES", "DISTANCES", "EvalRequest", "PARZEN_VALIDATION", "REFERENCE_CHUNK", "TRANSLATION_DISTANCES",
           "OnProgress", "Reference", "TrainingMonitor", "build_reference", "collapse_alarms", "compare", "embed",
           "evaluate", "evaluate_class_translation", "evaluate_generator", "evaluate_translation",
           "evaluate_upscaling", "inception_embed", "judged", "label_accuracy", "novelty", "parzen", "parzen_folder",
           "pick_judge", "report"]


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
                    size: int | None = None, cache: bool = True, progress: OnProgress = quiet) -> Reference:
    """Real images of ``real`` (a dataset name or folder), embedded by ``judge``. ``size``: the model's; data sets
    of another size are resized to it first, as its training images were (28 px Fashion-MNIST for a 32 px
    StyleGAN), so that the resize's blur is not counted against the model. ``cache``: reuse (and keep) the
    embedding on disk (``gancli.evaluation.feature_cache``); the images themselves are always loaded, some measures read them."""
    progress("loading the real images", 0, 1)
    data, identity = _real_images(real, judge, dataset, n, seed, split, size)
    progress("loading the real images", 1, 1)
    stack = dataset.stack if dataset is not None else 1
    shapes = _reference_shapes(len(data), judge.num_features * stack, inception is not None)
    incep = feature_cache.tensors_digest(inception.state_dict()) if inception is not None else None
    key = identity | {"stack": stack, "judge": judge.name, "judge_weights": _judge_digest(judge),
                      "device": judge.device.type, "inception": incep}
    stored = feature_cache.load(key, shapes) if cache else None
    notes = []
    if stored is not None:
        tensors, labels_from = stored[0], stored[1].get("labels_from")
        progress("real features from cache", 1, 1)
    else:
        tensors, labels_from = _embed_reference(data, judge, stack, inception, progress)
        failed = feature_cache.save(key, tensors, {"labels_from": labels_from}) if cache else None
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
    return data, identity | {"data": str(folder.resolve()), "files": feature_cache.files_digest(files, folder)}


def _judge_digest(judge: Judge) -> str:
    """The sha256s config.json records for the judge's weights (checked when it was loaded), else its weights'."""
    recorded = judge.config.get("files")
    if isinstance(recorded, dict) and recorded and all(isinstance(e, dict) for e in recorded.values()):
        return ",".join(f"{name}:{e.get('sha256')}" for name, e in sorted(recorded.items()))
    return feature_cache.tensors_digest(judge.net.state_dict())


def _reference_shapes(images: int, features: int, inception: bool) -> dict:
    shapes = {"features": ((images, features), torch.float32), "labels": ((images,), torch.int64),
              "confidence": ((images,), torch.float32), "sharpness": ((1,), torch.float32)}
    return shapes | ({"inception_features": ((images, 2048), torch.float32)} if inception else {})


REFERENCE_CHUNK = 1000  # a multiple of Judge.run's batch (500) and inception_embed's (50): the same batches as before


def _embed_reference(data: ImageData, judge: Judge, stack: int, inception, progress: OnProgress) -> tuple[dict, str]:
    """The tensors a Reference holds, computed in chunks so that the progress bar moves; and where its labels come
    from ("data" or "judge")."""
    parts, total = [], len(data)
    for start in range(0, total, REFERENCE_CHUNK):
        parts.append(judged(judge, data.images[start:start + REFERENCE_CHUNK], stack))
        progress("embedding the real images", min(start + REFERENCE_CHUNK, total), total)
    feats, judged_as, confidence = (torch.cat(t) for t in zip(*parts))
    labels = reference_labels(data.labels, data.class_names, judge, judged_as, stack)
    tensors = {"features": feats, "labels": labels, "confidence": confidence,
               "sharpness": formulas.laplacian_energy(data.images).mean().float().reshape(1)}
    if inception is not None:
        incep = []
        for start in range(0, total, REFERENCE_CHUNK):
            incep.append(inception_embed(inception, data.images[start:start + REFERENCE_CHUNK]))
            progress("Inception features of the real images", min(start + REFERENCE_CHUNK, total), total)
        tensors["inception_features"] = torch.cat(incep)
    return tensors, "judge" if labels is judged_as else "data"


# ---------------------------------------------------------------------------------------------- the whole command
DEFAULT_SAMPLES = 10000


@dataclass
class EvalRequest:
    """What ``gan eval`` is asked: one model, measured against real data.

    ``real``: a data set name or folder (default: the model's training set). ``n``: samples a sampler draws
    (default 10,000); translators and upscalers are measured on every held-out photo instead, and ``n`` given for
    one is refused rather than ignored. ``use``: the model's use-time options of ``generate``, as ``gan sample``
    takes them (``{"truncation": 0.7}``, a StackGAN's ``{"stage": 1}``). ``sweeps``: one option at several values
    on the same latents (``{"truncation": [1.0, 0.7, 0.5]}``: the truncation trade-off), one full set of measures
    per value in ``by_<option>``. ``cache``: keep the real images' features on disk and reuse them
    (``gancli.evaluation.feature_cache``)."""

    model: str | Path
    real: str | None = None
    n: int | None = None
    seed: int = 0
    features: str | None = None
    use: dict = field(default_factory=dict)
    sweeps: dict[str, list] = field(default_factory=dict)
    direction: str = "a2b"
    size: int | None = None
    batch_size: int = 256
    device: str = "auto"
    inception_weights: str | Path | None = None
    novelty: bool = False
    novelty_grid: str | Path | None = None
    parzen: bool = False
    cache: bool = True

    @property
    def samples(self) -> int:
        return DEFAULT_SAMPLES if self.n is None else self.n


def evaluate(request: EvalRequest | str | Path, real: str | None = None, *, progress: OnProgress = quiet,
             started: float | None = None, **settings) -> dict:
    """What ``gan eval`` prints: a dict of measures (see the module docstring) plus what produced them.
    ``evaluate("my-dcgan", real="mnist", n=1000)`` is ``evaluate(EvalRequest("my-dcgan", real="mnist", n=1000))``.
    ``seconds`` is the whole wall time, from ``started`` (a ``time.monotonic()`` reading: the command's start) or
    this call's, model loading included."""
    from gancli.use.model import load

    started = time.monotonic() if started is None else started
    if not isinstance(request, EvalRequest):
        request = EvalRequest(request, real, **settings)
    progress("loading the model", 0, 1)
    model = load(request.model, device=request.device)
    progress("loading the model", 1, 1)
    check_request(model, request)
    measure = {"translate": _measure_translator, "upscale": _measure_upscaler}.get(model.image_operation,
                                                                                  _measure_sampler)
    result = {"architecture": model.architecture} | measure(model, request, progress)
    result["seconds"] = math.ceil((time.monotonic() - started) * 10) / 10  # up: never less than it took
    return result


def check_request(model, request: EvalRequest):
    """Refuse what cannot be measured before minutes of work: settings for another kind of model, an option the
    model does not take, a value it would refuse when drawing."""
    name = request.model
    if request.n is not None and model.image_operation:
        raise ValueError(f"-n is the number of samples a sampler draws; {name} {model.image_operation}s images and is "
                         "measured on every held-out photo of --real: drop -n")
    if request.parzen and model.image_operation:
        raise DataError(f"--parzen measures samplers of 28x28 grey images (Goodfellow et al. 2014); {name} "
                        f"{model.image_operation}s images")
    if len(request.sweeps) > 1:
        raise ValueError(f"one option at several values at a time, not {', '.join(request.sweeps)}")
    for option, values in request.sweeps.items():
        if option in request.use:
            raise ValueError(f"--{option.replace('_', '-')} is given twice")
        for value in values:
            model.check_use(**request.use, **{option: value})
            model.generator_options(**request.use, **{option: value})
    model.check_use(**request.use)
    model.generator_options(**request.use)


def _judging(model, request: EvalRequest, progress: OnProgress):
    """The judge (and the standard Inception, if asked for), the named data set, and the result's first keys."""
    judge_name, ds = pick_judge(request.real, model.config, request.features)
    real = request.real
    if real is None:
        if ds is None:
            raise ValueError(f"{request.model} does not say which data it was trained on: give --real DIR or a data "
                             f"set name ({', '.join(datasets.DATASETS)})")
        real = ds.name
    progress("loading the judge", 0, 1)
    judge = load_judge(judge_name, device=model.device)
    inception = None
    if request.inception_weights is not None:
        from gancli.quality.inception import load_fid_inception

        inception = load_fid_inception(request.inception_weights, device=model.device)
    progress("loading the judge", 1, 1)
    head = {"model": str(request.model), "real": real, "feature_extractor": judge.name,
            "feature_extractor_test_accuracy": judge.config.get("test_accuracy"), "device": str(model.device)}
    return judge, ds, real, inception, head


def _measure_upscaler(model, request: EvalRequest, progress: OnProgress) -> dict:
    return evaluate_upscaling(model, request.model, request.real, progress)


def _measure_translator(model, request: EvalRequest, progress: OnProgress) -> dict:
    judge, _, real, inception, head = _judging(model, request, progress)
    if model.config.get("domain_classes"):
        return head | evaluate_class_translation(model, real, judge, request.direction, min(request.batch_size, 256),
                                                 request.seed, progress)
    return head | evaluate_translation(model, real, judge, request.direction, request.size,
                                       min(request.batch_size, 16), request.seed, progress, inception)


def _measure_sampler(model, request: EvalRequest, progress: OnProgress) -> dict:
    n, seed, batch_size = request.samples, request.seed, request.batch_size
    judge, ds, real, inception, head = _judging(model, request, progress)
    parzen_data = parzen_folder(real, ds, model) if request.parzen else None  # refused before minutes of sampling
    ref = build_reference(real, judge, ds, n=None if ds is None or ds.stack == 1 else max(n, 10000), seed=seed,
                          size=model.image_size, inception=inception, cache=request.cache, progress=progress)
    if request.sweeps:
        (option, values), = request.sweeps.items()
        rows = [evaluate_generator(model, ref, n, seed, batch_size, progress, **request.use, **{option: v})
                for v in values]
        result = head | {"samples": n, "seed": seed, "real_images": ref.images, f"by_{option}": rows}
    else:
        result = head | evaluate_generator(model, ref, n, seed, batch_size, progress, **request.use)
    if type(model.family).evaluate_extra is not Family.evaluate_extra:  # the VAE's ELBO, StackGAN's captions
        progress(f"{model.family.name} measures", 0, 1)
        result |= model.family.evaluate_extra(model, ref.data, ref.judge)
        progress(f"{model.family.name} measures", 1, 1)
    if request.novelty or request.novelty_grid is not None:
        progress("novelty", 0, 1)
        result |= novelty(model, ref, ds, min(n, 2000), seed, batch_size, request.novelty_grid)
        progress("novelty", 1, 1)
    if request.parzen:
        result |= parzen(model, parzen_data, n, seed, batch_size, progress, request.cache)
    if ref.notes:
        result["notes"] = ref.notes
    return result


def report(result: dict) -> list[Table | str]:
    """What ``gan eval`` shows of a result, in order: the measures' table, sentences (Parzen), and the tables the
    model's family adds (a sweep's trade-off, StackGAN's captions). The CLI prints them as they come."""
    title = f"{result['model']} vs {result['real']}" + (f"  (features: {result['feature_extractor']})"
                                                         if result.get("feature_extractor") else "")
    rows = [list(row) for row in measures.table_rows(result)]
    shown: list[Table | str] = [Table(title, ["measure", "value"], rows, right=(1,))]
    if "parzen_log_likelihood" in result:
        shown.append(f"Parzen-window log-likelihood of {result['parzen_test_images']:,} test images: "
                     f"{result['parzen_log_likelihood']:.2f} ± {result['parzen_standard_error']:.2f} nats (sigma "
                     f"{result['parzen_sigma']:.4g}, chosen on the last {result['parzen_validation_images']:,} "
                     f"training images; {result['parzen_samples']:,} samples); {result['parzen_real_images']:,} "
                     f"real training images in the samples' place: {result['parzen_real_log_likelihood']:.2f}")
    family = registry.registered().get(result.get("architecture", ""))
    return shown + (family.eval_tables(result) if family is not None else [])
