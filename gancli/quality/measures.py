"""The one table of measures: every number ``gan eval`` writes, and the training log's stats that are shown with a
name, declared once with how it reads (label), which way is better, and its format where it stands alone (cards,
figures). ``gan eval``'s table, the training log, the figures and the model cards read it, so a measure is named and
formatted the same wherever it appears, and a new one is declared here, once.

Plain data and string formatting only: the CLI imports this at start-up, which stays free of torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"] | None


@dataclass(frozen=True)
class Measure:
    key: str                # as in results.json / metrics.jsonl
    label: str              # as a figure or a card names it
    better: Better = None   # None: no direction (a count, a scale, or 1 = as the real images)
    fmt: str = ""           # format spec where the value stands alone ("": as stored, already rounded)
    none: str | None = None  # what gan eval's table shows when it could not be measured (None: no row)


_m = Measure


_TABLE = (
    # what produced the numbers
    _m("feature_extractor_test_accuracy", "judge's test accuracy", "higher", ".2%"),
    _m("samples", "samples", fmt=","), _m("seed", "seed"), _m("real_images", "real images", fmt=","),
    _m("images", "images", fmt=","), _m("truncation", "psi"), _m("seconds", "seconds", fmt=".0f"),
    # distances of the judge's features (evaluate.compare)
    _m("fid", "FID", "lower", ".3f"), _m("fid_inception", "FID (Inception)", "lower", ".3f"),
    _m("kid", "KID", "lower"), _m("kid_std", "KID std"),
    _m("precision", "precision", "higher", ".3f"), _m("recall", "recall", "higher", ".3f"),
    _m("density", "density", fmt=".3f"),  # about 1 like the data; neither way is better
    _m("coverage", "coverage", "higher", ".3f"),
    _m("diversity", "diversity", "higher", ".3f"), _m("real_diversity", "real images' diversity", fmt=".3f"),
    # classes and modes
    _m("classes_covered", "classes covered", "higher"), _m("num_classes", "classes"),
    _m("modes_covered", "modes covered", "higher"), _m("num_modes", "modes"),
    _m("kl", "KL", "lower"),
    _m("smallest_class_share", "smallest class share", "higher", ".1%"),
    _m("largest_class_share", "largest class share", "lower", ".1%"),
    _m("legible_share", "legible share", "higher", ".1%"), _m("real_legible_share", "real legible share", fmt=".1%"),
    _m("label_accuracy", "label accuracy", "higher", ".1%", none="-"),
    _m("class_diversity", "within-class diversity, worst class (1 = the data's)", "higher", ".3f"),
    _m("text_diversity", "one caption's diversity, worst class (1 = the data's)", "higher", ".3f"),
    _m("sharpness", "sharpness"),  # 1 = as sharp as the real images: neither way is better
    # translation
    _m("target_domain_rate", "judged the target domain", "higher", ".1%"),
    _m("input_target_domain_rate", "untranslated, judged the target domain", fmt=".1%"),
    _m("structure", "grey SSIM to the input", "higher", ".3f"),
    _m("reconstruction_error", "round-trip reconstruction error", "lower"),
    # super-resolution (gancli.evaluation.translation.measure)
    _m("scale", "scale"),
    _m("psnr", "PSNR (dB)", "higher", ".2f"), _m("ssim", "SSIM", "higher", ".4f"),
    _m("bicubic_psnr", "bicubic PSNR (dB)", fmt=".2f"), _m("bicubic_ssim", "bicubic SSIM", fmt=".4f"),
    _m("bicubic_sharpness", "bicubic sharpness", fmt=".4f"),
    _m("checkerboard", "checkerboard (2- and 4-pixel periods)", "lower", ".2f"),
    _m("bicubic_checkerboard", "bicubic checkerboard", fmt=".2f"),
    _m("original_checkerboard", "originals' checkerboard", fmt=".2f"),
    _m("lattice", "lattice of dots (2-D spectrum, 2- and 4-pixel periods)", "lower", ".2f"),
    _m("bicubic_lattice", "bicubic lattice", fmt=".2f"),
    _m("original_lattice", "originals' lattice", fmt=".2f"),
    # a family's own (Family.evaluate_extra): the VAE's ELBO, SSGAN's classifier, StackGAN's captions
    _m("elbo", "test ELBO (nats)", "higher", ".2f"), _m("reconstruction_nats", "reconstruction (nats)", fmt=".2f"),
    _m("kl_nats", "KL (nats)", fmt=".2f"), _m("elbo_images", "test images", fmt=","),
    _m("test_accuracy", "test accuracy", "higher", ".2%"), _m("test_error", "test error", "lower", ".2%"),
    _m("test_images", "test images", fmt=","),
    _m("text_accuracy", "captions judged as their class", "higher", ".1%"),
    _m("text_accuracy_unseen", "unseen phrasings judged as their class", "higher", ".1%"),
    _m("text_accuracy_stage1", "stage I judged as their class", "higher", ".1%"),
    _m("text_samples_per_class", "samples per class and prompt set"),
    # --novelty
    _m("novelty_samples", "novelty samples", fmt=","),
    _m("class_entropy", "class entropy (nats)"), _m("real_class_entropy", "real class entropy (nats)"),
    _m("nearest_train_distance", "distance to nearest training image"),
    _m("real_nearest_train_distance", "real distance to nearest training image"),
    # --parzen (Goodfellow et al. 2014)
    _m("parzen_log_likelihood", "Parzen-window log-likelihood (nats)", "higher", ".2f"),
    _m("parzen_standard_error", "standard error (nats)", fmt=".2f"),
    _m("parzen_real_log_likelihood", "real training images' Parzen log-likelihood (nats)", fmt=".2f"),
    _m("parzen_real_images", "real training images", fmt=","), _m("parzen_sigma", "sigma", fmt="g"),
    _m("parzen_samples", "samples", fmt=","), _m("parzen_validation_images", "validation images", fmt=","),
    _m("parzen_test_images", "test images", fmt=","), _m("parzen_seconds", "seconds", fmt=".0f"),
    # the training log (metrics.jsonl), where shown with a name: losses.png, the model card's last logged row
    _m("loss_d", "D loss", "lower", ".3f"), _m("loss_g", "G loss", "lower", ".3f"),
    _m("d_real", "D(x)", fmt=".3f"), _m("d_fake", "D(G(z))", fmt=".3f"), _m("value", "V(D, G)", fmt=".3f"),
)
MEASURES: dict[str, Measure] = {m.key: m for m in _TABLE}

# Which measures a short summary names, in this order: the training log's eval line (gancli.training.trainer)
EVAL_SUMMARY = ("fid", "kid", "precision", "recall", "coverage", "classes_covered", "modes_covered", "diversity")
# the measures of a sweep's table, after the swept option's column (those its rows have): gan eval --truncation 1,0.7
SWEEP_COLUMNS = ("fid", "kid", "precision", "recall", "coverage", "diversity", "classes_covered", "kl")


@dataclass(frozen=True)
class Table:
    """A table of ``gan eval``'s report (gancli.evaluation.evaluate.report): cells already written as text, so a
    family can add one and the CLI only prints it. ``right``: the columns aligned right (numbers)."""
    title: str
    columns: list[str]
    rows: list[list[str]]
    right: tuple[int, ...] = ()


def sweep_table(result: dict, option: str, title: str) -> Table | None:
    """``by_<option>``'s rows (one set of measures per value of a swept option) as a table, or None."""
    rows = result.get(f"by_{option}")
    if not rows:
        return None
    keys = [option] + [k for k in SWEEP_COLUMNS if k in rows[0]]
    return Table(title, ["psi" if k == "truncation" else k for k in keys],
                 [[cell(row.get(k)) for k in keys] for row in rows], right=tuple(range(len(keys))))


def get(key: str) -> Measure | None:
    return MEASURES.get(key)


def label(key: str) -> str:
    """How ``key`` reads; an undeclared key reads as it is spelled."""
    m = MEASURES.get(key)
    return m.label if m else key


def better(key: str) -> Better:
    m = MEASURES.get(key)
    return m.better if m else None


def headline(key: str) -> str:
    """The label with its direction: "FID (lower is better)"."""
    return label(key) + (f" ({better(key)} is better)" if better(key) else "")


def format_value(key: str, value) -> str:
    """``value`` in the measure's own format (undeclared keys, and None, as they are)."""
    m = MEASURES.get(key)
    return format(value, m.fmt) if m and value is not None else str(value)


def is_share(key: str) -> bool:
    """Shares read as percentages wherever they stand alone."""
    m = MEASURES.get(key)
    return bool(m and m.fmt.endswith("%"))


def cell(value) -> str:
    """How ``gan eval``'s tables write a number: "-" for none, integers with thousands separators, else 4
    significant digits (the JSON keeps them all)."""
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def table_rows(result: dict) -> list[tuple[str, str]]:
    """``gan eval``'s table: (key, cell) of each number of ``result``, in its order, and of the measures that say
    how to show their absence."""
    def shown(key, value):
        m = MEASURES.get(key)
        return isinstance(value, (int, float)) and not isinstance(value, bool) or (m is not None and m.none is not None)
    return [(k, cell(v) if v is not None else MEASURES[k].none) for k, v in result.items() if shown(k, v)]


# recall is reported but is no floor (a few outlying samples raise it: docs/eval.md); coverage stands in for it
FLOOR_KEYS = ("fid", "classes_covered", "modes_covered", "coverage", "legible_share", "label_accuracy", "kl",
              "target_domain_rate", "psnr", "ssim", "text_accuracy", "checkerboard", "lattice")


def floor_of(key: str, value: float) -> float:
    """A measured value as a floor: rounded a little in the unfavourable direction (so the same model measured
    again passes), towards more for measures where lower is better."""
    if isinstance(value, int):
        return value
    places = 2 - math.floor(math.log10(abs(value))) if value else 3  # three significant digits
    step = 10.0 ** -places
    rounded = (math.ceil if better(key) == "lower" else math.floor)(round(value / step, 6)) * step
    return round(rounded, max(places, 0))  # 24.9, not 24.900000000000002


def raised_floors(floors: dict, result: dict) -> dict:
    """``floors`` after a published model measured ``result``: each floor measure it has, at the stricter of the old
    floor and its own value (``floor_of``), so that the zoo's floors only ever rise."""
    raised = dict(floors)
    for key in FLOOR_KEYS:
        value = result.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        new = floor_of(key, value)
        old = raised.get(key)
        raised[key] = new if old is None else (min(old, new) if better(key) == "lower" else max(old, new))
    return raised


def below_floors(result: dict, floors: dict) -> list[str]:
    """What in ``result`` (a `gan eval` result) is worse than ``floors`` (measure -> floor; for measures where lower
    is better, a ceiling), each in words; a measure the result lacks is reported too."""
    worse = []
    for key, floor in floors.items():
        value = result.get(key)
        if value is None:
            worse.append(f"{key}: not measured (floor {floor})")
        elif (value > floor) if better(key) == "lower" else (value < floor):
            worse.append(f"{key} {format_value(key, value)} is worse than its floor {format_value(key, floor)}")
    return worse
