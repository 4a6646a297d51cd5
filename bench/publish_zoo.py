"""Publish a training run into the zoo, and keep every zoo card's measured results current.

    python bench/publish_zoo.py add runs/dcgan-mnist dcgan-mnist      # copy export/ to zoo/NAME + preview grid
    python bench/publish_zoo.py add runs/vae-mnist vae-mnist --fp16   # ... with float16 weights (half the size)
    python bench/publish_zoo.py results                                # `gan eval` every zoo generator; update
                                                                       # config.json, the cards and docs/zoo.md
    python bench/publish_zoo.py results cgan-fashion                   # just one
    python bench/publish_zoo.py figures                                # redraw every zoo figure from its weights
    python bench/publish_zoo.py add runs/began-g0.5 began-fashion --plot m_global,k   # + training.png of those
    python bench/publish_zoo.py compare began-fashion gamma runs/began-g0.3 runs/began-g0.5 runs/began-g0.7
                                              # `gan eval` runs that differ in one option; a table in the card

Results are what `gan eval NAME --real DATA -n N` prints (the command is written next to them), stored under
"evaluation" in the model's config.json, rendered as the card's "## Results" section, and gathered in the table
of docs/zoo.md between the `<!-- results -->` markers.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
from pathlib import Path

import gancli
from gancli.data.imageio import grid_image, save_image
from gancli.evaluation.evaluate import evaluate
from gancli.quality import measures
from gancli.quality.measures import format_value as fv
from gancli.training.plots import line_plot
from gancli.use import cards

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"
DOC = ROOT / "docs" / "zoo.md"
REAL = {"mnist": "mnist", "fashion-mnist": "fashion", "stacked-mnist": "stacked-mnist", "horse2zebra": "horse2zebra"}
SAMPLES = {"stacked-mnist": 26000}


def add(run: Path, name: str, fp16: bool = False, plot: list[str] | None = None):
    target = ZOO / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(run / "export", target)
    model = gancli.load(target, device="cpu")
    model.config["name"] = name
    # The run's card says `gan sample RUN/export`; published, the model is used by its zoo name
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    last = ([r for r in rows if "event" not in r] or [{}])[-1]
    card = cards.model_card(model.config, last, where=name)
    # the tree budget: D travels only where a command reads it (gan classify reads SSGAN's)
    keep_d = "classify" in model.operations
    if fp16 or (model.discriminator is not None and not keep_d):
        import torch

        model.save_pretrained(target, card=card, include_discriminator=keep_d,
                              dtype=torch.float16 if fp16 else None)
    else:
        (target / "README.md").write_text(card)
    figures(name)
    if plot:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        series = {k: [(r["step"], r[k]) for r in rows if k in r and r.get("event") is None] for k in plot}
        line_plot(series, target / "training.png", title=f"{name}: {', '.join(plot)} by training step")
    print(f"published {run} as {target}; now run: python bench/publish_zoo.py results {name}")


def figures(name: str):
    """Redraw the zoo model's figures from its published weights, each from fixed seeds (never picked):
    samples.png for every model, and StyleGAN's style-mixing and truncation figures its card describes."""
    target = ZOO / name
    model = gancli.load(target, device="cpu")
    if model.takes_text:
        save_image(grid_image(text_grid(model), 8), target / "samples.png")
    elif model.image_operation == "upscale":  # one figure, every super-resolution zoo model side by side
        sr_samples()
    elif not model.is_translation:
        nrow = model.config["arch_args"]["num_classes"] if model.is_conditional else 8
        save_image(grid_image(model.sample(nrow * 8, seed=0), nrow), target / "samples.png")
    elif model.config.get("domain_classes"):  # rows: A test images, their B; B test images, their A
        import torch

        from gancli.data import datasets
        test = datasets.load_idx_split(datasets.find(datasets.lookup(model.config["dataset"])), "test")
        rows = []
        for domain, direction in zip(model.domains, ("a2b", "b2a")):
            keep = torch.isin(test.labels, torch.tensor(model.config["domain_classes"][domain]))
            x = torch.nn.functional.interpolate(test.images[keep][:8].float() / 127.5 - 1, size=model.image_size,
                                                mode="bilinear", antialias=True)
            rows += [x, model.translate(x, direction)]
        save_image(grid_image(torch.cat(rows), 8), target / "samples.png")
    elif model.is_translation:  # photos, whole: 8 test horses over their zebras, then 8 test zebras over their horses
        photo_translations(model).save(target / "samples.jpg", quality=90)  # a PNG of 32 photos: ~5 MB of the tree
    if "truncation" in model.use_options():  # the card: seeds 1-4 x 5-9 mixed; seed 3 at psi 1, 0.7, 0.5, 0
        import torch

        for level in ("coarse", "fine"):
            images, width = model.style_mix([1, 2, 3, 4], [5, 6, 7, 8, 9], level)
            save_image(grid_image(images, width), target / f"mix-{level}.png")
        rows = [model.sample(10, seed=3, truncation=psi) for psi in (1.0, 0.7, 0.5, 0.0)]
        save_image(grid_image(torch.cat(rows), 10), target / "truncation.png")
    print(f"drew the figures of {name}", flush=True)


def photo_translations(model, per_row: int = 8):
    """The first ``per_row`` held-out photos of each domain (by file name: none picked), each over its translation
    at full size, as `gan translate` makes it."""
    import torch

    from gancli.data import datasets
    from gancli.data.reading import list_images, open_image
    from gancli.data.tensors import to_tensor
    from gancli.use.translate import translate_images

    folder = datasets.find(datasets.lookup(model.config["dataset"]))
    rows = []
    for split, direction in (("testA", "a2b"), ("testB", "b2a")):
        photos = [open_image(f) for f in list_images(folder / split)[:per_row]]
        side = min(min(im.size) for im in photos)
        outs = translate_images(model, photos, direction)
        fit = lambda im: to_tensor(im.resize((side, side)) if im.size != (side, side) else im, 3)
        rows += [torch.stack([fit(im) for im in photos]), torch.stack([fit(im) for im in outs])]
    return grid_image(torch.cat(rows), per_row)


def text_grid(model, seeds: int = 4):
    """A text model's preview: one row per class's first training phrasing, each seed's stage I (upscaled) just
    left of its stage II."""
    import torch

    rows = []
    for prompt in model.family.default_texts(model.config):
        z, ids = model.latents_for(seeds, seed=0), model.labels_for(seeds, text=prompt)
        coarse, final = (torch.cat(list(model.generate(z, ids, stage=s))) for s in (1, 2))
        rows.append(torch.stack([coarse, final], 1).flatten(0, 1))
    return torch.cat(rows)


def text_section(r: dict) -> str:
    """A text model's captions, judged: per class, its training phrasing and its unseen ones."""
    lines = ["### Captions judged as their class", "",
             f"`gan eval` draws {r['text_samples_per_class']} images per class from the class's first training "
             "phrasing, and as many from its two unseen phrasings (never shown in training; made of vocabulary "
             f"words), and asks `{r['feature_extractor']}` (resizing to 28 px) which class each is. The same judge "
             f"reads {r['feature_extractor_test_accuracy']:.1%} of real Fashion-MNIST test images right: that is "
             "the scale, about the most it can certify.", "",
             "| class | training phrasing | stage II | unseen phrasings | stage II | stage I (training phrasing) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c, acc in r["text_accuracy_per_class"].items():
        lines.append(f"| {c} | {r['text_prompts'][c][0]} | {acc:.1%} | {' / '.join(r['text_prompts_unseen'][c])} | "
                     f"{r['text_accuracy_unseen_per_class'][c]:.1%} | {r['text_accuracy_stage1_per_class'][c]:.1%} |")
    lines.append(f"| **mean** | | **{r['text_accuracy']:.1%}** | | **{r['text_accuracy_unseen']:.1%}** | "
                 f"**{r['text_accuracy_stage1']:.1%}** |")
    lines += ["", "FID and the other distribution measures above are of samples drawn from the training phrasings "
              "above in turn (each class's first), so every class is asked for equally often.", "",
              "samples.png: one row per training phrasing above, top to bottom; in each row four seeds, each seed's "
              "stage I image (16x16, shown upscaled) just left of its stage II image (32x32)."]
    return "\n".join(lines)


def sr_models() -> list[str]:
    """The super-resolution zoo models: the MSE ones first (the paper's order: SRResNet, then SRGAN)."""
    found = [p.parent.name for p in sorted(ZOO.glob("*/config.json"))
             if json.loads(p.read_text()).get("task") == "super-resolution"]
    return sorted(found, key=lambda n: bool(json.loads((ZOO / n / "config.json").read_text())["training"]
                                            .get("adversarial_weight")))


def sr_samples(images: int = 3, crop: int = 80, seed: int = 0):
    """samples.png of every super-resolution zoo model: per row, a crop of a held-out horse2zebra test image as the
    low-resolution input (nearest), bicubic, each model, the original. Images and crops are drawn from ``seed``,
    not picked; each model restores the whole image (as `gan upscale` does) before the crop is taken."""
    import torch

    from gancli.data import datasets
    from gancli.data.imageio import captioned
    from gancli.data.reading import load_image_folder, split_folders
    from gancli.data.tensors import bicubic, downscale
    from gancli.use.upscale import upscale_tensor

    names = sr_models()
    models = [gancli.load(ZOO / n, device="cpu") for n in names]
    folders = split_folders(datasets.find(datasets.lookup("horse2zebra")), "test")
    test = torch.cat([load_image_folder(f, None, 3).images for f in folders])
    g = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(test), generator=g)[:images]
    cells = []
    for i in picks.tolist():
        hr = test[i].float() / 127.5 - 1
        y, x = (int(v) for v in torch.randint(0, (hr.shape[-1] - crop) // 4 + 1, (2,), generator=g) * 4)
        lr = downscale(hr[None], 4)[0]
        outs = [torch.nn.functional.interpolate(lr[None], scale_factor=4, mode="nearest")[0],
                bicubic(lr[None], 4)[0].clamp(-1, 1)]
        outs += [torch.from_numpy(upscale_tensor(m.generator, lr, 4, m.generator.margin)).permute(2, 0, 1)
                 .float() / 127.5 - 1 for m in models]
        cells += [o[:, y:y + crop, x:x + crop] for o in outs + [hr]]
    columns = ["input", "bicubic", *names, "original"]
    picture = captioned(grid_image(torch.stack(cells), len(columns)), " | ".join(columns))
    for name in names:
        save_image(picture, ZOO / name / "samples.png")


def sr_section(name: str) -> str:
    """The card's results of a super-resolution model: bicubic and every SR zoo model in one table."""
    rows = [(n, json.loads((ZOO / n / "config.json").read_text()).get("evaluation")) for n in sr_models()]
    rows = [(n, r) for n, r in rows if r]
    r = dict(rows)[name]
    lines = [f"Measured offline with `{r['command']}` (each model in the table likewise): each of the "
             f"{r['images']} held-out test images "
             f"({', '.join(Path(f).name for f in r['folders'])}) downscaled x{r['scale']} (bicubic, antialiased, "
             "8-bit) and restored; PSNR and SSIM on luma with a "
             f"{r['scale']}-pixel border cropped, sharpness = Laplacian energy of the restorations / of the originals, "
             "checkerboard = the luma rows' and columns' spectra at the 2- and 4-pixel periods over their "
             "neighbourhood, and lattice = the same on the 2-D spectrum, diagonals included (a grid of dots): about 1 "
             "without a pattern (docs/eval.md):", "",
             "| restored by | PSNR (dB) | SSIM | sharpness | checkerboard | lattice |",
             "| --- | --- | --- | --- | --- | --- |",
             f"| bicubic | {fv('bicubic_psnr', r['bicubic_psnr'])} | {fv('bicubic_ssim', r['bicubic_ssim'])} | "
             f"{fv('bicubic_sharpness', r['bicubic_sharpness'])} | {_pattern(r, 'bicubic_checkerboard')} | "
             f"{_pattern(r, 'bicubic_lattice')} |"]
    lines += [f"| `{n}`{' (this model)' if n == name else ''} | {fv('psnr', x['psnr'])} | {fv('ssim', x['ssim'])} | "
              f"{x['sharpness']:.4f} | {_pattern(x, 'checkerboard')} | {_pattern(x, 'lattice')} |" for n, x in rows]
    lines += [f"| the originals | | 1 | 1.000 | {_pattern(r, 'original_checkerboard')} | "
              f"{_pattern(r, 'original_lattice')} |"]
    config = json.loads((ZOO / name / "config.json").read_text())
    if config.get("notes"):
        lines += ["", "### What the numbers say", "", config["notes"]]
    lines += ["", "Per row: the low-resolution input (nearest-neighbour), bicubic, " + ", ".join(
        f"`{n}`" for n, _ in rows) + ", the original; crops of test images drawn with seed 0, not picked.", "",
              "![samples](samples.png)"]
    return "\n".join(lines)


def measure(name: str) -> dict:
    config = json.loads((ZOO / name / "config.json").read_text())
    real = REAL[config["dataset"]]
    n = SAMPLES.get(real, 10000)
    model = gancli.load(ZOO / name, device="cpu")
    # translators take every test image; -n is for samplers
    sampler = not model.image_operation
    # the 2014 paper's likelihood estimate, for every model its protocol fits (28x28 grey MNIST-style samplers)
    parzen = sampler and real in ("mnist", "fashion") and (model.image_size, model.channels) == (28, 1)
    command = shlex.join(["gan", "eval", name, "--real", real] + (["-n", str(n)] if sampler else [])
                         + (["--parzen"] if parzen else []))
    print(command, flush=True)
    result = evaluate(name, real, n=n if sampler else None, device="auto", parzen=parzen) | {"command": command}
    floors = json.loads((ZOO / "floors.json").read_text()).get(name, {})
    worse = measures.below_floors(result, floors)
    if worse:  # the zoo never gets quietly worse: the published evaluation stays, and so must the weights
        raise SystemExit(f"{name} is not published: " + "; ".join(worse) + f" (zoo/floors.json). Restore the "
                         f"published weights with `git checkout -- zoo/{name}`.")
    config["evaluation"] = result
    every = json.loads((ZOO / "floors.json").read_text())
    every[name] = measures.raised_floors(floors, result)  # the zoo's floors only rise
    (ZOO / "floors.json").write_text(json.dumps(every, indent=1) + "\n")
    if model.is_translation:  # and the other way
        back = shlex.join(["gan", "eval", name, "--real", real, "--direction", "b2a"])
        print(back, flush=True)
        config["evaluation_b2a"] = evaluate(name, real, device="auto", direction="b2a") | {"command": back}
    if "truncation" in model.use_options():
        psis = [1.0, 0.7, 0.5]
        sweep = shlex.join(["gan", "eval", name, "--real", real, "-n", str(n), "--truncation",
                            ",".join(map(str, psis))])
        print(sweep, flush=True)
        config["evaluation_truncation"] = evaluate(name, real, n=n, device="auto", sweeps={"truncation": psis}) \
            | {"command": sweep}
    (ZOO / name / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return result


def results_section(r: dict) -> str:
    v = lambda key, default=None: fv(key, r.get(key, default))  # noqa: E731  (the format of gancli.quality.measures)
    rows = [(f"FID (feature space of `{r['feature_extractor']}`, {v('feature_extractor_test_accuracy')} accurate)",
             r.get("fid")),
            ("KID (x 1000, mean ± std over 100 subsets)", f"{1000 * r['kid']:.2f} ± {1000 * r['kid_std']:.2f}"
             if "kid" in r else None),
            ("precision / recall (k = 3)", f"{v('precision')} / {v('recall')}" if "recall" in r else None),
            ("coverage / density (k = 3; Naeem et al. 2020)", f"{v('coverage')} / {v('density')}"
             if "coverage" in r else None),
            ("classes covered", f"{r['classes_covered']} / {r['num_classes']}" if "classes_covered" in r else None),
            ("modes covered (of 1000)", r.get("modes_covered")),
            ("KL(sample classes ‖ real)" if "classes_covered" in r else "KL(sample modes ‖ uniform)", r.get("kl")),
            (f"legible share (judge's confidence ≥ 0.9; real test images: {v('real_legible_share', 0)})",
             v("legible_share") if "legible_share" in r else None),
            (f"Parzen-window log-likelihood of {v('parzen_test_images', 0)} test images, nats (sigma "
             f"{v('parzen_sigma', 0)} chosen on {v('parzen_validation_images', 0)} held-out training images, "
             f"{v('parzen_samples', 0)} samples; Goodfellow et al. 2014)",
             f"{v('parzen_log_likelihood')} ± {v('parzen_standard_error')}" if "parzen_log_likelihood" in r
             else None),
            ("smallest / largest class share", f"{v('smallest_class_share')} / {v('largest_class_share')}"
             if "smallest_class_share" in r else None),
            ("`--label k` samples judged as k", v("label_accuracy") if r.get("label_accuracy") else None),
            ("sharpness (Laplacian energy of samples / of real images; 1 = as sharp)", r.get("sharpness")),
            ("target-domain rate / structure (SSIM)", f"{v('target_domain_rate')} / {v('structure')}"
             if "structure" in r else None),
            (f"translated {r.get('source', '')} judged as {r.get('target_domain', '')} (untranslated: "
             f"{v('input_target_domain_rate', 0)})", v("target_domain_rate")
             if "reconstruction_error" in r else None),
            (f"D as a classifier: test error on {v('test_images', 0)} real test images",
             v("test_error") if "test_error" in r else None),
            ("round-trip reconstruction error (mean absolute x - G_BA(G_AB(x)), pixels in [-1, 1])",
             r.get("reconstruction_error"))]
    lines = [f"Measured offline with `{r['command']}` ({v('samples', r.get('images'))} "
             f"{'samples' if 'samples' in r else 'images translated'}, seed "
             f"{r.get('seed', 0)}, against {v('real_images')} real images, {v('seconds')} s on {r['device']}):",
             "", "| measure | value |", "| --- | --- |"]
    if "elbo" in r:
        rows.append(("test ELBO, nats per image (reconstruction + KL)",
                     f"{v('elbo')} ({v('reconstruction_nats')} + {v('kl_nats')}) on {v('elbo_images')} test images"))
    lines += [f"| {k} | {v} |" for k, v in rows if v is not None]
    if r.get("label_accuracy_per_class"):
        lines += ["", "Label accuracy per class: "
                  + ", ".join(f"{k} {v:.0%}" for k, v in r["label_accuracy_per_class"].items()) + ". The judge "
                  f"itself reads {r['feature_extractor_test_accuracy']:.1%} of real test images correctly, so that is "
                  "about the most it can certify."]
    if r.get("class_shares"):
        lines += ["", "Class shares of the samples: "
                  + ", ".join(f"{k} {v:.1%}" for k, v in r["class_shares"].items()) + "."]
    lines += ["", "FID and KID are comparable only between models measured with the same feature extractor; "
              "lower is better. See docs/eval.md.", "", "![samples](samples.png)"]
    return "\n".join(lines)


def truncation_section(t: dict) -> str:
    lines = ["### The truncation trade-off", "", f"`{t['command']}` (same latents for every psi):", "",
             "| psi | FID | precision | recall | diversity |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(fv(k, x[k]) for k in ("truncation", "fid", "precision", "recall", "diversity")) + " |"
              for x in t["by_truncation"]]
    return "\n".join(lines)


# the measures a sweep may compare, by their labels in gancli.quality.measures
COMPARED = {k: measures.label(k) for k in ("fid", "precision", "recall", "classes_covered", "diversity", "sharpness",
                                           "class_entropy", "nearest_train_distance", "test_error")}


def compare(name: str, option: str, runs: list[Path], novelty: bool = False, keys: list[str] | None = None):
    """`gan eval` the exports of runs that differ in ``option`` (one of them the zoo entry's own run), on the same
    latents and real images; the rows go to config.json as "evaluation_sweep", to the card and to docs/zoo.md."""
    config = json.loads((ZOO / name / "config.json").read_text())
    real = REAL[config["dataset"]]
    own = shlex.split(config["training"]["command"])
    rows = []
    for run in runs:
        options = json.loads((run / "options.json").read_text())
        command = ["gan", "eval", str(run / "export"), "--real", real, "-n", "10000"] + (["--novelty"] if novelty else [])
        mine = options["out"] in own  # the zoo entry's own run: its command names that run directory
        grid = ZOO / name / "novelty.png" if novelty and mine else None
        if grid is not None:
            command += ["--novelty-grid", grid.name]
        print(shlex.join(command), flush=True)
        r = evaluate(str(run / "export"), real, n=10000, device="auto", novelty=novelty, novelty_grid=grid)
        rows.append({"value": options[option], "this_model": mine, "train": run_command(run),
                     "eval": shlex.join(command)}
                    | {k: r[k] for k in COMPARED if k in r} | {k: r[k] for k in r if k.startswith("real_")})
    keys = keys or [k for k in COMPARED if all(k in row for row in rows)]
    config["evaluation_sweep"] = {"option": option, "keys": keys, "rows": rows}
    (ZOO / name / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def run_command(run: Path) -> str:
    """The one `gan train` command that makes the run as it ended (its settings, its final length), also when it
    was resumed with another length."""
    from gancli.families import catalog
    options = json.loads((run / "options.json").read_text())
    trained = json.loads((run / "export" / "config.json").read_text())["training"]
    options |= {"steps": trained["steps"]} if options.get("steps") is not None else {"epochs": trained["epochs"]}
    return catalog.get(options["arch"]).train_command(options)


def sweep_table(name: str, sweep: dict, with_model: bool = False) -> list[str]:
    option, keys = sweep["option"], sweep["keys"]
    head = (["model"] if with_model else []) + [f"--{option.replace('_', '-')}"] + [COMPARED[k] for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in sweep["rows"]:
        value = f"{row['value']}" + (" (this model)" if row["this_model"] else "")
        cells = ([f"`{name}`"] if with_model else []) + [value] + [
            fv(k, row[k]) if measures.is_share(k) else f"{row[k]:.4g}" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    reals = {k: sweep["rows"][0][f"real_{k}"] for k in keys if f"real_{k}" in sweep["rows"][0]}
    if reals and not with_model:
        lines.append("| real test images | " + " | ".join(f"{reals[k]:.4g}" if k in reals else "" for k in keys)
                     + " |")
    return lines


def sweep_section(name: str, sweep: dict) -> str:
    lines = [f"### Measured against `--{sweep['option'].replace('_', '-')}`", "",
             "Each row is one training run that differs only in this option, measured by `gan eval` on the same "
             "latents and real images:", ""] + sweep_table(name, sweep)
    lines += ["", "Commands:", ""] + [f"- `{r['train']}`, then `{r['eval']}`" for r in sweep["rows"]]
    return "\n".join(lines)


def update_card(name: str, r: dict):
    card_path = ZOO / name / "README.md"
    card = card_path.read_text()
    head = re.split(r"\n## Results\n", card)[0].rstrip()
    if "psnr" in r:
        card_path.write_text(head + "\n\n## Results\n\n" + sr_section(name) + "\n")
        return
    body = results_section(r)
    config = json.loads((ZOO / name / "config.json").read_text())
    sweep = config.get("evaluation_truncation")
    if config.get("evaluation_b2a"):
        body = body.replace("\n\nFID and KID are comparable", "\n\n### The other way\n\n"
                            + results_section(config["evaluation_b2a"]).split("\n\nFID and KID")[0]
                            + "\n\nFID and KID are comparable")
    if sweep:
        body = body.replace("\n\nFID and KID are comparable", "\n\n" + truncation_section(sweep)
                            + "\n\nFID and KID are comparable")
    if config.get("evaluation_sweep"):
        body = body.replace("\n\nFID and KID are comparable", "\n\n" + sweep_section(name, config["evaluation_sweep"])
                            + "\n\nFID and KID are comparable")
    if r.get("text_accuracy_per_class"):
        body = body.replace("\n\nFID and KID are comparable", "\n\n" + text_section(r)
                            + "\n\nFID and KID are comparable")
    if config.get("notes"):  # what the numbers mean against the paper, written by whoever published the model
        body = body.replace("\n\nFID and KID are comparable", "\n\n### Against the paper\n\n" + config["notes"]
                            + "\n\nFID and KID are comparable")
    for figure, caption in (("training.png", "training"), ("novelty.png", "samples (top) above their nearest "
                                                                          "training images (bottom)")):
        if (ZOO / name / figure).exists():
            body += f"\n\n![{caption}]({figure})"
    card_path.write_text(head + "\n\n## Results\n\n" + body + "\n")


def update_doc():
    header = ["| model | FID | KID x1000 | precision / recall | coverage | KL | label accuracy | measured with |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = []
    for folder in sorted(ZOO.iterdir()):
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            continue
        r = json.loads(cfg_path.read_text()).get("evaluation")
        if not r or "fid" not in r:
            continue
        coverage = (f"{r['classes_covered']}/{r['num_classes']} classes" if "classes_covered" in r
                    else f"{r['modes_covered']}/1000 modes" if "modes_covered" in r else "")
        label = fv("label_accuracy", r["label_accuracy"]) if r.get("label_accuracy") else \
            f"captions: {fv('text_accuracy', r['text_accuracy'])} (unseen phrasings " \
            f"{fv('text_accuracy_unseen', r['text_accuracy_unseen'])})" \
            if r.get("text_accuracy") is not None else ""
        rows.append(f"| `{folder.name}` | {fv('fid', r['fid'])} | {1000 * r['kid']:.2f} | "
                    f"{fv('precision', r['precision'])} / {fv('recall', r['recall'])} | {coverage} | "
                    f"{r.get('kl', '')} | {label} | `{r['command']}` |")
    judges = ["| judge | input | classes | test accuracy | trained |", "| --- | --- | --- | --- | --- |"]
    for folder in sorted(ZOO.glob("classifier-*")):
        c = json.loads((folder / "config.json").read_text())
        judges.append(f"| `{folder.name}` | {c['image_size']}x{c['image_size']}x{c['channels']} | "
                      f"{', '.join(c['class_names'])} | {c['test_accuracy']:.2%} of {c['training']['test_images']:,} | "
                      f"{c['training']['epochs']} epochs, {c['training']['seconds']} s, {c['training']['device']} |")
    text = DOC.read_text()
    blocks = {"results": header + rows, "judges": judges, "vae-vs-gan": comparison("mnist"),
              "fashion": comparison("fashion-mnist"), "truncation": truncation_rows(), "sweeps": sweep_rows(),
              "super-resolution": sr_rows()}
    for marker, lines in blocks.items():
        start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: "\n".join([start] + lines + [end]), text,
                      flags=re.S)
    DOC.write_text(text)


def _evaluated() -> list[tuple[str, dict, dict]]:
    out = []
    for p in sorted(ZOO.glob("*/config.json")):
        c = json.loads(p.read_text())
        if c.get("evaluation"):
            out.append((p.parent.name, c, c["evaluation"]))
    return out


def comparison(dataset: str) -> list[str]:
    """One row per model of ``dataset``: the same `gan eval` numbers side by side, GANs and the VAE alike."""
    lines = ["| model | family | FID | precision | recall | coverage | classes covered | KL | legible | sharpness "
             "| Parzen estimate (nats) | test ELBO (nats) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, c, r in _evaluated():
        if c.get("dataset") == dataset and "classes_covered" in r:
            legible = fv("legible_share", r["legible_share"]) if "legible_share" in r else ""
            parzen = f"{r['parzen_log_likelihood']:.1f} ± {r['parzen_standard_error']:.1f}" \
                if "parzen_log_likelihood" in r else ""
            lines.append(f"| `{name}` | {c['architecture']} | "
                         + " | ".join(fv(k, r[k]) if k in r else "" for k in ("fid", "precision", "recall", "coverage"))
                         + f" | {r['classes_covered']}/{r['num_classes']} | {r['kl']} | {legible} | "
                         f"{r.get('sharpness', '')} | {parzen} | "
                         + (fv("elbo", r["elbo"]) if "elbo" in r else "n/a (no likelihood)") + " |")
    return lines


def truncation_rows() -> list[str]:
    lines = ["| model | psi | FID | precision | recall | diversity | sharpness |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in sorted(ZOO.glob("*/config.json")):
        t = json.loads(p.read_text()).get("evaluation_truncation")
        for x in (t or {}).get("by_truncation", []):
            lines.append(f"| `{p.parent.name}` | "
                         + " | ".join(fv(k, x[k]) for k in ("truncation", "fid", "precision", "recall", "diversity"))
                         + f" | {x.get('sharpness', '')} |")
    return lines


def _pattern(r: dict, key: str) -> str:
    return fv(key, r[key]) if key in r else "-"  # evaluations from before the measure lack it


def sr_rows() -> list[str]:
    lines = ["| restored by | PSNR (dB) | SSIM | sharpness | checkerboard | lattice | measured with |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, name in enumerate(sr_models()):
        r = json.loads((ZOO / name / "config.json").read_text()).get("evaluation")
        if r and i == 0:
            lines.append("| bicubic | " + " | ".join(fv(k, r[k]) for k in ("bicubic_psnr", "bicubic_ssim",
                                                                         "bicubic_sharpness"))
                         + f" | {_pattern(r, 'bicubic_checkerboard')} | {_pattern(r, 'bicubic_lattice')} | "
                         "(every `gan eval` of an SR model) |")
        if r:
            lines.append(f"| `{name}` | {fv('psnr', r['psnr'])} | {fv('ssim', r['ssim'])} | {r['sharpness']:.4f} | "
                         f"{_pattern(r, 'checkerboard')} | {_pattern(r, 'lattice')} | `{r['command']}` |")
    return lines


def sweep_rows() -> list[str]:
    lines = []
    for name, c, _ in _evaluated():
        if c.get("evaluation_sweep"):
            lines += ([""] if lines else []) + sweep_table(name, c["evaluation_sweep"], with_model=True)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("add")
    a.add_argument("run", type=Path)
    a.add_argument("name")
    a.add_argument("--fp16", action="store_true", help="store float16 weights")
    a.add_argument("--plot", type=lambda s: s.split(","), help="metrics.jsonl keys to plot as training.png")
    c = sub.add_parser("compare")
    c.add_argument("name")
    c.add_argument("option", help="the option the runs differ in, as in options.json (e.g. gamma)")
    c.add_argument("runs", nargs="+", type=Path)
    c.add_argument("--novelty", action="store_true", help="measure novelty too (and draw novelty.png)")
    c.add_argument("--keys", type=lambda s: s.split(","), help="which measures to show")
    f = sub.add_parser("figures")
    f.add_argument("names", nargs="*")
    r = sub.add_parser("results")
    r.add_argument("names", nargs="*")
    r.add_argument("--cards-only", action="store_true", help="re-render cards and docs from stored results")
    args = ap.parse_args()
    if args.what == "add":
        add(args.run, args.name, args.fp16, args.plot)
        return
    if args.what == "compare":
        compare(args.name, args.option, args.runs, args.novelty, args.keys)
        update_card(args.name, json.loads((ZOO / args.name / "config.json").read_text())["evaluation"])
        update_doc()
        return
    if args.what == "figures":
        for name in args.names or [p.parent.name for p in sorted(ZOO.glob("*/config.json"))
                                   if json.loads(p.read_text()).get("task") != "classifier"]:
            figures(name)
        return
    names = args.names or [p.parent.name for p in sorted(ZOO.glob("*/config.json"))
                           if json.loads(p.read_text()).get("task") != "classifier"]
    for name in names:
        result = json.loads((ZOO / name / "config.json").read_text())["evaluation"] if args.cards_only \
            else measure(name)
        update_card(name, result)
    update_doc()


if __name__ == "__main__":
    main()
