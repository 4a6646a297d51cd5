"""`gan classify`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from gancli.cli.common import (
    DEVICE,
    VERBOSE,
    check_output,
    command,
    console,
    fail,
    load_model,
    out,
    say_notes,
    to_stdout,
    write_text,
)


@command()
def classify(
    name: str = typer.Argument(..., help="A model whose discriminator classifies: zoo name or folder."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write file, class, probability per image."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write every class's probability as JSON."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    device: str = DEVICE,
    verbose: bool = VERBOSE,
):
    """Name the class of images with a semi-supervised GAN's discriminator, with its probability.

    Example: `gan classify ssgan-mnist digit.png digits/ --csv classes.csv`
    """
    import csv
    import io
    import json

    from gancli.data.reading import InputNotes
    from gancli.use.classify import classify_files

    if batch_size < 1:
        fail("--batch-size must be at least 1")
    for path, option, example in ((csv_path, "--csv", "classes.csv"), (json_path, "--json", "classes.json")):
        if path is not None and str(path) != "-":
            check_output(path, option, example)
    if to_stdout(csv_path) and to_stdout(json_path):
        fail("--csv - and --json - would both write to standard output: send one of them to a file")
    model = load_model(name, device, verbose)
    notes = InputNotes()
    predictions, skipped = classify_files(model, inputs, batch_size, notes)
    say_notes(notes)
    for path, why in skipped:
        console.print(f"[yellow]skipped[/] {path}: {why}", highlight=False)
    if not predictions:
        fail(f"nothing classified: {len(skipped)} unreadable input(s)")
    table = Table(title=f"{name}: {len(predictions)} image(s)")
    for col in ("file", "class", "probability"):
        table.add_column(col, justify="right" if col == "probability" else "left")
    for p in predictions[:50]:
        table.add_row(str(p.path), p.label, f"{p.probability:.3f}")
    report = console if to_stdout(csv_path, json_path) else out if out.is_terminal else \
        Console(width=140, soft_wrap=True)
    report.print(table)
    if len(predictions) > 50:
        report.print(f"... and {len(predictions) - 50} more (all of them with --csv or --json)")
    if csv_path is not None:
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["file", "class", "probability"])
        writer.writerows([str(p.path), p.label, p.probability] for p in predictions)
        write_text(csv_path, rows.getvalue(), report=report)
    if json_path is not None:
        classes = model.classifier_classes
        write_text(json_path, json.dumps([{"file": str(p.path), "class": p.label, "probability": p.probability,
                                            "probabilities": dict(zip(classes, p.probabilities))}
                                           for p in predictions], indent=2) + "\n", report=report)


