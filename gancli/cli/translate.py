"""`gan translate`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import (
    BACKEND,
    BF16,
    DEVICE,
    VERBOSE,
    check_backend,
    check_output,
    command,
    describe,
    fail,
    load_model,
    out,
    say_notes,
    use_backend,
)
from gancli.cli.progress import left_out, run_plan


@command()
def translate(
    name: str = typer.Argument(..., help="A translation model: zoo name, local folder or owner/repo[@revision]."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input only)."),
    outdir: Optional[Path] = typer.Option(None, "--outdir", help="Write outputs here (folder structure kept)."),
    direction: str = typer.Option("a2b", "--direction", help="a2b, b2a, or the target domain's name (e.g. zebra)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per forward pass."),
    size: Optional[int] = typer.Option(None, "--size", help="Resize the shorter side to this first (keeps aspect)."),
    side: bool = typer.Option(False, "--side-by-side", help="Write input and output next to each other."),
    device: str = DEVICE,
    backend: str = BACKEND,
    bf16: bool = BF16,
    verbose: bool = VERBOSE,
):
    """Translate images with an image-to-image model (CycleGAN): any size, files or folders, both directions.

    Example: `gan translate cyclegan-horse2zebra horse.jpg` (-> horse-zebra.jpg);
    `gan translate cyclegan-horse2zebra photos/ --outdir zebras/`; `gan translate cyclegan-horse2zebra z.jpg --direction horse`
    """
    from gancli.data import fileplan
    from gancli.data.reading import InputNotes
    from gancli.use import translate as tr

    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if size is not None and size < 4:
        fail("--size must be at least 4")
    if output is not None:
        check_output(output, "-o", "out.jpg")
        fileplan.check_output(output)  # its format, before the model loads
    backend = check_backend(backend, bf16)
    model = load_model(name, device, verbose)
    if not model.is_translation:
        fail(f"{name} is not a translation model (its task is {model.config.get('task', 'unconditional')}): "
             + (f"use `gan {model.image_operation} {name} IMAGE`" if model.image_operation else "use `gan sample`"))
    direction = model.direction(direction)
    target = model.target_domain(direction)
    p = fileplan.plan(inputs, tr_suffix(target), output, outdir)
    use_backend(model, backend, bf16, verbose, direction)
    notes = InputNotes()
    done, skipped, where = run_plan(p, f"-> {target}", "translated", outdir, lambda advance: tr.run(
        model, p, direction, size, batch_size, side, advance=advance, notes=notes),
                                    total=tr.total_steps(model, p, size))  # a large photo's tiles show progress
    say_notes(notes)
    out.print(f"translated {done} image(s) to {target} ({direction}) -> {where}  ({describe(model.device)}, "
              f"{model.backend}{', bf16' if bf16 else ''})"
              + left_out(p, skipped))


def tr_suffix(domain: str) -> str:
    from gancli.use.drawing import folder_name

    return folder_name(domain).replace(" ", "-").lower()


