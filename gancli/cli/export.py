"""`gan export`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import check_output, command, fail, load_model, out


@command()
def export(
    name: str = typer.Argument(..., help="Zoo name, local model folder or training run, or owner/repo[@revision]."),
    output: Path = typer.Option(..., "-o", "--output", help="The file: .onnx or .pt (a translator writes one per "
                                                            "direction: OUT.a2b.onnx and OUT.b2a.onnx)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="onnx (needs onnx and onnxruntime) or torchscript "
                                                             "(default: from -o's extension)."),
    direction: Optional[str] = typer.Option(None, "--direction", help="Translation models: only this direction "
                                                                      "(a2b, b2a or a domain), written to -o "
                                                                      "itself."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Say where the model came from."),
):
    """Export a model's generator to ONNX or TorchScript (fp32, dynamic batch; dynamic height and width for
    translation and super-resolution models), with its configuration in the file's metadata. See docs/export.md.

    Example: `gan export dcgan-mnist -o dcgan-mnist.onnx`; `gan export cyclegan-horse2zebra --format torchscript
    -o h2z.pt` (-> h2z.a2b.pt, h2z.b2a.pt)
    """
    from gancli.data.imageio import is_stream
    from gancli.use import export as ex

    check_output(output, "-o", "model.onnx")
    if is_stream(output):  # the one output rule lets a stream stand for a file; an export is read back to check it
        fail(f"-o {output}: gan export loads the file it writes back to check it: give a file name, e.g. model.onnx")
    fmt = ex.check_format(fmt, output)
    ex.check_writable(output)
    ex.check_installed(fmt)
    model = load_model(name, "cpu", verbose)
    for w in ex.export(model, fmt, output, direction):
        what = f"{w.suffix}, " if w.suffix else ""
        out.print(f"wrote {w.path} ({what}{fmt}, {w.bytes / 1e6:.1f} MB, {w.seconds:.1f} s; max |difference| from "
                  f"PyTorch {w.max_diff:.1e})", highlight=False)


