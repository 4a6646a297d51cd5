"""`gan train`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.common import built_when_run, command_from, command_line, console, describe, fail, out
from gancli.cli.progress import progress_bar


def _eval_brief(ev: dict) -> str:
    """The progress line's last --eval-every result: FID and coverage, or a translator's judged shares and SSIM."""
    if ev.get("fid") is not None:
        return (f"  FID {ev['fid']:.2f}" + (f" cov {ev['classes_covered']}/{ev['num_classes']}"
                                            if ev.get("classes_covered") is not None else "")
                + (f" modes {ev['modes_covered']}" if ev.get("modes_covered") is not None else ""))
    return "".join(f"  {d} " + (f"judged {ev[f'target_domain_rate_{d}']:.0%} " if f"target_domain_rate_{d}" in ev
                                else "") + f"SSIM {ev[f'structure_{d}']:.2f}"
                   for d in ("a2b", "b2a") if f"structure_{d}" in ev)


# ----------------------------------------------------------------------------------------------- train
TRAIN_HELP = """Train a model of any family (--arch); the run directory ends with export/, which `gan sample` loads.
Ctrl-C saves a checkpoint. `gan train --help` lists the families and each one's options.

Example: `gan train ../shared/data/mnist --arch dcgan --out runs/mnist --epochs 5`
"""


def _train_command():
    """``gan train`` as a click command whose options are the declared ones (gancli.options), one --help panel per
    group, each panel naming the families that take it."""
    import inspect

    from gancli.families import catalog
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
                              + f". [default: {catalog.DEFAULT}; with --resume: the run's own]")),
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

    return command_from("train", run, params, TRAIN_HELP)


def _shown(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _train(ctx, data: list[Path], arch: str, given: dict):
    import shlex

    from gancli.families import catalog
    from gancli.options import LOOP
    from gancli.training.trainer import Trainer, TrainOptions

    if len(data) > 1:
        given["data_b"] = str(data[1])
    if given.get("out") is not None and not str(given["out"]).strip():
        fail("--out needs a folder name (the run directory)")
    out_dir = Path(given.get("out") or next(o.default for o in LOOP if o.name == "out"))
    for where in (out_dir, *out_dir.parents):  # before the data is read, not when the first checkpoint is written
        if where.exists() and not where.is_dir():
            fail(f"--out {out_dir}: {where} is a file; the run directory must be a folder (new, or a run to --resume)")
    spelled = command_line(ctx, exclude={"resume"})
    opts = TrainOptions(str(data[0]) if data else None, arch=arch, command=spelled, **given)
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
        for note in trainer.data.first.notes:
            if note.startswith(("--size", "--batch-size")):  # a setting chosen for the data, and why
                console.print(note, highlight=False)
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = progress_bar(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                         TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), transient=False,
                         disable=not main_process)
    shown_keys = trainer.objective.shown
    with progress:
        task = progress.add_task("train", total=trainer.total_steps, completed=trainer.step, stats="")
        shown = {"eval": None}

        def update(step, total, row):
            ev = trainer.last_eval
            stats = "  ".join(f"{k} {row[k]:.3f}" for k in shown_keys if k in row)
            progress.update(task, completed=step, total=total, stats=(
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
                  f"{trainer.epochs(2):g} epochs of the data in all; "
                  f"model exported to {export}  (try: {use.split('#')[0].strip()})", markup=False)


built_when_run("train", TRAIN_HELP, _train_command)  # the options are the families': built when it runs
