"""`gan mix`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import (
    DEVICE,
    SCALE,
    VERBOSE,
    check_output,
    check_scale,
    console,
    fail,
    load_model,
    model_command,
    out,
    to_stdout,
)


@model_command("mix", operation="style_mix")
def mix(
    name: str = typer.Argument(..., help="A model with style mixing: zoo name, local folder or owner/repo[@revision]."),
    rows: str = typer.Option("1,2,3", "--rows", help="Seeds of the row sources (down the side)."),
    cols: str = typer.Option("4,5,6", "--cols", help="Seeds of the column sources (along the top)."),
    levels: str = typer.Option("coarse", "--levels", help="Which styles come from the row source: coarse (4-8 px: "
                                                          "pose, shape), middle (16-32 px: features), fine (colour, "
                                                          "texture), or several, e.g. coarse,middle."),
    output: Path = typer.Option(Path("mix.png"), "-o", "--output", help="The figure (.png, .jpg, .webp)."),
    scale: Optional[int] = SCALE,
    device: str = DEVICE,
    verbose: bool = VERBOSE,
    **use,
):
    """The style-mixing figure of the StyleGAN paper: each cell is its column's image with the --levels styles of
    its row's image.

    Example: `gan mix stylegan-fashion --rows 1,2,3 --cols 4,5,6 --levels coarse -o mix.png`
    """
    from gancli import latents
    from gancli.data.imageio import enlarge, grid_image, output_format, save_image

    row_seeds, col_seeds = latents.parse_seeds(rows), latents.parse_seeds(cols)
    if len(row_seeds) * len(col_seeds) > 10_000:
        fail("too many cells: at most 10000 (rows x columns)")
    check_output(output, "-o", "mix.png")
    check_scale(scale)
    fmt = output_format(output)
    model = load_model(name, device, verbose, sampling=True)
    images, width = model.style_mix(row_seeds, col_seeds, levels, **use)
    save_image(enlarge(grid_image(images, width), scale), output, fmt)
    (console if to_stdout(output) else out).print(f"wrote a {len(row_seeds)}x{len(col_seeds)} style-mixing grid ({levels} styles from the rows) to "
              f"{output}")


