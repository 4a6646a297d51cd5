"""How long a run takes, said and kept: after the first steps one line with the time a step takes on this machine,
an epoch, and the whole run, and the memory held so far; under ``--time`` the run's length is planned from that
timing to end within the budget (checkpoint and export included); and preview grids in the first minutes, so a slow
run shows early whether it learns."""
from __future__ import annotations

import math
import sys
import time

from gancli.devices import machine_memory_bytes
from gancli.options import Options, clock, seconds
from gancli.training.rundir import RunDir, TrainError

UNPLANNED = 10**12  # --time alone: the length until the first steps are timed
TIMED_STEPS = 10    # steps timed (after the first, which pays for warming up) before the first estimate
MEMORY_SHARE = 0.9  # of the machine's memory, past which a run is stopped after its first step
PREVIEWS = (60.0, 300.0)  # seconds into the session at which a grid is written whatever --sample-every says


def peak_memory_gb() -> float:
    """The process's peak resident memory (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20


def machine_memory_gb() -> float | None:
    """The machine's memory, where the system says (Linux, macOS)."""
    have = machine_memory_bytes()
    return have / 2**30 if have else None


def clock_up(seconds: float) -> str:
    """A --time value at least ``seconds``: whole minutes, or hours and minutes."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes % 60 else f"{minutes // 60}h"


class RunClock:
    """The run's length and pace. It is told the step and the planned length at each call and returns any new
    plan, so the loop stays the one holder of both."""

    def __init__(self, opts: Options, steps_per_epoch: float, started: float, family, run_dir: RunDir):
        """``started``: when --time starts counting; ``family``: for its ``learns_after`` and ``name``."""
        self.opts, self.steps_per_epoch, self.started = opts, steps_per_epoch, started
        self.family, self.run_dir = family, run_dir
        # the length asked for; with --time alone none, until the first timed steps plan it
        self.asked = opts.steps or (math.ceil(opts.epochs * steps_per_epoch) if opts.epochs else None)
        self.deadline = started + seconds(opts.time) if opts.time else None
        self.budget = seconds(opts.time) if opts.time else None
        self.timings, self.first_step_done = 0, time.time()
        self.previews = list(PREVIEWS)

    def first_length(self) -> int:
        return max(1, self.asked or (UNPLANNED if self.deadline else math.ceil(5 * self.steps_per_epoch)))

    def before_step(self, step: int, started_at: int):
        """The timing starts once the first step is done, its grid written and all: the first step pays for
        warming up, and would make a short run's estimate several times too long. The first step also shows what
        a step holds in memory: a run that needs nearly all of the machine's is stopped there, with what would fit,
        rather than left to swap for days or be killed. ``started_at``: the step this session started from."""
        if step - started_at == 1:
            self.first_step_done = time.time()
            peak, have = peak_memory_gb(), machine_memory_gb()
            if have and peak > MEMORY_SHARE * have:
                raise TrainError(
                    f"one step of this run held {peak:.1f} GB, {peak / have:.0%} of this machine's {have:.1f} GB: "
                    f"give it less to hold, e.g. --batch-size {max(1, self.opts.batch_size // 4)}, a smaller "
                    "--size (translators: --size 128 --load-size 286 trains on crops of the same photos), or "
                    "narrower networks (--g-width, --d-width); the run folder keeps its step-0 checkpoint")

    def after_step(self, step: int, started_at: int, total_steps: int) -> int:
        """The run's length after ``step``: ``total_steps`` unless --time plans it anew. After the first steps the
        estimate line (and the --time plan); planned again on a tenth of the budget's timing; and a run slower than
        planned ends early, on time."""
        now, opts = time.time(), self.opts
        timed = step - started_at - 1
        if timed < 1:
            return total_steps
        if not self.timings:
            due = timed >= TIMED_STEPS and (now - self.first_step_done >= 5 or timed >= 10 * TIMED_STEPS)
        else:
            due = self.deadline is not None and now - self.first_step_done >= 0.1 * self.budget
        if self.timings < (2 if self.deadline else 1) and due:
            self.timings += 1
            per_step = (now - self.first_step_done) / timed
            if self.deadline:
                fit = step + max(0, int((self.deadline - now - self.reserve()) / per_step))
                total_steps = max(step, min(fit, self.asked or fit))
            if self.timings == 1:
                self.run_dir.say(
                    f"{per_step:.2f} s a step here: {clock(per_step * self.steps_per_epoch)} an epoch; "
                    f"{total_steps:,} steps ({total_steps / max(1e-9, self.steps_per_epoch):.1f} epochs) end in "
                    f"about {clock((total_steps - step) * per_step)}"
                    + (f" (--time {opts.time})" if self.deadline else "")
                    + f"; peak memory so far {peak_memory_gb():.1f} GB")
                self._too_short(total_steps, step, per_step)
            else:
                self.run_dir.log(f"--time {opts.time}: planned again at step {step}: {total_steps} steps")
        elif self.deadline and step < total_steps and now > self.deadline - self.reserve():
            total_steps = step  # slower than planned: end now, on time
            self.run_dir.say(f"--time {opts.time}: ending at step {step:,} to finish on time")
        return total_steps

    def check_plan(self, total_steps: int):
        """At the start: a length given in steps or epochs that is shorter than the family needs is named now (a
        --time plan is judged once its first steps are timed)."""
        if not self.deadline:
            self._too_short(total_steps, None, None)

    def _too_short(self, total_steps: int, step: int | None, per_step: float | None):
        """A plan shorter than the family needs to draw shapes is named, with what would be enough; the run still
        does what was asked."""
        needed = self.family.learns_after
        if not needed or total_steps >= needed:
            return
        if self.deadline:
            end = time.time() - self.started + (needed - step) * per_step + self.reserve()
            enough = f"--time {clock_up(end)} or more"
        else:
            enough = f"--steps {needed:,} or more" if self.opts.steps else \
                f"--epochs {math.ceil(10 * needed / self.steps_per_epoch) / 10:g} or more"
        self.run_dir.warn(f"{total_steps:,} steps planned; {self.family.name} draws shapes after about {needed:,} "
                          f"(measured on MNIST-sized data at its default batch size): give {enough}")

    def reserve(self) -> float:
        """What the end needs within --time: the last checkpoint, grid and export."""
        return min(120.0, max(5.0, 0.05 * self.budget))

    def preview_due(self, t0: float) -> bool:
        """A grid after the first and the fifth minute, whatever --sample-every says; ``t0``: when this session's
        training started."""
        if self.previews and time.time() - t0 >= self.previews[0]:
            while self.previews and time.time() - t0 >= self.previews[0]:
                self.previews.pop(0)
            return True
        return False
