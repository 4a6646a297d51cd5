"""`gan push`."""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from gancli.cli.common import command, fail, out
from gancli.store import hub


@command()
def push(
    path: str = typer.Argument(..., help="A training run, a model folder, or a zoo name."),
    repo: str = typer.Option(..., "--repo", help="owner/name of the Hub model repository (created if needed)."),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Upload to this branch (created if needed)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be uploaded; upload nothing."),
    token: Optional[str] = typer.Option(None, "--token", help="Hub token (default: HF_TOKEN or the saved login)."),
):
    """Publish a model folder (config.json, model card, safetensors) to the Hugging Face Hub.

    Example: `gan push runs/mnist --repo alice/dcgan-mnist --dry-run`
    """
    from gancli.store import push as pushing
    p = pushing.plan(path, repo, revision, private)
    if not dry_run and hub.offline():
        fail("HF_HUB_OFFLINE is set: cannot push (unset it, or use --dry-run to see what would go)")
    target = f"{p.repo_id}" + (f"@{p.revision}" if p.revision else "") + (" (private)" if p.private else "")
    table = Table(title=f"{'would upload' if dry_run else 'uploading'} {p.folder} -> {target}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for name_, size in p.files:
        table.add_row(name_, f"{size:,}")
    out.print(table)
    if dry_run:
        out.print(f"dry run: {len(p.files)} files, {sum(s for _, s in p.files):,} bytes; nothing was uploaded")
        return
    url = pushing.upload(p, token)
    out.print(f"pushed {len(p.files)} files to {target}: {url}")


