"""What every `gan` command shares: the app, the two consoles, one-line errors, loading a model, checking outputs
and seeds, and the options declared once (--device, -v, --backend, --bf16)."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape  # messages are plain text: "gancli[tensorboard]" or a file "a[1].png" is no tag

from gancli.store import hub
from gancli.version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Sample, interpolate and train generative adversarial networks, with a pretrained zoo.\n\n"
                       "Example: `gan sample dcgan-mnist -n 64`")
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

# Bad input the user can fix: reported as one line, exit code 2. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, LookupError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError,
               hub.HubError)


def os_error_line(e: OSError) -> str:
    """An error of the machine in words: what failed, and where (standard output where no file is named)."""
    import errno

    words = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "over the disk quota",
             errno.EROFS: "a read-only file system", errno.EIO: "an input/output error of the device"}.get(
        e.errno, (e.strerror or str(e)).lower())
    return f"{e.filename}: {words}" if e.filename else f"writing standard output failed: {words}"


def say_notes(notes):
    """What reading the inputs changed (``gancli.data.reading.InputNotes``): a line a kind, on stderr."""
    for line in notes.lines():
        console.print(f"note: {line}", highlight=False, markup=False)


def fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn):
    """``fn`` with bad input (USER_ERRORS) turned into one red line and exit code 2."""

    @functools.wraps(fn)
    def run(*a, **k):
        try:
            return fn(*a, **k)
        except USER_ERRORS as e:
            fail(one_line(e))

    return run


def command(*args, on=None, **kwargs):
    """``app.command`` (or ``on.command``, a group's) that turns bad input into one line (``guarded``)."""

    def wrap(fn):
        return (on or app).command(*args, **kwargs)(guarded(fn))

    return wrap


def built_when_run(name: str, doc: str, build):
    """``gan NAME``, registered now and built when it runs (``build()`` returns the click command): its options come
    from the families, which import torch, so `gan --help` and `gan --version` stay light."""

    def run(ctx: typer.Context):
        code = build().main(list(ctx.args), prog_name=f"gan {name}", standalone_mode=False)  # usage errors: main()
        if isinstance(code, int) and code:
            raise typer.Exit(code)

    run.__doc__ = doc
    return app.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                       add_help_option=False)(guarded(run))


def command_from(name: str, run, params: list, doc: str | None):
    """A click command ``name`` that calls ``run`` with ``params`` (``inspect.Parameter``s with typer defaults)."""
    import inspect

    run.__signature__ = inspect.Signature(params)
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__doc__ = doc
    sub = typer.Typer(add_completion=False, rich_markup_mode="markdown",
                      context_settings={"help_option_names": ["-h", "--help"]})
    sub.command(name)(run)
    return typer.main.get_command(sub)


def model_command(name: str, operation: str = "generate", sweeps: bool = False):
    """A command that also takes the use-time options of ``operation`` that models declare (an ability's options:
    --truncation, --text, --stage for ``generate``), one --help panel per family, given to the function as keyword
    arguments (``built_when_run``). ``sweeps``: a number option takes several values, comma-separated, as text
    (``gan eval --truncation 1,0.7,0.5``; ``use_values`` reads them)."""

    def wrap(fn):
        return built_when_run(name, fn.__doc__, lambda: _with_use_options(name, operation, sweeps, fn))

    return wrap


def _with_use_options(name: str, operation: str, sweeps: bool, fn):
    import inspect
    import typing

    from gancli.families import catalog
    hints = typing.get_type_hints(fn)
    params = [p.replace(annotation=hints.get(p.name, p.annotation))
              for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
    for key, (o, families) in catalog.use_options(operation).items():
        several = sweeps and o.type in (int, float)
        option = typer.Option(o.default, o.spelling, show_default=False,
                              help=o.help + (" Several, comma-separated, to compare them." if several else ""),
                              rich_help_panel=f"{', '.join(sorted(families))} models")
        params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[str if several else o.type]))
    return command_from(name, guarded(fn), params, fn.__doc__)


def use_values(operation: str, given: dict) -> tuple[dict, dict]:
    """A ``sweeps`` command's use-time options as (one value each, several values of one option): numbers written
    "1,0.7,0.5" are read as numbers; an option given one value is not swept."""
    from gancli.families import catalog

    declared = catalog.use_options(operation)
    use, swept = {}, {}
    for key, value in given.items():
        if value is None:
            continue
        option = declared[key][0]
        if option.type not in (int, float):
            use[key] = value
            continue
        values = numbers(value, option.spelling)
        if option.type is int and not all(v.is_integer() for v in values):
            fail(f"{option.spelling} takes whole numbers, not {value!r}")
        values = [option.type(v) for v in values]
        (swept if len(values) > 1 else use)[key] = values if len(values) > 1 else values[0]
    return use, swept


def describe(device) -> str:
    from gancli.devices import describe as describe_device  # torch loads only for commands that need it

    return describe_device(device)


def one_line(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:  # "[Errno 2] No such file..." -> "No such file or directory: PATH"
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e)


def _version(value: bool):
    if value:
        out.print(f"gan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    pass


# options that several commands take, declared once
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")
VERBOSE = typer.Option(False, "-v", "--verbose", help="Say where the model came from and which device ran.")

# what runs the generator, for `gan sample` and `gan translate` (gancli.use.backends, GANModel.autocast)
BACKEND = typer.Option("torch", "--backend", help="torch, or onnxruntime (CPU; the graph of `gan export`, cached): "
                                                  "fp32 either way; see docs/speed.md.")
BF16 = typer.Option(False, "--bf16", help="bf16 (backend torch; on the CPU a bf16 copy of the generator): about 2x "
                                          "on CPUs with avx512_bf16 or AMX and faster on GPUs, but not fp32's pixels "
                                          "(several grey levels apart); see docs/speed.md.")


SCALE = typer.Option(None, "--scale", help="Enlarge the picture this many times, nearest-neighbour so every pixel "
                                           "stays true (default: enough for about 768 px, at most 4x).")


def check_scale(scale: int | None):
    if scale is not None and not 1 <= scale <= 64:
        fail(f"--scale must be a whole number from 1 to 64, not {scale}")


def check_backend(backend: str, bf16: bool) -> str:
    """--backend's name, normalised, and ONNX Runtime being installed when it is asked for, before the model loads."""
    from gancli.use import backends
    try:
        name = backends.check(backend)
    except ValueError as e:
        fail(str(e))
    if bf16 and name == "onnxruntime":
        fail("--bf16 is for --backend torch: the ONNX Runtime graph runs in fp32")
    return name


def use_backend(model, backend: str, bf16: bool, verbose: bool, direction: str | None = None):
    from gancli.use import backends

    chosen = backends.use(model, backend, direction)
    model.bf16 = bf16
    if verbose:
        console.print(f"[dim]backend {chosen}[/]")


def load_model(name: str, device: str, verbose: bool, sampling: bool = False):
    from gancli.devices import keep_freed_memory
    from gancli.use.model import load

    keep_freed_memory()  # a command that runs and ends: reusing freed tensors' memory is 1.4x on large activations
    model = load(name, device=device)
    if sampling and model.image_operation:
        fail(f"{name} {model.image_operation}s images rather than sampling them: use `gan {model.image_operation} {name} "
             "IMAGE`")
    if verbose:
        console.print(f"[dim]{name} -> {model.source}; device {describe(model.device)}[/]")
    return model


def command_line(ctx: typer.Context, exclude=()) -> str:
    """The running command, spelled out with every non-default option (so a model card can reproduce it)."""
    import shlex

    words = ["gan", ctx.info_name.removeprefix("gan ")]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in exclude or value is None or value == param.default:
            continue
        if param.param_type_name == "argument":
            values = value if isinstance(value, (list, tuple)) else [value]
            words[2:2] = [str(v) for v in values]
        elif getattr(param, "is_flag", False):
            words.append(param.opts[0] if value or not param.secondary_opts else param.secondary_opts[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def check_seed(seed: int, option: str = "--seed"):
    from gancli.options import seed_problem

    if seed_problem(seed):
        fail(f"{option} {seed} {seed_problem(seed)}")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def check_output(path: Path, option: str, example: str):
    """Say now, not after the work, that an output file cannot be written there. Missing folders on its path are
    made when it is written, as for every output."""
    if path.name in ("", ".", ".."):  # -o '' arrives as Path('.')
        fail(f"{option} needs a file name, e.g. {option} {example}")
    if path.is_dir():
        fail(f"{option} {path} is a folder: give a file name, e.g. {option} {path / example}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            fail(f"cannot write {path}: {parent} is a file, not a folder")


def write_text(path: Path, text: str, what: str = "", report=None):
    """A --json / --csv output: the file (through the one output writer), or standard output for ``-``, where
    nothing else is printed so that it can be piped."""
    from gancli.data.imageio import atomic_write, make_parent

    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    make_parent(path)
    atomic_write(path, lambda f: f.write(text.encode()))
    (report or out).print(f"wrote {path}{what}", highlight=False)


def to_stdout(*paths: Optional[Path]) -> bool:
    """Whether an output goes to standard output (``-``, /dev/stdout): then what the command says goes to stderr."""
    return any(p is not None and str(p) in ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1") for p in paths)


def numbers(text: str, option: str) -> list[float]:
    """``"1.0,0.7,0.5"`` -> [1.0, 0.7, 0.5]; anything else is a one-line error."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        fail(f"{option} takes numbers separated by commas, e.g. 1.0,0.7,0.5, not {text!r}")
    return values


