"""The `gan` command: parse, call the library, print; one module per command. Errors from bad input are one line
and exit status 2."""
from __future__ import annotations

import sys

from rich.markup import escape

# each module registers its command; `gan --help` lists them in this order
from gancli.cli import (  # noqa: F401, I001  # noqa: F401, I001
    classify,
    convert,
    demo,
    eval,
    export,
    interpolate,
    mix,
    models,
    push,
    sample,
    toy,
    train,
    translate,
    upscale,
)
from gancli.cli.common import USER_ERRORS, app, console, one_line, os_error_line

__all__ = ["app", "main"]


def _close_options(given: str, known) -> list[str]:
    import difflib

    names = {k.lstrip("-"): k for k in known}
    return [names[m] for m in difflib.get_close_matches(given.lstrip("-"), list(names), n=3, cutoff=0.6)]


def _drop_stdout():
    """Standard output failed (a full disk): what is still buffered for it goes nowhere, or Python's exit would
    try to write it again and print a traceback of its own."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main():
    try:  # typer >= 0.20 carries its own click
        from typer._click import ClickException
    except ImportError:
        from click import ClickException

    try:
        code = app(standalone_mode=False)
    except ClickException as e:  # usage errors (a missing argument, an unknown option): one line as well
        if getattr(e, "possibilities", None):  # click compares "--bogus" with "--verbose" dashes and all: a match
            e.possibilities = _close_options(e.option_name, e.possibilities)
        message = e.format_message().strip()  # empty for a bare `gan`, whose help was just shown
        if message:
            console.print(f"[bold red]error:[/] {escape(message.splitlines()[0])}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except USER_ERRORS as e:
        console.print(f"[bold red]error:[/] {escape(one_line(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as e:  # the machine, not a bug: a full disk, a read-only folder, standard output on /dev/full
        if e.filename is None:
            _drop_stdout()
        console.print(f"[bold red]error:[/] {escape(os_error_line(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
