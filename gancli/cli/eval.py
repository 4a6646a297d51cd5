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
    command,
    command_line,
    console,
    fail,
    numbers,
    out,
    to_stdout,
    write_text,
)
from gancli.cli.progress import progress_bar
from gancli.quality import measures


@command("eval")
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
    truncation: Optional[str] = typer.Option(None, "--truncation", help="Models with a style space: psi, or several "
                                                                         "(1.0,0.7,0.5) to measure the trade-off."),
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
):
    """Measure a model offline: FID, KID, precision/recall, class or mode coverage, label accuracy, translation scores,
    PSNR/SSIM/sharpness for super-resolution.

    Example: `gan eval dcgan-mnist --real mnist -n 10000 --json dcgan.json`;
    `gan eval cyclegan-horse2zebra --real horse2zebra`
    """
    import json
    import time

    started = time.monotonic()  # `seconds` is the whole evaluation's
    report = console if to_stdout(json_path) else out  # --json -: stdout holds the JSON alone
    from gancli.evaluation.evaluate import evaluate

    if n is not None and (n < 4 or n > 1_000_000):  # precision and recall measure each sample's distance to its 3rd nearest other sample
        fail("-n must be between 4 and 1000000")
    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if inception_weights is not None and not inception_weights.is_file():
        fail(f"--inception-weights {inception_weights} is not a file")
    if json_path is not None and str(json_path) != "-":  # say so before minutes of work
        check_output(json_path, "--json", "results.json")
    check_seed(seed)
    psis = numbers(truncation, "--truncation") if truncation is not None else None
    if novelty_grid is not None:
        from gancli.data.imageio import format_of

        format_of(novelty_grid)
        check_output(novelty_grid, "--novelty-grid", "novelty.png")
    with progress_bar() as progress:
        tasks = {}

        def advance(what, done, total):
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        result = evaluate(name, real, n, seed, features, direction, size, batch_size, device, advance,
                          inception_weights=inception_weights, truncation=psis, with_novelty=novelty,
                          novelty_grid=novelty_grid, with_parzen=parzen, cache=not no_cache, started=started)
    result["command"] = command_line(ctx, exclude={"json_path", "device", "no_cache"})  # same numbers either way
    table = Table(title=f"{name} vs {result['real']}" + (f"  (features: {result['feature_extractor']})"
                                                         if result["feature_extractor"] else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, shown in measures.table_rows(result):
        table.add_row(key, shown)
    report.print(table)
    if "parzen_log_likelihood" in result:
        report.print(f"Parzen-window log-likelihood of {result['parzen_test_images']:,} test images: "
                  f"{result['parzen_log_likelihood']:.2f} ± {result['parzen_standard_error']:.2f} nats (sigma "
                  f"{result['parzen_sigma']:.4g}, chosen on the last {result['parzen_validation_images']:,} training "
                  f"images; {result['parzen_samples']:,} samples); {result['parzen_real_images']:,} real training "
                  f"images in the samples' place: {result['parzen_real_log_likelihood']:.2f}")
    if "by_truncation" in result:
        sweep = Table(title="truncation trade-off (lower psi: samples nearer the average w)")
        keys = [k for k in measures.TRUNCATION_COLUMNS if k in result["by_truncation"][0]]
        for k in keys:
            sweep.add_column("psi" if k == "truncation" else k, justify="right")
        for row in result["by_truncation"]:
            sweep.add_row(*(measures.cell(row[k]) for k in keys))
        report.print(sweep)
    if "text_accuracy_per_class" in result:
        report.print(_text_table(result))
    for note in result.get("notes", []):
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if json_path is not None:
        write_text(json_path, json.dumps(result, indent=2) + "\n", report=report)
    if novelty_grid is not None:
        report.print(f"wrote {novelty_grid} (samples in the top row, each above its nearest training image)")


def _text_table(result: dict) -> Table:
    """A text model's per-class readings: its training phrasing and its unseen phrasings, stage II; stage I."""
    table = Table(title=f"captions judged as their class ({result['text_samples_per_class']} samples per class "
                        f"and prompt set; the judge reads {result['feature_extractor_test_accuracy']:.1%} of real "
                        "test images right)")
    for column in ("class", "training phrasing", "stage II", "unseen phrasings", "stage II ", "stage I"):
        table.add_column(column, justify="right" if column.startswith("stage") else "left")
    for c, acc in result["text_accuracy_per_class"].items():
        table.add_row(c, result["text_prompts"][c][0], f"{acc:.1%}", " / ".join(result["text_prompts_unseen"][c]),
                      f"{result['text_accuracy_unseen_per_class'][c]:.1%}",
                      f"{result['text_accuracy_stage1_per_class'][c]:.1%}")
    return table


