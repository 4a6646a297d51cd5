"""Progress for long commands: a live bar on a terminal, whole lines in pipes and logs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from rich.console import Console

from gancli.cli.common import console, fail
from gancli.options import clock


def progress_bar(*columns, transient: bool = True, disable: bool = False):
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
        line += f"  {clock(elapsed)} elapsed"
        rate = (done - t["start_completed"]) / elapsed if elapsed > 0 else 0
        if total and rate > 0 and done < total:
            line += f", {clock((total - done) / rate)} left"
        if t["fields"].get("stats"):
            line += f"  {t['fields']['stats']}"
        self.console.print(line, highlight=False, soft_wrap=True)


def left_out(p, skipped: list) -> str:
    """The end of a summary line: inputs not processed, and why; outputs renamed, and which."""
    for job in p.renamed:
        console.print(f"renamed: {job.source} -> {job.target} (another input's output has its name)",
                      highlight=False, markup=False)
    return (f"; skipped {len(skipped)}" if skipped else "") + \
        (f"; left out {p.own_outputs} earlier output(s) of this command" if p.own_outputs else "") + \
        (f"; {len(p.renamed)} renamed" if p.renamed else "")


def run_plan(p, label: str, verb: str, outdir: Optional[Path], work, total: Optional[int] = None
              ) -> tuple[int, list, object]:
    """``work(advance)`` over a plan's jobs under a progress bar of ``total`` steps (default: one per job); skipped
    inputs are listed, none done is an error. Returns (done, skipped, where the outputs went)."""
    with progress_bar() as progress:
        task = progress.add_task(label, total=total or len(p.jobs))
        done, skipped = work(lambda k: progress.advance(task, k))
    if not done:  # one line: the first reason, and how many more
        (path, why), more = skipped[0], len(skipped) - 1
        fail(f"nothing {verb}: {path}: {why}" + (f" (and {more} more unreadable input(s))" if more else ""))
    for path, why in skipped:  # some inputs worked: not an error, but say which were not used
        console.print(f"[yellow]skipped[/] {path}: {why}", highlight=False)
    return done, skipped, p.jobs[0].target if len(p.jobs) == 1 else (outdir or "next to the inputs")
