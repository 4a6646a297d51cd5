"""`gan interpolate`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import DEVICE, VERBOSE, check_output, console, fail, load_model, model_command, out, to_stdout

MAX_WALK_BYTES = 2**30  # every frame is held in memory at its final size; more is an OOM kill, not an animation


@model_command("interpolate")
def interpolate(
    name: str = typer.Argument(..., help="Zoo name, local model folder or owner/repo[@revision]."),
    images: Optional[list[Path]] = typer.Argument(None, help="With --between: the real images to walk between."),
    seeds: str = typer.Option("0-3", "--seeds", help="Key frames: one latent per seed, visited in order."),
    between: bool = typer.Option(False, "--between", help="Models with an encoder: walk between the real IMAGES "
                                                          "(encoded) instead of seeds."),
    steps: int = typer.Option(30, "--steps", help="Frames between two key frames."),
    method: Optional[str] = typer.Option(None, "--method", help="slerp (spherical; the default in z) or lerp "
                                                                "(straight line; the only way in w)."),
    space: str = typer.Option("z", "--space", help="z (the input noise) or w (the style space of models with one, "
                                                   "where walks are smoother)."),
    output: Path = typer.Option(Path("walk.gif"), "-o", "--output", help=".gif or .webp animation, or .png grid."),
    fps: float = typer.Option(15.0, "--fps", help="Frames per second of the animation."),
    scale: Optional[int] = typer.Option(None, "--scale", help="Enlarge each frame this many times, nearest-"
                                                               "neighbour (default: enough for 256 px; a .png grid: "
                                                               "about 768 px, at most 4x)."),
    nrow: Optional[int] = typer.Option(None, "--nrow", help="Frames per row of a .png grid."),
    label: Optional[str] = typer.Option(None, "--label", help="Conditional models: the class (default: the first)."),
    device: str = DEVICE,
    verbose: bool = VERBOSE,
    **use,
):
    """Walk through latent space between seeds and back to the first: an animated GIF/WebP or a PNG grid.

    Example: `gan interpolate dcgan-mnist --seeds 1,2,3 --steps 30 -o walk.gif`;
    `gan interpolate stylegan-fashion --space w`; `gan interpolate vae-mnist --between a.png b.png`
    """
    from PIL import Image

    from gancli import latents
    from gancli.data.imageio import enlarge, grid_image, output_format, save_animation, save_image, to_pil
    from gancli.use import drawing

    key_seeds = latents.parse_seeds(seeds)
    if steps < 1 or steps > 10_000:
        fail("--steps must be between 1 and 10000")
    try:
        method = drawing.walk_method(method, space)
    except ValueError as e:
        fail(str(e))
    if fps <= 0:
        fail("--fps must be positive")
    if scale is not None and scale < 1:
        fail("--scale must be 1 or more (leave it out for frames of at least 256 px)")
    check_output(output, "-o", "walk.gif")
    fmt = output_format(output, formats=("gif", "webp", "png"))
    images = images or []
    if images and not between:
        fail(f"unexpected argument {images[0]}: to walk between images, use --between (e.g. "
             f"gan interpolate {name} --between a.png b.png)")
    if between and len(images) < 2:
        fail("--between needs two images or more: gan interpolate NAME --between a.png b.png")
    if not between and len(key_seeds) < 2:
        fail("--seeds needs at least two seeds to walk between")
    for path in images:
        if not path.is_file():
            fail(f"--between: {path} is not a file")
    model = load_model(name, device, verbose, sampling=True)
    model.check_use(**use)
    model.require_use(**use)
    factor = 1 if fmt == "png" else scale or max(1, -(-256 // model.image_size))  # the least that reaches 256 px
    frames_n = drawing.walk_length(len(images) if between else len(key_seeds), steps, loop=not between)
    side = model.image_size * factor
    if frames_n * side * side * model.channels > MAX_WALK_BYTES:
        fail(f"{frames_n} frames of {side}x{side} px would need "
             f"{frames_n * side * side * model.channels / 2**30:.1f} GiB of memory (at most 1): use fewer --steps or "
             "key frames" + (", or a smaller --scale" if fmt != "png" else ""))
    frames, what = drawing.walk(model, None if between else key_seeds, images if between else None, steps, method,
                                space, label, **use)
    if fmt == "png":
        save_image(enlarge(grid_image(frames, nrow or steps), scale), output, fmt)
    else:
        pictures = [im.resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST)
                    for im in to_pil(frames)]
        save_animation(pictures, output, fps, fmt)
    (console if to_stdout(output) else out).print(f"wrote {len(frames)} frames ({what}) to {output}")


