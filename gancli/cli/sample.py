"""`gan sample`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import (
    BACKEND,
    BF16,
    DEVICE,
    SCALE,
    VERBOSE,
    check_backend,
    check_output,
    check_scale,
    check_seed,
    console,
    describe,
    fail,
    load_model,
    model_command,
    out,
    plural,
    to_stdout,
    use_backend,
)
from gancli.cli.progress import progress_bar


@model_command("sample")
def sample(
    name: str = typer.Argument(..., help="Zoo name, local model folder or training run, or owner/repo[@revision]."),
    n: int = typer.Option(64, "-n", "--num", help="Number of images (ignored with --seeds)."),
    seed: int = typer.Option(0, "--seed", help="Image i of the request is a pure function of (seed, i)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="One image per seed, e.g. 0-7,42."),
    label: Optional[str] = typer.Option(None, "--label", help="Conditional models: the class, by name or index."),
    per_class: Optional[int] = typer.Option(None, "--per-class",
                                            help="Conditional models: K images of every class, one folder per "
                                                 "class in OUTDIR."),
    output: Path = typer.Option(Path("samples.png"), "-o", "--output", help="Grid file (.png, .jpg, .webp)."),
    outdir: Optional[Path] = typer.Option(None, "--outdir", help="Write one file per image here instead of a grid."),
    nrow: Optional[int] = typer.Option(None, "--nrow", help="Images per grid row (default: square, or one column "
                                                             "per class)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    fmt: Optional[str] = typer.Option(None, "--format", help="png, jpg or webp (default: from -o, or png)."),
    scale: Optional[int] = SCALE,
    device: str = DEVICE,
    backend: str = BACKEND,
    bf16: bool = BF16,
    verbose: bool = VERBOSE,
    **use,
):
    """Draw images from a model: one grid, or one file per image with --outdir.

    Example: `gan sample dcgan-mnist -n 64 --seed 1 -o digits.png`; `gan sample cgan-mnist --label 7 -n 64`;
    `gan sample cgan-mnist --per-class 100 --outdir aug/`; `gan sample stackgan-fashion --text "an ankle boot"`
    """
    from gancli.use import drawing

    seed_list, count, fmt = _checked_request(n, seed, seeds, label, per_class, output, outdir, nrow, batch_size, fmt,
                                             scale)
    backend = check_backend(backend, bf16)
    model = load_model(name, device, verbose, sampling=True)
    if per_class is not None and not model.is_conditional:  # said with the name as typed
        fail(f"{name} is not a conditional model: --per-class needs one (e.g. cgan-mnist)")
    model.check_use(**use)
    model.require_use(**use)
    drawn = drawing.request(model, count, seed, seed_list, label, per_class, **use)
    _pick_backend(model, backend, bf16, verbose, use)
    count = len(drawn)
    paths = [outdir / f"{stem}.{fmt}" for stem in drawn.stems] if outdir is not None else None
    images = _draw(model, drawn, batch_size, use, paths, scale, fmt)
    what = _described(model, label, bf16, use)
    if paths is not None:
        tree = f" in {count // per_class} class folders" if per_class else ""
        out.print(f"wrote {plural(count, 'image')} to {outdir}/{tree}  ({what})")
    else:
        _save_grid(model, images, nrow, label, scale, output, fmt)
        (console if to_stdout(output) else out).print(  # -o -: stdout holds the picture alone
            f"wrote {'a grid of ' + plural(count, 'image') if count > 1 else '1 image'} to {output}  ({what})")


def _checked_request(n, seed, seeds, label, per_class, output, outdir, nrow, batch_size, fmt, scale):
    """The request's options checked before a model loads: (the --seeds list or None, the number of images, the
    files' format)."""
    from gancli import latents
    from gancli.data.imageio import output_format

    check_seed(seed)
    seed_list = latents.parse_seeds(seeds) if seeds is not None else None
    if per_class is not None:
        if outdir is None:
            fail("--per-class writes a folder per class: give --outdir")
        if label is not None or seed_list:
            fail("--per-class draws every class: drop --label / --seeds")
        if per_class < 1:
            fail("--per-class must be at least 1")
    count = len(seed_list) if seed_list else n
    if count < 1 or count > 1_000_000:
        fail("-n must be between 1 and 1000000")
    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if nrow is not None and nrow < 1:
        fail("--nrow must be at least 1")
    check_scale(scale)
    if outdir is None and count > 10_000:
        fail(f"{count} images is too many for one grid: use --outdir to write one file per image")
    if outdir is None:
        check_output(output, "-o", "samples.png")
    fmt = output_format(output, fmt, has_format_option=True) if outdir is None else \
        output_format(Path(f"x.{fmt or 'png'}"), fmt)
    return seed_list, count, fmt


def _pick_backend(model, backend: str, bf16: bool, verbose: bool, use: dict):
    """--backend for this request: the exported graph (onnxruntime) cannot draw with the model's own generator
    options, so those run on torch, and asking onnxruntime for them is an error."""
    beyond_graph = model.generator_options(**use)  # what the exported graph cannot draw
    if beyond_graph and backend == "onnxruntime":
        fail(f"--backend onnxruntime runs the exported graph, which has no "
             f"{' or '.join('--' + k for k in beyond_graph)}: drop it or use --backend torch")
    use_backend(model, "torch" if beyond_graph else backend, bf16, verbose)


def _draw(model, drawn, batch_size: int, use: dict, paths, scale, fmt: str) -> list:
    """The ``drawn`` request generated under a progress bar: each image written to its file of ``paths`` as drawn
    (enlarged ``scale`` times), or, without paths, the batches returned for one grid."""
    from gancli.data.imageio import enlarge, save_image, to_pil

    images, done = [], 0
    with progress_bar() as progress:
        task = progress.add_task("sampling", total=len(drawn))
        for batch in model.generate(drawn.z, drawn.labels, batch_size, **use):
            if paths is not None:
                for k, img in enumerate(to_pil(batch)):
                    save_image(enlarge(img, scale) if scale else img, paths[done + k], fmt)  # files: as drawn
            else:
                images.append(batch)
            done += len(batch)
            progress.advance(task, len(batch))
    return images


def _described(model, label, bf16: bool, use: dict) -> str:
    """What drew the images, for the closing line: the class asked for, the family, the use-time options, the device
    and the backend."""
    what = ", ".join([model.architecture, *model.describe_use(**use), describe(model.device), model.backend]
                     + (["bf16"] if bf16 else []))
    if label is not None:
        what = f"class {model.class_names[model.class_index(label)] if model.class_names else label}, " + what
    return what


def _save_grid(model, images: list, nrow, label, scale, output: Path, fmt: str):
    """The batches as one grid file (a conditional model's whole range: one column per class)."""
    import torch

    from gancli.data.imageio import enlarge, grid_image, save_image

    if nrow is None and model.is_conditional and label is None:
        nrow = model.config["arch_args"]["num_classes"]  # one column per class
    save_image(enlarge(grid_image(torch.cat(images), nrow), scale), output, fmt)
