"""``gan eval``'s measures of models that take images: translators (between two folders of photos, or between
classes of one labelled data set) and super-resolution models. ``gancli.evaluation.evaluate`` dispatches here and re-exports
these names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from gancli.data import datasets
from gancli.data.reading import DataError, load_image_folder, split_folders
from gancli.data.tensors import bicubic, downscale, quantize
from gancli.evaluation.reference import TRANSLATION_DISTANCES, OnProgress, Reference, compare, inception_embed, quiet
from gancli.quality import formulas
from gancli.quality.formulas import checkerboard, laplacian_energy, lattice, luma, psnr, ssim
from gancli.quality.judges import Judge
from gancli.use.upscale import upscale_staged


def evaluate_translation(model, real: str, judge: Judge, direction: str = "a2b", size: int | None = None,
                         batch_size: int = 4, seed: int = 0, progress: OnProgress = quiet,
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
        structure.append(ssim(formulas.grey(y), formulas.grey(x), data_range=2.0, reduction="none"))
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
               if k in TRANSLATION_DISTANCES}
    if inception is not None:
        progress("Inception FID", 0, 1)
        real_full = load_image_folder(folder / target, None, 3)
        result["fid_inception"] = round(formulas.frechet_distance(inception_embed(inception, real_full.images),
                                                                 inception_embed(inception, outputs)), 4)
        progress("Inception FID", 1, 1)
    return result


def evaluate_class_translation(model, real: str, judge: Judge, direction: str = "a2b", batch_size: int = 64,
                               seed: int = 0, progress: OnProgress = quiet) -> dict:
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
               if k in TRANSLATION_DISTANCES}
    return result


def _target_class(judge: Judge, domain: str, fallback: int) -> int:
    names = [datasets.class_key(c) for c in judge.class_names]
    return names.index(datasets.class_key(domain)) if datasets.class_key(domain) in names else fallback


def evaluate_upscaling(model, name: str, real: str | None, progress: OnProgress = quiet) -> dict:
    """Super-resolution models: PSNR, SSIM and sharpness against the originals, beside bicubic's (no judge)."""

    real = real or model.config.get("dataset", "")
    ds = datasets.lookup(real)
    folder = datasets.find(ds) if ds is not None else Path(real).expanduser()
    if not folder.is_dir():
        raise DataError(f"--real {real!r} is neither a folder of images nor a known dataset "
                        f"({', '.join(datasets.DATASETS)})")
    return {"model": str(name), "real": real, "feature_extractor": None, "device": str(model.device)} \
        | measure(model, folder, progress)


def measure(model, folder, progress: Callable[[str, int, int], None] = lambda *a: None) -> dict:
    """PSNR and SSIM (on luma, ``scale`` border pixels cropped, as Ledig et al.), sharpness, and the two pattern
    measures (``formulas.checkerboard`` on rows and columns, ``formulas.lattice`` on the 2-D spectrum; also of the
    originals) of the model's and bicubic's restorations of ``folder``'s images (its test*/ sub-folders, if it has
    train*/ and test*/), each downscaled by the model's factor first exactly as the training inputs were."""
    import time

    t0, factor = time.time(), int(model.config["scale"])
    folders = split_folders(Path(folder), "test")
    originals = torch.cat([load_image_folder(f, None, model.channels).images for f in folders])
    side = originals.shape[-1] // factor * factor
    originals = originals[..., :side, :side]
    scores: dict[str, list[torch.Tensor]] = {"model": [], "bicubic": []}
    energy = {"model": 0.0, "bicubic": 0.0, "original": 0.0}
    pattern = {"model": [], "bicubic": [], "original": [checkerboard(luma(hr[None])[0, 0]) for hr in originals]}
    dots = {"model": [], "bicubic": [], "original": [lattice(luma(hr[None])[0, 0]) for hr in originals]}
    for i, hr in enumerate(originals):
        lr = downscale(hr[None].float() / 127.5 - 1, factor)[0]
        outs = {"model": torch.from_numpy(upscale_staged(model.staged(), lr, device=model.device,
                                                         memory_format=model.memory_format)).permute(2, 0, 1),
                "bicubic": quantize(bicubic(lr[None], factor)[0])}
        for key, out in outs.items():
            a, b = luma(out[None])[..., factor:-factor, factor:-factor], luma(hr[None])[..., factor:-factor, factor:-factor]
            scores[key].append(torch.stack([psnr(a, b)[0], ssim(a, b)[0]]))
            energy[key] += float(laplacian_energy(out[None])[0])
            pattern[key].append(checkerboard(luma(out[None])[0, 0]))
            dots[key].append(lattice(luma(out[None])[0, 0]))
        energy["original"] += float(laplacian_energy(hr[None])[0])
        progress("restoring", i + 1, len(originals))
    result = {"images": len(originals), "scale": factor, "folders": [str(f) for f in folders]}
    for key, prefix in (("model", ""), ("bicubic", "bicubic_")):
        mean = torch.stack(scores[key]).mean(0)
        result |= {f"{prefix}psnr": round(float(mean[0]), 3), f"{prefix}ssim": round(float(mean[1]), 4),
                   f"{prefix}sharpness": round(energy[key] / energy["original"], 4),
                   f"{prefix}checkerboard": round(sum(pattern[key]) / len(pattern[key]), 3),
                   f"{prefix}lattice": round(sum(dots[key]) / len(dots[key]), 3)}
    result["original_checkerboard"] = round(sum(pattern["original"]) / len(pattern["original"]), 3)
    result["original_lattice"] = round(sum(dots["original"]) / len(dots["original"]), 3)
    return result | {"seconds": round(time.time() - t0, 1)}


