"""The `gan` command: parse, call the library, print. Errors from bad input are one line and a non-zero exit."""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape  # messages are plain text: "gancli[tensorboard]" or a file "a[1].png" is no tag
from rich.table import Table

from gancli import hub
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


def fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def command(*args, on=None, **kwargs):
    """``app.command`` (or ``on.command``, a group's) that turns bad input (USER_ERRORS) into one red line and exit
    code 2."""

    def wrap(fn):
        @functools.wraps(fn)
        def guarded(*a, **k):
            try:
                return fn(*a, **k)
            except USER_ERRORS as e:
                fail(_one_line(e))

        return (on or app).command(*args, **kwargs)(guarded)

    return wrap


def describe(device) -> str:
    from gancli.devices import describe as describe_device  # torch loads only for commands that need it

    return describe_device(device)


def _one_line(e: Exception) -> str:
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


# what runs the generator, for `gan sample` and `gan translate` (gancli.backends, GANModel.autocast)
BACKEND = typer.Option("torch", "--backend", help="torch, or onnxruntime (CPU; the graph of `gan export`, cached): "
                                                  "fp32 either way; see docs/speed.md.")
BF16 = typer.Option(False, "--bf16", help="bf16 (backend torch; on the CPU a bf16 copy of the generator): about 2x "
                                          "on CPUs with avx512_bf16 or AMX and faster on GPUs, but not fp32's pixels "
                                          "(several grey levels apart); see docs/speed.md.")


def _check_backend(backend: str, bf16: bool) -> str:
    """--backend's name, normalised, and ONNX Runtime being installed when it is asked for, before the model loads."""
    from gancli import backends

    try:
        name = backends.check(backend)
    except ValueError as e:
        fail(str(e))
    if bf16 and name == "onnxruntime":
        fail("--bf16 is for --backend torch: the ONNX Runtime graph runs in fp32")
    return name


def _use_backend(model, backend: str, bf16: bool, verbose: bool, direction: str | None = None):
    chosen = model.use_backend(backend, direction)
    model.bf16 = bf16
    if verbose:
        console.print(f"[dim]backend {chosen}[/]")


def _load(name: str, device: str, verbose: bool, sampling: bool = False):
    from gancli.pretrained import load

    model = load(name, device=device)
    if sampling and model.image_command:
        fail(f"{name} {model.image_command}s images rather than sampling them: use `gan {model.image_command} {name} "
             "IMAGE`")
    if verbose:
        console.print(f"[dim]{name} -> {model.source}; device {describe(model.device)}[/]")
    return model


def _command_line(ctx: typer.Context, exclude=()) -> str:
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


def _progress(*columns, transient: bool = True, disable: bool = False):
    """A live bar on a terminal; in a pipe or a log file, whole lines now and then (see PlainProgress)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not console.is_interactive:
        return PlainProgress(console, quiet_s=5.0 if transient else 0.0, disable=disable)
    columns = columns or (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, transient=transient, disable=disable)


class PlainProgress:
    """Progress for pipes and log files: a whole line each tenth of the way or each minute, and at the end. Rich's
    bar there is squeezed to 80 columns and printed once, cut (`200/... 0:03... 0:0...`). A transient task (a bar
    that would vanish) prints nothing in its first ``quiet_s`` seconds, so quick commands stay quiet."""

    def __init__(self, console: Console, every_s: float = 60.0, quiet_s: float = 0.0, disable: bool = False):
        self.console, self.every_s, self.quiet_s, self.disable = console, every_s, quiet_s, disable
        self.tasks: list[dict] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        now = time.monotonic()
        self.tasks.append({"description": description, "total": total, "completed": completed, "fields": fields,
                           "start": now, "start_completed": completed, "printed_at": now, "printed": None,
                           "tenth": self._tenth(completed, total)})
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1):
        self.update(task, advance=advance)

    def update(self, task: int, completed: float | None = None, total: float | None = None,
               advance: float | None = None, **fields):
        t = self.tasks[task]
        t["total"] = total if total is not None else t["total"]
        t["completed"] = completed if completed is not None else t["completed"] + (advance or 0)
        t["fields"].update(fields)
        now, tenth = time.monotonic(), self._tenth(t["completed"], t["total"])
        due = tenth > t["tenth"] or now - t["printed_at"] >= self.every_s \
            or (t["total"] is not None and t["completed"] >= t["total"])
        if due and now - t["start"] >= self.quiet_s:
            self._print(t, now)
        t["tenth"] = tenth

    def stop(self):
        """The last state of any task whose last line is not out yet (an interrupted run says where it stopped)."""
        now = time.monotonic()
        for t in self.tasks:
            if t["printed"] is not None and t["printed"] != t["completed"] and now - t["start"] >= self.quiet_s:
                self._print(t, now)

    @staticmethod
    def _tenth(done: float, total: float | None) -> int:
        return int(10 * done / total) if total else 0

    def _print(self, t: dict, now: float):
        t["printed_at"], t["printed"] = now, t["completed"]
        if self.disable:
            return
        done, total, elapsed = t["completed"], t["total"], now - t["start"]
        line = f"{t['description']} {done:,.0f}" + (f"/{total:,.0f} ({100 * done / total:.0f}%)" if total else "")
        line += f"  {_clock(elapsed)} elapsed"
        rate = (done - t["start_completed"]) / elapsed if elapsed > 0 else 0
        if total and rate > 0 and done < total:
            line += f", {_clock((total - done) / rate)} left"
        if t["fields"].get("stats"):
            line += f"  {t['fields']['stats']}"
        self.console.print(line, highlight=False, soft_wrap=True)


def _eval_brief(ev: dict) -> str:
    """The progress line's last --eval-every result: FID and coverage, or a translator's judged shares and SSIM."""
    if ev.get("fid") is not None:
        return (f"  FID {ev['fid']:.2f}" + (f" cov {ev['classes_covered']}/{ev['num_classes']}"
                                            if ev.get("classes_covered") is not None else "")
                + (f" modes {ev['modes_covered']}" if ev.get("modes_covered") is not None else ""))
    return "".join(f"  {d} " + (f"judged {ev[f'target_domain_rate_{d}']:.0%} " if f"target_domain_rate_{d}" in ev
                                else "") + f"SSIM {ev[f'structure_{d}']:.2f}"
                   for d in ("a2b", "b2a") if f"structure_{d}" in ev)


def _check_seed(seed: int, option: str = "--seed"):
    from gancli.options import seed_problem

    if seed_problem(seed):
        fail(f"{option} {seed} {seed_problem(seed)}")


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _check_output(path: Path, option: str, example: str):
    """Say now, not after the work, that an output file cannot be written there. Missing folders on its path are
    made when it is written, as for every output."""
    if path.name in ("", ".", ".."):  # -o '' arrives as Path('.')
        fail(f"{option} needs a file name, e.g. {option} {example}")
    if path.is_dir():
        fail(f"{option} {path} is a folder: give a file name, e.g. {option} {path / example}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            fail(f"cannot write {path}: {parent} is a file, not a folder")


def _write_text(path: Path, text: str, what: str = "", report=None):
    """A --json / --csv output: the file (through the one output writer), or standard output for ``-``, where
    nothing else is printed so that it can be piped."""
    from gancli.imageio import atomic_write, make_parent

    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    make_parent(path)
    atomic_write(path, lambda f: f.write(text.encode()))
    (report or out).print(f"wrote {path}{what}", highlight=False)


def _to_stdout(*paths: Optional[Path]) -> bool:
    """Whether an output goes to standard output (``-``, /dev/stdout): then what the command says goes to stderr."""
    return any(p is not None and str(p) in ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1") for p in paths)


# ----------------------------------------------------------------------------------------------- sample
@command()
def sample(
    name: str = typer.Argument(..., help="Zoo name, local model folder or training run, or owner/repo[@revision]."),
    n: int = typer.Option(64, "-n", "--num", help="Number of images (ignored with --seeds)."),
    seed: int = typer.Option(0, "--seed", help="Image i of the request is a pure function of (seed, i)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="One image per seed, e.g. 0-7,42."),
    label: Optional[str] = typer.Option(None, "--label", help="Conditional models: the class, by name or index."),
    text: Optional[str] = typer.Option(None, "--text", help="Text-to-image models (StackGAN): the caption, e.g. "
                                                            "'an ankle boot'; its words must be in the model's "
                                                            "vocabulary."),
    stage: Optional[int] = typer.Option(None, "--stage", help="StackGAN models: 1 for stage I's coarse image "
                                                              "(upscaled), 2 (default) for the final one."),
    per_class: Optional[int] = typer.Option(None, "--per-class",
                                            help="Conditional models: K images of every class, one folder per "
                                                 "class in OUTDIR."),
    output: Path = typer.Option(Path("samples.png"), "-o", "--output", help="Grid file (.png, .jpg, .webp)."),
    outdir: Optional[Path] = typer.Option(None, "--outdir", help="Write one file per image here instead of a grid."),
    nrow: Optional[int] = typer.Option(None, "--nrow", help="Images per grid row (default: square, or one column "
                                                             "per class)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="StyleGAN models: psi, pulling each style "
                                                                           "towards the average (1: none; 0.7 is "
                                                                           "usual; 0: the average image)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="png, jpg or webp (default: from -o, or png)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    backend: str = BACKEND,
    bf16: bool = BF16,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Say where the model came from and which device ran."),
):
    """Draw images from a model: one grid, or one file per image with --outdir.

    Example: `gan sample dcgan-mnist -n 64 --seed 1 -o digits.png`; `gan sample cgan-mnist --label 7 -n 64`;
    `gan sample cgan-mnist --per-class 100 --outdir aug/`; `gan sample stackgan-fashion --text "an ankle boot"`
    """
    import torch

    from gancli.imageio import format_of, grid_image, save_image, to_pil

    from gancli import latents

    _check_seed(seed)
    seed_list = latents.parse_seeds(seeds) if seeds is not None else None
    if per_class is not None:
        if outdir is None:
            fail("--per-class writes a folder per class: give --outdir")
        if label is not None or seed_list:
            fail("--per-class draws every class: drop --label / --seeds")
        if per_class < 1:
            fail("--per-class must be at least 1")
    count = len(seed_list) if seed_list else n
    if count < 1 or count > 1_000_000:
        fail("-n must be between 1 and 1000000")
    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if nrow is not None and nrow < 1:
        fail("--nrow must be at least 1")
    if fmt is not None and fmt.lower() not in ("png", "jpg", "jpeg", "webp"):
        fail(f"unsupported --format {fmt!r}: use png, jpg or webp")
    if fmt and outdir is None and output.suffix and format_of(output).replace("jpeg", "jpg") != fmt.lower().replace("jpeg", "jpg"):
        fail(f"--format {fmt} does not match the extension of {output.name}")
    fmt = fmt.lower() if fmt else (format_of(output) if outdir is None else "png")
    if outdir is None and count > 10_000:
        fail(f"{count} images is too many for one grid: use --outdir to write one file per image")
    if outdir is None:
        _check_output(output, "-o", "samples.png")
    backend = _check_backend(backend, bf16)
    plain = truncation is None and stage is None  # what the exported graph draws
    if not plain and backend == "onnxruntime":
        fail("--backend onnxruntime runs the exported graph, which has no --truncation or --stage: drop them or use "
             "--backend torch")
    model = _load(name, device, verbose, sampling=True)
    if per_class is not None and not model.is_conditional:
        fail(f"{name} is not a conditional model: --per-class needs one (e.g. cgan-mnist)")
    model.require_text(text)
    _use_backend(model, backend if plain else "torch", bf16, verbose)

    if per_class is not None:
        classes = model.config["arch_args"]["num_classes"]
        names = model.class_names or [str(c) for c in range(classes)]
        count = per_class * classes
        # distinct latents for every file: (seed, c * K + i)
        z = model.latents_for(count, seed)
        labels = torch.arange(classes).repeat_interleave(per_class)
        paths = [outdir / _safe_name(names[c]) / f"seed{seed}-{i:06d}.{fmt}"
                 for c in range(classes) for i in range(per_class)]
    else:
        z = model.latents_for(seeds=seed_list) if seed_list else model.latents_for(count, seed)
        labels = model.labels_for(count, label, text)
        ids = seed_list if seed_list else list(range(count))
        paths = [outdir / (f"seed{i:04d}.{fmt}" if seed_list else f"seed{seed}-{i:06d}.{fmt}") for i in ids] \
            if outdir is not None else None

    images, done = [], 0
    with _progress() as progress:
        task = progress.add_task("sampling", total=count)
        for batch in model.generate(z, labels, batch_size, truncation, stage):
            if paths is not None:
                for k, img in enumerate(to_pil(batch)):
                    save_image(img, paths[done + k], fmt)
            else:
                images.append(batch)
            done += len(batch)
            progress.advance(task, len(batch))
    what = f"{model.architecture}" + (f", truncation {truncation:g}" if truncation is not None else "") \
        + f", {describe(model.device)}" + f", {model.backend}" + (", bf16" if bf16 else "")
    if label is not None:
        what = f"class {model.class_names[model.class_index(label)] if model.class_names else label}, " + what
    if text is not None:
        what = f"{text!r}" + (f", stage {stage}" if stage else "") + ", " + what
    if paths is not None:
        tree = f" in {count // per_class} class folders" if per_class else ""
        out.print(f"wrote {_plural(count, 'image')} to {outdir}/{tree}  ({what})")
    else:
        if nrow is None and model.is_conditional and label is None:
            nrow = model.config["arch_args"]["num_classes"]  # one column per class
        save_image(grid_image(torch.cat(images), nrow), output, fmt)
        (console if _to_stdout(output) else out).print(  # -o -: stdout holds the picture alone
            f"wrote {'a grid of ' + _plural(count, 'image') if count > 1 else '1 image'} to {output}  ({what})")


def _numbers(text: str, option: str) -> list[float]:
    """``"1.0,0.7,0.5"`` -> [1.0, 0.7, 0.5]; anything else is a one-line error."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        fail(f"{option} takes numbers separated by commas, e.g. 1.0,0.7,0.5, not {text!r}")
    return values


def _safe_name(name: str) -> str:
    """A class name as a folder name: "T-shirt/top" -> "T-shirt-top"."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_. " else "-" for ch in name).strip(" .")
    return cleaned or "class"


# ----------------------------------------------------------------------------------------------- interpolate
MAX_WALK_BYTES = 2**30  # every frame is held in memory at its final size; more is an OOM kill, not an animation


@command()
def interpolate(
    name: str = typer.Argument(..., help="Zoo name, local model folder or owner/repo[@revision]."),
    images: Optional[list[Path]] = typer.Argument(None, help="With --between: the real images to walk between."),
    seeds: str = typer.Option("0-3", "--seeds", help="Key frames: one latent per seed, visited in order."),
    between: bool = typer.Option(False, "--between", help="Models with an encoder (VAE): walk between the real "
                                                          "IMAGES (encoded) instead of seeds."),
    steps: int = typer.Option(30, "--steps", help="Frames between two key frames."),
    method: Optional[str] = typer.Option(None, "--method", help="slerp (spherical; the default in z) or lerp "
                                                                "(straight line; the only way in w)."),
    space: str = typer.Option("z", "--space", help="z (the input noise) or w (StyleGAN's style space, where walks "
                                                   "are smoother)."),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="StyleGAN models: psi for every frame."),
    output: Path = typer.Option(Path("walk.gif"), "-o", "--output", help=".gif or .webp animation, or .png grid."),
    fps: float = typer.Option(15.0, "--fps", help="Frames per second of the animation."),
    scale: Optional[int] = typer.Option(None, "--scale", help="Enlarge each frame this many times (default: "
                                                               "enough for 256 px)."),
    nrow: Optional[int] = typer.Option(None, "--nrow", help="Frames per row of a .png grid."),
    label: Optional[str] = typer.Option(None, "--label", help="Conditional models: the class (default: the first)."),
    text: Optional[str] = typer.Option(None, "--text", help="Text-to-image models (StackGAN): the caption of every "
                                                            "frame."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Say where the model came from and which device ran."),
):
    """Walk through latent space between seeds and back to the first: an animated GIF/WebP or a PNG grid.

    Example: `gan interpolate dcgan-mnist --seeds 1,2,3 --steps 30 -o walk.gif`;
    `gan interpolate stylegan-fashion --space w`; `gan interpolate vae-mnist --between a.png b.png`
    """
    import torch
    from PIL import Image

    from gancli import latents
    from gancli.imageio import grid_image, save_animation, save_image, to_pil

    key_seeds = latents.parse_seeds(seeds)
    if steps < 1 or steps > 10_000:
        fail("--steps must be between 1 and 10000")
    if method not in (None, "slerp", "lerp"):
        fail(f"unknown --method {method!r}: use slerp or lerp")
    if space not in ("z", "w"):
        fail(f"unknown --space {space!r}: use z or w")
    if space == "w" and method == "slerp":  # w is not Gaussian: the sphere argument for slerp does not hold there
        fail("--space w walks in straight lines: drop --method slerp (or use --method lerp)")
    method = method or ("lerp" if space == "w" else "slerp")
    if fps <= 0:
        fail("--fps must be positive")
    if scale is not None and scale < 1:
        fail("--scale must be 1 or more (leave it out for frames of at least 256 px)")
    ext = output.suffix.lower()
    if ext not in (".gif", ".webp", ".png"):
        fail(f"-o must end in .gif, .webp or .png, not {output.name!r}")
    _check_output(output, "-o", "walk.gif")
    images = images or []
    if images and not between:
        fail(f"unexpected argument {images[0]}: to walk between images, use --between (e.g. "
             f"gan interpolate {name} --between a.png b.png)")
    if between and len(images) < 2:
        fail("--between needs two images or more: gan interpolate NAME --between a.png b.png")
    if not between and len(key_seeds) < 2:
        fail("--seeds needs at least two seeds to walk between")
    for path in images:
        if not path.is_file():
            fail(f"--between: {path} is not a file")
    model = _load(name, device, verbose, sampling=True)
    model.require_text(text)
    factor = 1 if ext == ".png" else scale or max(1, -(-256 // model.image_size))  # the least that reaches 256 px
    keys_n = len(images) if between else len(key_seeds)
    frames_n = steps * (keys_n - 1) + 1 if between else steps * keys_n  # as latents.walk makes them
    side = model.image_size * factor
    if frames_n * side * side * model.channels > MAX_WALK_BYTES:
        fail(f"{frames_n} frames of {side}x{side} px would need "
             f"{frames_n * side * side * model.channels / 2**30:.1f} GiB of memory (at most 1): use fewer --steps or "
             "key frames" + (", or a smaller --scale" if ext != ".png" else ""))
    if between:
        keys = model.encode(model.read_images(images))
        what = f"between {len(images)} images"
    else:
        keys = model.latents_for(seeds=key_seeds)
        what = f"seeds {','.join(map(str, key_seeds))}"
    if space == "w":
        frames = model.synthesize(latents.walk(model.map(keys, truncation), steps, "lerp", loop=not between))
        method = "lerp in w"
    else:
        z = latents.walk(keys, steps, method, loop=not between)
        labels = model.labels_for(len(z), label if label is not None else (0 if model.is_conditional else None), text)
        frames = torch.cat(list(model.generate(z, labels, truncation=truncation)))
    if ext == ".png":
        save_image(grid_image(frames, nrow or steps), output)
    else:
        pictures = [im.resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST)
                    for im in to_pil(frames)]
        save_animation(pictures, output, fps)
    (console if _to_stdout(output) else out).print(f"wrote {len(frames)} frames ({method}, {what}) to {output}")


# ----------------------------------------------------------------------------------------------- mix
@command()
def mix(
    name: str = typer.Argument(..., help="A StyleGAN model: zoo name, local folder or owner/repo[@revision]."),
    rows: str = typer.Option("1,2,3", "--rows", help="Seeds of the row sources (down the side)."),
    cols: str = typer.Option("4,5,6", "--cols", help="Seeds of the column sources (along the top)."),
    levels: str = typer.Option("coarse", "--levels", help="Which styles come from the row source: coarse (4-8 px: "
                                                          "pose, shape), middle (16-32 px: features), fine (colour, "
                                                          "texture), or several, e.g. coarse,middle."),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="psi for every source."),
    output: Path = typer.Option(Path("mix.png"), "-o", "--output", help="The figure (.png, .jpg, .webp)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Say where the model came from and which device ran."),
):
    """The style-mixing figure of the StyleGAN paper: each cell is its column's image with the --levels styles of
    its row's image.

    Example: `gan mix stylegan-fashion --rows 1,2,3 --cols 4,5,6 --levels coarse -o mix.png`
    """
    from gancli import latents
    from gancli.imageio import format_of, grid_image, save_image

    row_seeds, col_seeds = latents.parse_seeds(rows), latents.parse_seeds(cols)
    if len(row_seeds) * len(col_seeds) > 10_000:
        fail("too many cells: at most 10000 (rows x columns)")
    format_of(output)
    _check_output(output, "-o", "mix.png")
    model = _load(name, device, verbose, sampling=True)
    images, width = model.style_mix(row_seeds, col_seeds, levels, truncation)
    save_image(grid_image(images, width), output)
    (console if _to_stdout(output) else out).print(f"wrote a {len(row_seeds)}x{len(col_seeds)} style-mixing grid ({levels} styles from the rows) to "
              f"{output}")


# ----------------------------------------------------------------------------------------------- translate
@command()
def translate(
    name: str = typer.Argument(..., help="A translation model: zoo name, local folder or owner/repo[@revision]."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input only)."),
    outdir: Optional[Path] = typer.Option(None, "--outdir", help="Write outputs here (folder structure kept)."),
    direction: str = typer.Option("a2b", "--direction", help="a2b, b2a, or the target domain's name (e.g. zebra)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per forward pass."),
    size: Optional[int] = typer.Option(None, "--size", help="Resize the shorter side to this first (keeps aspect)."),
    side: bool = typer.Option(False, "--side-by-side", help="Write input and output next to each other."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    backend: str = BACKEND,
    bf16: bool = BF16,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Say where the model came from and which device ran."),
):
    """Translate images with an image-to-image model (CycleGAN): any size, files or folders, both directions.

    Example: `gan translate cyclegan-horse2zebra horse.jpg` (-> horse-zebra.jpg);
    `gan translate cyclegan-horse2zebra photos/ --outdir zebras/`; `gan translate cyclegan-horse2zebra z.jpg --direction horse`
    """
    from gancli import translate as tr

    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if size is not None and size < 4:
        fail("--size must be at least 4")
    if output is not None:
        _check_output(output, "-o", "out.jpg")
        tr.check_output(output)  # its format, before the model loads
    backend = _check_backend(backend, bf16)
    model = _load(name, device, verbose)
    if not model.is_translation:
        fail(f"{name} is not a translation model (its task is {model.config.get('task', 'unconditional')}): "
             + (f"use `gan {model.image_command} {name} IMAGE`" if model.image_command else "use `gan sample`"))
    direction = model.direction(direction)
    target = model.target_domain(direction)
    p = tr.plan(inputs, tr_suffix(target), output, outdir)
    _use_backend(model, backend, bf16, verbose, direction)
    done, skipped, where = _run_plan(p, f"-> {target}", "translated", outdir, lambda advance: tr.run(
        model, p, direction, size, batch_size, side, advance=advance))
    out.print(f"translated {done} image(s) to {target} ({direction}) -> {where}  ({describe(model.device)}, "
              f"{model.backend}{', bf16' if bf16 else ''})"
              + _left_out(p, skipped))


def _left_out(p, skipped: list) -> str:
    """The end of a summary line: inputs not processed, and why; outputs renamed, and which."""
    for job in p.renamed:
        console.print(f"renamed: {job.source} -> {job.target} (another input's output has its name)",
                      highlight=False, markup=False)
    return (f"; skipped {len(skipped)}" if skipped else "") + \
        (f"; left out {p.own_outputs} earlier output(s) of this command" if p.own_outputs else "") + \
        (f"; {len(p.renamed)} renamed" if p.renamed else "")


def _run_plan(p, label: str, verb: str, outdir: Optional[Path], work, total: Optional[int] = None
              ) -> tuple[int, list, object]:
    """``work(advance)`` over a plan's jobs under a progress bar of ``total`` steps (default: one per job); skipped
    inputs are listed, none done is an error. Returns (done, skipped, where the outputs went)."""
    with _progress() as progress:
        task = progress.add_task(label, total=total or len(p.jobs))
        done, skipped = work(lambda k: progress.advance(task, k))
    if not done:  # one line: the first reason, and how many more
        (path, why), more = skipped[0], len(skipped) - 1
        fail(f"nothing {verb}: {path} is {why}" + (f" (and {more} more unreadable input(s))" if more else ""))
    for path, why in skipped:  # some inputs worked: not an error, but say which were not used
        console.print(f"[yellow]skipped[/] {path}: {why}", highlight=False)
    return done, skipped, p.jobs[0].target if len(p.jobs) == 1 else (outdir or "next to the inputs")


# ----------------------------------------------------------------------------------------------- upscale
@command()
def upscale(
    name: str = typer.Argument(..., help="A super-resolution model (srgan): zoo name, local folder or owner/repo."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input only)."),
    outdir: Optional[Path] = typer.Option(None, "--outdir", help="Write outputs here (folder structure kept)."),
    scale: Optional[float] = typer.Option(None, "--scale", help="Output size factor: the model's (default, e.g. 4) "
                                                                "or a smaller one above 1 (its output resampled)."),
    tile: int = typer.Option(192, "--tile", help="Input pixels per tile side: memory is bounded by one tile."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Say where the model came from and which device ran."),
):
    """Upscale images with a super-resolution model (SRGAN / SRResNet): any size, in overlapping tiles.

    Example: `gan upscale srgan-x4 photo.jpg` (-> photo-x4.jpg); `gan upscale srresnet-x4 photos/ --outdir big/`;
    `gan upscale srgan-x4 small.png -o big.png --scale 3`
    """
    from gancli import translate as tr
    from gancli import upscale as up

    if output is not None:
        _check_output(output, "-o", "out.png")
        tr.check_output(output)  # its format, before the model loads
    model = _load(name, device, verbose)
    model.requires("upscale", "gan upscale")
    scale = up.check_scale(model, scale)
    up.check_tile(model.generator, tile)
    p = tr.plan(inputs, f"x{scale:g}", output, outdir)
    done, skipped, where = _run_plan(p, f"x{scale:g}", "upscaled", outdir,
                                     lambda advance: up.run(model, p, scale, tile, advance=advance),
                                     total=up.total_tiles(model, p, tile))  # a large image's tiles show progress
    out.print(f"upscaled {done} image(s) x{scale:g} -> {where}  ({describe(model.device)})"
              + _left_out(p, skipped))


# ----------------------------------------------------------------------------------------------- export
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
    from gancli import export as ex

    _check_output(output, "-o", "model.onnx")
    fmt = ex.check_format(fmt, output)
    ex.check_writable(output)
    ex.check_installed(fmt)
    model = _load(name, "cpu", verbose)
    for w in ex.export(model, fmt, output, direction):
        what = f"{w.suffix}, " if w.suffix else ""
        out.print(f"wrote {w.path} ({what}{fmt}, {w.bytes / 1e6:.1f} MB, {w.seconds:.1f} s; max |difference| from "
                  f"PyTorch {w.max_diff:.1e})", highlight=False)


# ----------------------------------------------------------------------------------------------- classify
@command()
def classify(
    name: str = typer.Argument(..., help="A model whose discriminator classifies (ssgan): zoo name or folder."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write file, class, probability per image."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write every class's probability as JSON."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Say where the model came from and which device ran."),
):
    """Name the class of images with a semi-supervised GAN's discriminator, with its probability.

    Example: `gan classify ssgan-mnist digit.png digits/ --csv classes.csv`
    """
    import csv
    import io
    import json

    from gancli.classify import classify_files

    if batch_size < 1:
        fail("--batch-size must be at least 1")
    for path, option, example in ((csv_path, "--csv", "classes.csv"), (json_path, "--json", "classes.json")):
        if path is not None and str(path) != "-":
            _check_output(path, option, example)
    if _to_stdout(csv_path) and _to_stdout(json_path):
        fail("--csv - and --json - would both write to standard output: send one of them to a file")
    model = _load(name, device, verbose)
    predictions, skipped = classify_files(model, inputs, batch_size)
    for path, why in skipped:
        console.print(f"[yellow]skipped[/] {path}: {why}", highlight=False)
    if not predictions:
        fail(f"nothing classified: {len(skipped)} unreadable input(s)")
    table = Table(title=f"{name}: {len(predictions)} image(s)")
    for col in ("file", "class", "probability"):
        table.add_column(col, justify="right" if col == "probability" else "left")
    for p in predictions[:50]:
        table.add_row(str(p.path), p.label, f"{p.probability:.3f}")
    report = console if _to_stdout(csv_path, json_path) else out if out.is_terminal else \
        Console(width=140, soft_wrap=True)
    report.print(table)
    if len(predictions) > 50:
        report.print(f"... and {len(predictions) - 50} more (all of them with --csv or --json)")
    if csv_path is not None:
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["file", "class", "probability"])
        writer.writerows([str(p.path), p.label, p.probability] for p in predictions)
        _write_text(csv_path, rows.getvalue(), report=report)
    if json_path is not None:
        classes = model.classifier_classes
        _write_text(json_path, json.dumps([{"file": str(p.path), "class": p.label, "probability": p.probability,
                                            "probabilities": dict(zip(classes, p.probabilities))}
                                           for p in predictions], indent=2) + "\n", report=report)


def tr_suffix(domain: str) -> str:
    return _safe_name(domain).replace(" ", "-").lower()


# ----------------------------------------------------------------------------------------------- list / info
@command("list")
def list_models():
    """List the zoo: architecture, task, resolution, parameters, dataset and where the weights are.

    Example: `gan list`
    """
    from gancli.pretrained import GANModel

    table = Table(title="gan zoo")
    for col in ("name", "architecture", "task", "resolution", "parameters", "dataset", "weights"):
        table.add_column(col)
    for name in hub.zoo_names():
        cfg = hub.read_config(hub.zoo_dir() / name)
        if cfg.get("task") == "classifier":  # the judges of `gan eval`
            from gancli.classifiers import Classifier

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


# ----------------------------------------------------------------------------------------------- eval
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
    truncation: Optional[str] = typer.Option(None, "--truncation", help="StyleGAN models: psi, or several "
                                                                         "(1.0,0.7,0.5) to measure the trade-off."),
    novelty: bool = typer.Option(False, "--novelty", help="Also: class entropy of the samples and their distance to "
                                                          "the nearest training image, beside real test images'."),
    novelty_grid: Optional[Path] = typer.Option(None, "--novelty-grid", help="With --novelty: write 8 samples above "
                                                                             "their nearest training images here."),
    parzen: bool = typer.Option(False, "--parzen", help="Also: Goodfellow et al. 2014's Parzen-window log-likelihood "
                                                        "of the test images (28x28 grey data sets: mnist, fashion)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results here as JSON."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
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
    report = console if _to_stdout(json_path) else out  # --json -: stdout holds the JSON alone
    from gancli.evaluate import evaluate

    if n is not None and (n < 4 or n > 1_000_000):  # precision and recall measure each sample's distance to its 3rd nearest other sample
        fail("-n must be between 4 and 1000000")
    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if inception_weights is not None and not inception_weights.is_file():
        fail(f"--inception-weights {inception_weights} is not a file")
    if json_path is not None and str(json_path) != "-":  # say so before minutes of work
        _check_output(json_path, "--json", "results.json")
    _check_seed(seed)
    psis = _numbers(truncation, "--truncation") if truncation is not None else None
    if novelty_grid is not None:
        from gancli.imageio import format_of

        format_of(novelty_grid)
        _check_output(novelty_grid, "--novelty-grid", "novelty.png")
    with _progress() as progress:
        tasks = {}

        def advance(what, done, total):
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        result = evaluate(name, real, n, seed, features, direction, size, batch_size, device, advance,
                          inception_weights=inception_weights, truncation=psis, with_novelty=novelty,
                          novelty_grid=novelty_grid, with_parzen=parzen, cache=not no_cache, started=started)
    result["command"] = _command_line(ctx, exclude={"json_path", "device", "no_cache"})  # same numbers either way
    table = Table(title=f"{name} vs {result['real']}" + (f"  (features: {result['feature_extractor']})"
                                                         if result["feature_extractor"] else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) or key == "label_accuracy":
            table.add_row(key, "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:.4g}")
    report.print(table)
    if "parzen_log_likelihood" in result:
        report.print(f"Parzen-window log-likelihood of {result['parzen_test_images']:,} test images: "
                  f"{result['parzen_log_likelihood']:.2f} ± {result['parzen_standard_error']:.2f} nats (sigma "
                  f"{result['parzen_sigma']:.4g}, chosen on the last {result['parzen_validation_images']:,} training "
                  f"images; {result['parzen_samples']:,} samples); {result['parzen_real_images']:,} real training "
                  f"images in the samples' place: {result['parzen_real_log_likelihood']:.2f}")
    if "by_truncation" in result:
        sweep = Table(title="truncation trade-off (lower psi: samples nearer the average w)")
        keys = [k for k in ("truncation", "fid", "kid", "precision", "recall", "diversity", "classes_covered", "kl")
                if k in result["by_truncation"][0]]
        for k in keys:
            sweep.add_column("psi" if k == "truncation" else k, justify="right")
        for row in result["by_truncation"]:
            sweep.add_row(*(f"{row[k]:,}" if isinstance(row[k], int) else f"{row[k]:.4g}" for k in keys))
        report.print(sweep)
    if "text_accuracy_per_class" in result:
        report.print(_text_table(result))
    for note in result.get("notes", []):
        console.print(f"[dim]note: {note}[/]", highlight=False)
    if json_path is not None:
        _write_text(json_path, json.dumps(result, indent=2) + "\n", report=report)
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


# ----------------------------------------------------------------------------------------------- train
@command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
def train(ctx: typer.Context):
    """Train a model of any family (--arch); the run directory ends with export/, which `gan sample` loads. Ctrl-C
    saves a checkpoint. `gan train --help` lists the families and each one's options.

    Example: `gan train ../shared/data/mnist --arch dcgan --out runs/mnist --epochs 5`
    """
    command = _train_command()  # built from the families' option declarations: only now, so start-up stays light
    code = command.main(list(ctx.args), prog_name="gan train", standalone_mode=False)  # usage errors: see main()
    if isinstance(code, int) and code:
        raise typer.Exit(code)


def _train_command():
    """``gan train`` as a click command whose options are the declared ones (gancli.options), one --help panel per
    group, each panel naming the families that take it."""
    import inspect

    from gancli import catalog
    from gancli.options import LOOP, LOOP_GROUP

    fams = catalog.all_families()
    users: dict[str, list[str]] = {}
    declared = {}
    for fam in fams.values():
        for o in fam.declared():
            declared.setdefault(o.name, o)
            users.setdefault(o.name, []).append(fam.name)
    loop = {o.name for o in LOOP}
    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[list[Path]], default=typer.Argument(
            None, metavar="DATA...", show_default=False,
            help="Image folder (sub-folders = classes), a .zip of images, or a folder of MNIST-style IDX files; for "
                 "two-domain families DIR_A DIR_B, or a folder with trainA/ and trainB/. With --resume: the run's "
                 "own, unless given.")),
        inspect.Parameter("arch", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str],
                          default=typer.Option(None, "--arch", help="The family: " + ", ".join(
                              f"{n} ({f.description.split(':')[0].split(';')[0]})" for n, f in fams.items())
                              + f". [default: {declared['arch'].default}; with --resume: the run's own]")),
    ]
    for name, o in declared.items():
        if not o.cli:
            continue
        overrides = [f"{f} {_shown(fams[f].defaults[name])}" for f in users[name] if name in fams[f].defaults]
        default = "" if o.default is None and not overrides else \
            f" [default: {_shown(o.default)}" + (f"; {', '.join(overrides)}" if overrides else "") + "]"
        panel = LOOP_GROUP if name in loop else \
            o.group if o.group.endswith(" options") else f"{o.group} ({', '.join(sorted(users[name]))})"
        if o.type is bool and not o.negatable:
            decls = [o.spelling]
        elif o.type is bool:
            decls = [f"{o.spelling}/--no-{o.spelling[2:]}"]
        else:
            decls = [o.spelling]
        opt = typer.Option(None, *decls, help=o.help + default, rich_help_panel=panel, show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[o.type], default=opt))

    def run(ctx: typer.Context, data: Optional[list[Path]], arch: str, **values):
        _train(ctx, data or [], arch, {k: v for k, v in values.items() if v is not None})

    run.__signature__ = inspect.Signature(params)
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__doc__ = train.__doc__
    sub = typer.Typer(add_completion=False, rich_markup_mode="markdown",
                      context_settings={"help_option_names": ["-h", "--help"]})
    sub.command("train")(run)
    return typer.main.get_command(sub)


def _shown(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _train(ctx, data: list[Path], arch: str, given: dict):
    import shlex

    from gancli import catalog
    from gancli.options import LOOP
    from gancli.train import Trainer, TrainOptions

    if len(data) > 1:
        given["data_b"] = str(data[1])
    if given.get("out") is not None and not str(given["out"]).strip():
        fail("--out needs a folder name (the run directory)")
    out_dir = Path(given.get("out") or next(o.default for o in LOOP if o.name == "out"))
    for where in (out_dir, *out_dir.parents):  # before the data is read, not when the first checkpoint is written
        if where.exists() and not where.is_dir():
            fail(f"--out {out_dir}: {where} is a file; the run directory must be a folder (new, or a run to --resume)")
    command_line = _command_line(ctx, exclude={"resume"})
    opts = TrainOptions(str(data[0]) if data else None, arch=arch, command=command_line, **given)
    family = catalog.get(opts.arch)
    if len(data) > family.data_folders:
        fail(f"too many data folders for --arch {opts.arch}: "
             + ("DIR_A DIR_B" if family.data_folders == 2 else "give one"))
    trainer = Trainer(opts)
    main_process = trainer.dist.main
    if main_process:
        console.print(f"training {opts.arch}{' (conditional)' if trainer.conditional else ''} on {len(trainer.data)} images "
                      f"({trainer.data.channels}x{trainer.crop}x{trainer.crop}) on {describe(trainer.device)}"
                      + (f" x {trainer.dist.world} processes" if trainer.dist.active else "")
                      + (f"; skipped {len(trainer.data.skipped)} file(s) (unreadable or far too small), listed "
                         "in log.txt"
                         if trainer.data.skipped else "")
                      + (f"; resuming at step {trainer.step}" if trainer.step else ""), highlight=False)
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = _progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                         TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), transient=False,
                         disable=not main_process)
    shown_keys = trainer.objective.shown
    with progress:
        task = progress.add_task("train", total=trainer.total_steps, completed=trainer.step, stats="")
        shown = {"eval": None}

        def update(step, total, row):
            ev = trainer.last_eval
            stats = "  ".join(f"{k} {row[k]:.3f}" for k in shown_keys if k in row)
            progress.update(task, completed=step, stats=(
                f"{stats}  {row['images_per_s']:.0f} img/s"
                + (_eval_brief(ev) + (" [bold red]COLLAPSE?[/]" if ev["alarms"] else "") if ev else "")))
            if ev and ev is not shown["eval"]:
                shown["eval"] = ev
                for alarm in ev["alarms"]:
                    console.print(f"[bold red]mode-collapse alarm[/] at step {ev['step']}: {alarm}", highlight=False)

        try:
            export = trainer.run(progress=update)
        except KeyboardInterrupt:
            progress.stop()
            if main_process:
                console.print(f"interrupted at step {trainer.step}: checkpoint saved; continue with "
                              f"`{trainer.resume_command()}`", highlight=False, markup=False)
            raise typer.Exit(130)
    if main_process:
        if trainer.rollbacks:
            console.print(f"note: the loss became non-finite {len(trainer.rollbacks)} time(s); rolled back and "
                          f"continued with learning rates x{trainer.lr_scale:g} (see log.txt)")
        use = family.card_use(trainer.export_config(), shlex.quote(str(export)))[0]
        session = trainer.step - trainer.started_at
        done = f"{trainer.step} steps" if session == trainer.step else f"{session} steps ({trainer.step} in all)"
        out.print(f"trained {done} in {trainer.train_seconds:.0f} s on {describe(trainer.device)}; "
                  f"model exported to {export}  (try: {use.split('#')[0].strip()})", markup=False)


# ----------------------------------------------------------------------------------------------- convert
@command()
def convert(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="Published .pth generator checkpoint(s)."),
    arch: str = typer.Option(..., "--arch", help="cyclegan (reference ResNet generators) or dcgan (the PyTorch "
                                                 "DCGAN example's netG)."),
    output: Path = typer.Option(..., "-o", "--output", help="Model folder to write (zoo layout)."),
    direction: Optional[str] = typer.Option(None, "--direction", help="cyclegan: what each file translates, e.g. "
                                                                      "a2b or a2b,b2a (default: a2b[,b2a])."),
    domains: Optional[str] = typer.Option(None, "--domains", help="cyclegan: names of domains A and B, e.g. "
                                                                  "horse,zebra (default: A,B)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name in config.json."),
    fp16: bool = typer.Option(False, "--fp16", help="Store float16 weights (half the size)."),
):
    """Import published generator weights into a model folder (safetensors + config.json + card); never unpickles.

    Example: `gan convert latest_net_G_A.pth latest_net_G_B.pth --arch cyclegan --domains horse,zebra -o h2z/`
    """
    import torch

    from gancli import convert as conv

    model = conv.convert(files, arch, name, domains=domains, direction=direction)
    model.save_pretrained(output, card=conv.card(model, _command_line(ctx)), dtype=torch.float16 if fp16 else None,
                          max_shard_bytes=15 * 2**20)
    out.print(f"wrote {model.architecture} model to {output} ({model.num_parameters():,} generator parameters)")


# ----------------------------------------------------------------------------------------------- push
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
    from gancli import push as pushing

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


# ----------------------------------------------------------------------------------------------- toy
toy_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown",
                      help="The theory of the GAN papers, shown and checked on toy data in seconds on a CPU "
                           "(docs/theory.md).\n\nExample: `gan toy 1d -o toy.gif`; `gan toy 2d --unrolled 5`")
app.add_typer(toy_app, name="toy")
TOY_LOSS = typer.Option("ns", "--loss", help="ns (non-saturating G loss) or minimax (the original log(1 - D(G(z)))).")
TOY_SEED = typer.Option(0, "--seed", help="Same seed, same numbers and pictures.")
TOY_FRAMES = typer.Option(30, "--frames", help="Measurements (and animation frames) over training.")
TOY_OUTPUT = typer.Option(None, "-o", "--output", help="Picture: .gif/.webp animates; .png/.jpg shows four moments.")
TOY_JSON = typer.Option(None, "--json", help="Write the numbers (final and over training) here as JSON; - prints "
                                             "them instead of the table.")


def _toy_outputs(output: Optional[Path], json_path: Optional[Path]):
    from gancli.toy import check_picture

    if output is not None:
        _check_output(output, "-o", "toy.gif")
        check_picture(output)
    if json_path is not None and str(json_path) != "-":
        _check_output(json_path, "--json", "toy.json")


def _toy_finish(result, frames_fn, output: Optional[Path], json_path: Optional[Path], rows: list[tuple[str, str]]):
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
        from gancli.toy import save_picture

        what = save_picture(frames_fn(result), output)
        console.print(f"wrote {output} ({what}, {len(result.history)} frames)" if what == "animation"
                      else f"wrote {output} (four moments of training)", highlight=False, markup=False)
    if json_path is not None and str(json_path) != "-":
        from gancli.imageio import atomic_write

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
):
    """Goodfellow et al. 2014, Figure 1: p_data, p_g, D and the optimal D* on a line; V(D, G) against -log 4.

    Example: `gan toy 1d -o toy.gif`; `gan toy 1d --fixed-g --json -`
    """
    from gancli import toy

    _check_seed(seed)
    toy.check_1d(data, loss, steps, seed, frames)
    _toy_outputs(output, json_path)
    result = toy.train_1d(data, loss, steps, seed, frames, fixed_g)
    f = result.final
    rows = [("V(D, G)", f"{f['value']:.4f}"), ("|V - (-log 4)|", f"{f['value_gap']:.4f}"),
            ("V(D*, G) = -log 4 + 2 JSD", f"{f['optimal_d_value']:.4f}"), ("JSD(p_data, p_g)", f"{f['jsd']:.4f}"),
            ("max |D - D*| where the data is", f"{f['max_d_error']:.4f}")]
    _toy_finish(result, toy.frames_1d, output, json_path, rows)


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
):
    """Mode collapse on the 8-Gaussian ring or the 5x5 grid, and its cures: modes covered, high-quality share.

    Example: `gan toy 2d -o ring.gif`; `gan toy 2d --unrolled 5 -o ring-unrolled.gif`
    """
    from gancli import toy

    _check_seed(seed)
    toy.check_2d(data, loss, steps, seed, frames, pack, unrolled)
    _toy_outputs(output, json_path)
    result = toy.train_2d(data, loss, steps, seed, frames, pack, unrolled)
    f = result.final
    rows = [("modes covered", f"{f['modes_covered']} of {f['num_modes']}"),
            (f"high-quality samples (within {toy.QUALITY_SIGMAS:g} std of a mode)", f"{100 * f['high_quality']:.1f}%"),
            ("samples per mode (high quality)", " ".join(map(str, f["per_mode"])))]
    _toy_finish(result, toy.frames_2d, output, json_path, rows)


def _close_options(given: str, known) -> list[str]:
    import difflib

    names = {k.lstrip("-"): k for k in known}
    return [names[m] for m in difflib.get_close_matches(given.lstrip("-"), list(names), n=3, cutoff=0.6)]


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
        console.print(f"[bold red]error:[/] {escape(_one_line(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
