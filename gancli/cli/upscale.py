"""`gan upscale`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import BF16, DEVICE, VERBOSE, check_output, command, describe, load_model, out, say_notes
from gancli.cli.progress import left_out, run_plan


@command()
def upscale(
    name: str = typer.Argument(..., help="A super-resolution model: zoo name, local folder or owner/repo."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input only)."),
    outdir: Optional[Path] = typer.Option(None, "--outdir", help="Write outputs here (folder structure kept)."),
    scale: Optional[float] = typer.Option(None, "--scale", help="Output size factor: the model's (default, e.g. 4) "
                                                                "or a smaller one above 1 (its output resampled)."),
    tile: int = typer.Option(448, "--tile", help="Input pixels per tile side: memory is bounded by one tile."),
    device: str = DEVICE,
    bf16: bool = BF16,
    verbose: bool = VERBOSE,
):
    """Upscale images with a super-resolution model (SRGAN / SRResNet): any size, in overlapping tiles.

    Example: `gan upscale srgan-x4 photo.jpg` (-> photo-x4.jpg); `gan upscale srresnet-x4 photos/ --outdir big/`;
    `gan upscale srgan-x4 small.png -o big.png --scale 3`
    """
    from gancli.data import fileplan
    from gancli.data.reading import InputNotes
    from gancli.use import upscale as up

    if output is not None:
        check_output(output, "-o", "out.png")
        fileplan.check_output(output)  # its format, before the model loads
    model = load_model(name, device, verbose)
    model.require("upscale")
    model.bf16 = bf16
    scale = up.check_scale(model, scale)
    up.check_tile(model.generator, tile)
    p = fileplan.plan(inputs, f"x{scale:g}", output, outdir)
    notes = InputNotes()
    done, skipped, where = run_plan(p, f"x{scale:g}", "upscaled", outdir,
                                     lambda advance: up.run(model, p, scale, tile, advance=advance, notes=notes),
                                     total=up.total_tiles(model, p, tile))  # a large image's tiles show progress
    out.print(f"upscaled {done} image(s) x{scale:g} -> {where}  ({describe(model.device)}{', bf16' if bf16 else ''})"
              + left_out(p, skipped))
    say_notes(notes)


