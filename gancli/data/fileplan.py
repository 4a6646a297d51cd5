"""Which output each input file gets, decided before any work: files, folders and globs expanded, outputs named
beside their sources or in ``--outdir``, and never an output that would replace an input, a device file or a
symlink (``gan translate``, ``gan upscale`` and ``gan classify`` share it)."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from gancli.data.reading import IMAGE_SUFFIXES, list_images


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    folder_mode: bool = False
    own_outputs: int = 0  # inputs left out: this command's earlier outputs, found next to their sources or in --outdir
    renamed: list[Job] = field(default_factory=list)  # outputs given another name: another input's had theirs


def check_output(path: Path) -> Path:
    """``-o``'s format, by the one rule for outputs (``imageio.output_format``), before any work."""
    from gancli.data.imageio import output_format

    output_format(path)
    return path


def writable(target: Path) -> Path:
    """Where an output is written: its own name if we write its format (png, jpg, webp), else the name with .png
    (an input.bmp gives a .png)."""
    from gancli.data.imageio import IMAGE_FORMATS

    return target if target.suffix.lower().lstrip(".") in IMAGE_FORMATS else target.with_suffix(".png")


def expand_inputs(inputs: Iterable[str]) -> list[tuple[Path, Path | None]]:
    """Files, folders (recursive) and globs -> (file, the folder it was found under, or None)."""
    found: list[tuple[Path, Path | None]] = []
    for spec in inputs:
        path = Path(spec).expanduser()
        if path.is_dir():
            found += [(f, path) for f in list_images(path)]
        elif path.is_file():
            found.append((path, None))
        elif glob.has_magic(spec):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                raise FileNotFoundError(f"no images match {spec!r}")
            found += [(f, None) for f in files]
        else:
            raise FileNotFoundError(f"input {spec} does not exist")
    if not found:
        raise FileNotFoundError("no input images found")
    seen: set[str] = set()  # a file named twice (a.png ./a.png, or p p/a.png) is one input; a link is its own
    return [(f, root) for f, root in found if not (os.path.abspath(f) in seen or seen.add(os.path.abspath(f)))]


def plan(inputs: list[str], suffix: str, output: Path | None = None, outdir: Path | None = None) -> Plan:
    """Where every output goes: ``-o`` (one input), ``--outdir`` (mirroring folder structure), or next to the input
    as ``NAME-<suffix>.EXT``."""
    found = expand_inputs(inputs)
    folder_mode = len(found) > 1 or any(root is not None for _, root in found)
    if output is not None:
        if outdir is not None:
            raise ValueError("give -o or --outdir, not both")
        if folder_mode:
            raise ValueError("-o names one output file; for several inputs use --outdir")
        target = check_output(output)
        if _same_file(target, found[0][0]):
            raise ValueError(f"-o {output} is the input itself: it would be replaced; give another name")
        return Plan([Job(found[0][0], target)])
    sources = {src.resolve() for src, _ in found}
    if outdir is not None:
        # an --outdir inside an input folder holds this command's earlier outputs: not inputs
        inside = [(src, root) for src, root in found if root is not None and _under(outdir, root)
                  and _under(src, outdir)]
        found = [job for job in found if job not in inside]
        if not found:
            raise ValueError(f"every input is in --outdir {outdir}: choose another folder for the outputs")
        jobs = [Job(src, writable(outdir / (src.relative_to(root) if root is not None else Path(src.name))))
                for src, root in found]
        return not_inputs(distinct(Plan(jobs, folder_mode, own_outputs=len(inside)), sources), "--outdir")
    jobs = [Job(src, writable(src.with_name(f"{src.stem}-{suffix}{src.suffix}"))) for src, _ in found]
    return not_inputs(distinct(without_own_outputs(jobs, folder_mode), sources), "an output")


def not_inputs(p: Plan, what: str) -> Plan:
    """The last word before anything is written: no output may land on an input it reads (through a symlink, say);
    earlier outputs left out as inputs may be replaced."""
    sources = {job.source.resolve() for job in p.jobs}
    clash = next((job for job in p.jobs if job.target.resolve() in sources), None)
    if clash:
        shown = clash.target if clash.target.resolve() == clash.target.absolute() else \
            f"{clash.target} (a link to {clash.target.resolve()})"
        raise ValueError(f"{what} {shown} would replace an input with the output of {clash.source}: "
                         "choose another folder, or move the input")
    return p


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))


def _under(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def distinct(p: Plan, sources: set[Path]) -> Plan:
    """Two inputs whose outputs would have one name (a/x.png and b/x.png into one --outdir; x.bmp and x.png, both
    written as PNG): the later ones get -2, -3 ... so that every input's output is written and none replaces
    another's."""
    # no output takes the name of a file found among the inputs, unless it is that job's own name (a re-run
    # replaces its earlier output; a -2 name might be a user's file)
    taken = sources - {job.target.resolve() for job in p.jobs}
    for job in p.jobs:
        target, k = job.target, 1
        while target.resolve() in taken:
            k += 1
            target = job.target.with_name(f"{job.target.stem}-{k}{job.target.suffix}")
        if target != job.target:
            job.target = target
            p.renamed.append(job)
        taken.add(target.resolve())
    return p


def without_own_outputs(jobs: list[Job], folder_mode: bool) -> Plan:
    """Outputs written next to their inputs are found again when the folder is run twice: an input that is another
    input's output (a-x4.jpg beside a.jpg) is left out, or it would be processed again (a-x4-x4.jpg) and then
    overwritten."""
    # by name, not by what a link points at; with the -2, -3 ... names ``distinct`` may have given them
    targets = {t for job in jobs for t in [job.target.absolute()] + [
        job.target.absolute().with_name(f"{job.target.stem}-{k}{job.target.suffix}") for k in range(2, len(jobs) + 2)]}
    kept = [job for job in jobs if job.source.absolute() not in targets]
    return Plan(kept, folder_mode, own_outputs=len(jobs) - len(kept))
