"""`gan models`."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from gancli.cli.common import command, out
from gancli.store import hub


@command("list")
def list_models():
    """List the zoo: architecture, task, resolution, parameters, dataset and where the weights are.

    Example: `gan list`
    """
    from gancli.use.model import GANModel

    table = Table(title="gan zoo")
    for col in ("name", "architecture", "task", "resolution", "parameters", "dataset", "weights"):
        table.add_column(col)
    for name in hub.zoo_names():
        cfg = hub.read_config(hub.zoo_dir() / name)
        if cfg.get("task") == "classifier":  # the judges of `gan eval`
            from gancli.quality.judges import Classifier

            net = Classifier(**cfg["arch_args"])
        else:
            net = GANModel.build(cfg)["generator"]
        params = sum(p.numel() for p in net.parameters())
        table.add_row(name, cfg["architecture"], cfg.get("task", "unconditional"),
                      f"{cfg['image_size']}x{cfg['image_size']}x{cfg['channels']}", f"{params / 1e6:.2f}M",
                      str(cfg.get("dataset", "")), hub.weights_location(name))
    # piped or captured output has no width: keep whole names rather than squeezing into 80 columns
    (out if out.is_terminal else Console(width=140, soft_wrap=True)).print(table)


@command()
def info(name: str = typer.Argument(..., help="Zoo name, local model folder or owner/repo[@revision].")):
    """Show a model's card and config.

    Example: `gan info dcgan-mnist`
    """
    import json

    from rich.markdown import Markdown

    resolved = hub.resolve(name)
    config = hub.read_config(resolved.path)
    card = resolved.path / hub.CARD_NAME
    text = card.read_text() if card.is_file() else ""
    if not out.is_terminal:  # a pipe or a file: the card as written, every line whole (rich would cut at 80)
        for part in (text.rstrip("\n"), "--- config.json", json.dumps(config, indent=2),
                     f"source: {resolved.source} ({resolved.path})"):
            if part:
                out.print(part, markup=False, highlight=False, emoji=False, soft_wrap=True)
        return
    if text.startswith("---"):  # YAML front matter: show it as it is, then the body as markdown
        _, front, text = text.split("---", 2)
        out.print(f"[dim]{front.strip()}[/]")
    out.print(Markdown(text), soft_wrap=False)  # wrapped to the terminal: soft wrap would crop code blocks and lists
    out.rule("config.json")
    out.print_json(json.dumps(config))
    out.print(f"[dim]source: {resolved.source} ({resolved.path})[/]")


