"""`gan convert`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import command, command_line, out


@command()
def convert(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="Published .pth generator checkpoint(s)."),
    arch: str = typer.Option(..., "--arch", help="The family the weights are from (those with a converter: "
                                                 "see docs/cli.md)."),
    output: Path = typer.Option(..., "-o", "--output", help="Model folder to write (zoo layout)."),
    direction: Optional[str] = typer.Option(None, "--direction", help="Translators: what each file translates, "
                                                                      "e.g. a2b or a2b,b2a (default: a2b[,b2a])."),
    domains: Optional[str] = typer.Option(None, "--domains", help="Translators: names of domains A and B, e.g. "
                                                                  "horse,zebra (default: A,B)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name in config.json."),
    fp16: bool = typer.Option(False, "--fp16", help="Store float16 weights (half the size)."),
):
    """Import published generator weights into a model folder (safetensors + config.json + card); never unpickles.

    Example: `gan convert latest_net_G_A.pth latest_net_G_B.pth --arch cyclegan --domains horse,zebra -o h2z/`
    """
    import torch

    from gancli.use import convert as conv
    model = conv.convert(files, arch, name, domains=domains, direction=direction)
    model.save_pretrained(output, card=conv.card(model, command_line(ctx)), dtype=torch.float16 if fp16 else None,
                          max_shard_bytes=15 * 2**20)
    out.print(f"wrote {model.architecture} model to {output} ({model.num_parameters():,} generator parameters)")


