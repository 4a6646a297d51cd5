"""`gan toy`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli.cli.common import app, check_output, check_seed, command, console, fail, out

toy_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown",
                      help="The theory of the GAN papers, shown and checked on toy data in seconds on a CPU "
                           "(docs/theory.md).\n\nExample: `gan toy 1d -o toy.gif`; `gan toy 2d --unrolled 5`")
app.add_typer(toy_app, name="toy")
TOY_LOSS = typer.Option("ns", "--loss", help="ns (non-saturating G loss) or minimax (the original log(1 - D(G(z)))).")
TOY_SEED = typer.Option(0, "--seed", help="Same seed, same numbers and pictures.")
TOY_FRAMES = typer.Option(30, "--frames", help="Measurements (and animation frames) over training.")
TOY_OUTPUT = typer.Option(None, "-o", "--output", help="Picture: .gif/.webp animates; .png/.jpg shows four moments "
                                                       "(default: toy-1d.gif or toy-2d.gif, unless --json is given).")
TOY_SCALE = typer.Option(2, "--scale", help="Draw the picture this many times larger than 80 dpi (1 to 8).")
TOY_JSON = typer.Option(None, "--json", help="Write the numbers (final and over training) here as JSON; - prints "
                                             "them instead of the table.")


def _toy_outputs(output: Optional[Path], json_path: Optional[Path], scale: int, default: str) -> Optional[Path]:
    """-o, checked; without -o or --json, the picture anyway (it is what the command is for), as ``default``."""
    from gancli.use.toy import check_picture

    if not 1 <= scale <= 8:
        fail(f"--scale must be from 1 to 8, not {scale}")
    if output is None and json_path is None:
        output = Path(default)
    if output is not None:
        check_output(output, "-o", "toy.gif")
        check_picture(output)
    if json_path is not None and str(json_path) != "-":
        check_output(json_path, "--json", "toy.json")
    return output


def _toy_finish(result, frames_fn, output: Optional[Path], json_path: Optional[Path], rows: list[tuple[str, str]],
                scale: int):
    import json

    if str(json_path) == "-":
        out.print_json(json.dumps(result.to_json()))
    else:
        table = Table(title=f"gan toy {result.to_json()['kind']}: after {result.steps} steps (seed {result.seed})")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    if output is not None:
        from gancli.use.toy import save_picture

        what = save_picture(frames_fn(result, scale), output)
        console.print(f"wrote {output} ({what}, {len(result.history)} frames)" if what == "animation"
                      else f"wrote {output} (four moments of training)", highlight=False, markup=False)
    if json_path is not None and str(json_path) != "-":
        from gancli.data.imageio import atomic_write

        atomic_write(json_path, lambda f: f.write((json.dumps(result.to_json(), indent=2) + "\n").encode()))
        console.print(f"wrote {json_path}", highlight=False, markup=False)


@command("1d", on=toy_app)
def toy_1d(
    data: str = typer.Option("gauss", "--data", help="gauss (one Gaussian) or bimodal (two bumps)."),
    loss: str = TOY_LOSS,
    steps: int = typer.Option(1500, "--steps", help="Training steps (one D and one G update each)."),
    fixed_g: bool = typer.Option(False, "--fixed-g", help="Train only D against a fixed random G: D converges to D*."),
    seed: int = TOY_SEED,
    frames: int = TOY_FRAMES,
    output: Optional[Path] = TOY_OUTPUT,
    json_path: Optional[Path] = TOY_JSON,
    scale: int = TOY_SCALE,
):
    """Goodfellow et al. 2014, Figure 1: p_data, p_g, D and the optimal D* on a line; V(D, G) against -log 4.

    Example: `gan toy 1d -o toy.gif`; `gan toy 1d --fixed-g --json -`
    """
    from gancli.use import toy
    check_seed(seed)
    toy.check_1d(data, loss, steps, seed, frames)
    output = _toy_outputs(output, json_path, scale, "toy-1d.gif")
    result = toy.train_1d(data, loss, steps, seed, frames, fixed_g)
    f = result.final
    rows = [("V(D, G)", f"{f['value']:.4f}"), ("|V - (-log 4)|", f"{f['value_gap']:.4f}"),
            ("V(D*, G) = -log 4 + 2 JSD", f"{f['optimal_d_value']:.4f}"), ("JSD(p_data, p_g)", f"{f['jsd']:.4f}"),
            ("max |D - D*| where the data is", f"{f['max_d_error']:.4f}")]
    _toy_finish(result, toy.frames_1d, output, json_path, rows, scale)


@command("2d", on=toy_app)
def toy_2d(
    data: str = typer.Option("ring", "--data", help="ring (8 Gaussians on a circle) or grid (5x5 Gaussians)."),
    loss: str = TOY_LOSS,
    steps: int = typer.Option(3000, "--steps", help="Training steps (one D and one G update each)."),
    pack: int = typer.Option(1, "--pack", help="PacGAN: D judges this many samples at once (2 is usual)."),
    unrolled: int = typer.Option(0, "--unrolled", help="Unrolled GAN: G's loss against D unrolled K steps (5)."),
    seed: int = TOY_SEED,
    frames: int = TOY_FRAMES,
    output: Optional[Path] = TOY_OUTPUT,
    json_path: Optional[Path] = TOY_JSON,
    scale: int = TOY_SCALE,
):
    """Mode collapse on the 8-Gaussian ring or the 5x5 grid, and its cures: modes covered, high-quality share.

    Example: `gan toy 2d -o ring.gif`; `gan toy 2d --unrolled 5 -o ring-unrolled.gif`
    """
    from gancli.use import toy
    check_seed(seed)
    toy.check_2d(data, loss, steps, seed, frames, pack, unrolled)
    output = _toy_outputs(output, json_path, scale, "toy-2d.gif")
    result = toy.train_2d(data, loss, steps, seed, frames, pack, unrolled)
    f = result.final
    rows = [("modes covered", f"{f['modes_covered']} of {f['num_modes']}"),
            (f"high-quality samples (within {toy.QUALITY_SIGMAS:g} std of a mode)", f"{100 * f['high_quality']:.1f}%"),
            ("samples per mode (high quality)", " ".join(map(str, f["per_mode"])))]
    _toy_finish(result, toy.frames_2d, output, json_path, rows, scale)


