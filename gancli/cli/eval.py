"""`gan eval`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli.cli.common import (
    DEVICE,
    check_output,
    check_seed,
    command_line,
    console,
    fail,
    model_command,
    out,
    to_stdout,
    use_values,
    write_text,
)
from gancli.cli.progress import progress_bar


@model_command("eval", sweeps=True)
def eval_model(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Zoo name, local model folder or training run, or owner/repo[@revision]."),
    real: Optional[str] = typer.Option(None, "--real", help="Real data: mnist, fashion, stacked-mnist, horse2zebra, "
                                                            "or a folder (default: the model's training set)."),
    n: Optional[int] = typer.Option(None, "-n", "--num", help="Samples to draw (default 10000; Stacked-MNIST: at least "
                                                              "25,000 is usual). Translators and upscalers are "
                                                              "measured on every held-out photo."),
    seed: int = typer.Option(0, "--seed", help="Samples are a function of (seed, i): same seed, same numbers."),
    features: Optional[str] = typer.Option(None, "--features", help="Classifier that embeds and judges images "
                                                                    "(default: the zoo one for the data)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights",
                                                     help="The standard FID Inception file "
                                                          "(pt_inception-2015-12-05-*.pth): adds the usual FID."),
    direction: str = typer.Option("a2b", "--direction", help="Translation models: a2b, b2a or the target domain."),
    size: Optional[int] = typer.Option(None, "--size", help="Translation models: resize inputs to this first."),
    novelty: bool = typer.Option(False, "--novelty", help="Also: class entropy of the samples and their distance to "
                                                          "the nearest training image, beside real test images'."),
    novelty_grid: Optional[Path] = typer.Option(None, "--novelty-grid", help="With --novelty: write 8 samples above "
                                                                             "their nearest training images here."),
    parzen: bool = typer.Option(False, "--parzen", help="Also: Goodfellow et al. 2014's Parzen-window log-likelihood "
                                                        "of the test images (28x28 grey data sets: mnist, fashion)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results here as JSON."),
    device: str = DEVICE,
    no_cache: bool = typer.Option(False, "--no-cache", help="Embed the real images again, neither reading nor "
                                                            "writing the cache of their features (docs/eval.md)."),
    **use,
):
    """Measure a model offline: FID, KID, precision/recall, class or mode coverage, label accuracy, translation scores,
    PSNR/SSIM/sharpness for super-resolution.

    Example: `gan eval dcgan-mnist --real mnist -n 10000 --json dcgan.json`;
    `gan eval cyclegan-horse2zebra --real horse2zebra`; `gan eval stylegan-fashion --truncation 1,0.7,0.5`
    """
    import json
    import time

    from gancli.evaluation.evaluate import EvalRequest, evaluate, report

    started = time.monotonic()  # `seconds` is the whole evaluation's
    shown = console if to_stdout(json_path) else out  # --json -: stdout holds the JSON alone
    check_settings(n, batch_size, inception_weights, json_path, seed, novelty_grid)
    use, swept = use_values("generate", use)
    request = EvalRequest(name, real, n, seed, features, use, swept, direction, size, batch_size, device,
                          inception_weights, novelty, novelty_grid, parzen, cache=not no_cache)
    with progress_bar() as progress:
        tasks = {}

        def advance(what, done, total):
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        result = evaluate(request, progress=advance, started=started)
    result["command"] = command_line(ctx, exclude={"json_path", "device", "no_cache"})  # same numbers either way
    for part in report(result):
        shown.print(part if isinstance(part, str) else rich_table(part))
    for note in result.get("notes", []):
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if json_path is not None:
        write_text(json_path, json.dumps(result, indent=2) + "\n", report=shown)
    if novelty_grid is not None:
        shown.print(f"wrote {novelty_grid} (samples in the top row, each above its nearest training image)")


def check_settings(n, batch_size, inception_weights, json_path, seed, novelty_grid):
    """What can be refused before the model loads, in one line each."""
    if n is not None and (n < 4 or n > 1_000_000):  # precision and recall read each sample's 3rd nearest other
        fail("-n must be between 4 and 1000000")
    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if inception_weights is not None and not inception_weights.is_file():
        fail(f"--inception-weights {inception_weights} is not a file")
    if json_path is not None and str(json_path) != "-":  # say so before minutes of work
        check_output(json_path, "--json", "results.json")
    check_seed(seed)
    if novelty_grid is not None:
        from gancli.data.imageio import format_of

        format_of(novelty_grid)
        check_output(novelty_grid, "--novelty-grid", "novelty.png")


def rich_table(table) -> Table:
    shown = Table(title=table.title)
    for i, column in enumerate(table.columns):
        shown.add_column(column, justify="right" if i in table.right else "left")
    for row in table.rows:
        shown.add_row(*row)
    return shown
