"""How long a run takes, said and kept: after the first steps one line with the time a step takes on this machine,
an epoch, and the whole run, and the memory held so far; under ``--time`` the run's length is planned from that
timing to end within the budget (checkpoint and export included); and preview grids in the first minutes, so a slow
run shows early whether it learns."""
from __future__ import annotations

import math
import sys
import time

from gancli.options import seconds

UNPLANNED = 10**12  # --time alone: the length until the first steps are timed
TIMED_STEPS = 10    # steps timed (after the first, which pays for warming up) before the first estimate
PREVIEWS = (60.0, 300.0)  # seconds into the session at which a grid is written whatever --sample-every says


def clock(seconds_: float) -> str:
    m, s = divmod(int(seconds_), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def peak_memory_gb() -> float:
    """The process's peak resident memory (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20


class RunClock:
    def __init__(self, trainer, started: float):
        self.t, opts = trainer, trainer.opts
        self.steps_per_epoch = trainer.batches_per_epoch / trainer.objective.batches_per_step
        # the length asked for; with --time alone none, until the first timed steps plan it
        self.asked = opts.steps or (math.ceil(opts.epochs * self.steps_per_epoch) if opts.epochs else None)
        self.deadline = started + seconds(opts.time) if opts.time else None
        self.budget = seconds(opts.time) if opts.time else None
        self.timings, self.first_step_done = 0, time.time()
        self.previews = list(PREVIEWS)

    def first_length(self) -> int:
        return max(1, self.asked or (UNPLANNED if self.deadline else math.ceil(5 * self.steps_per_epoch)))

    def _set_length(self, steps: int):
        self.t.total_steps = self.t.ctx.total_steps = steps

    def before_step(self):
        """The timing starts once the first step is done, its grid written and all: the first step pays for
        warming up, and would make a short run's estimate several times too long."""
        if self.t.step - self.t.started_at == 1:
            self.first_step_done = time.time()

    def after_step(self, t0: float):
        """After the first steps the estimate line (and the --time plan); planned again on a tenth of the budget's
        timing; and a run slower than planned ends early, on time."""
        t, now = self.t, time.time()
        timed = t.step - t.started_at - 1
        if timed < 1:
            return
        due = (timed >= TIMED_STEPS and (now - self.first_step_done >= 5 or timed >= 10 * TIMED_STEPS)) if not self.timings else \
            self.deadline is not None and now - self.first_step_done >= 0.1 * self.budget
        if self.timings < (2 if self.deadline else 1) and due:
            self.timings += 1
            per_step = (now - self.first_step_done) / timed
            if self.deadline:
                fit = t.step + max(0, int((self.deadline - now - self.reserve()) / per_step))
                self._set_length(max(t.step, min(fit, self.asked or fit)))
            if self.timings == 1:
                t.run_dir.say(
                    f"{per_step:.2f} s a step here: {clock(per_step * self.steps_per_epoch)} an epoch; "
                    f"{t.total_steps:,} steps ({t.total_steps / max(1e-9, self.steps_per_epoch):.1f} epochs) end in "
                    f"about {clock((t.total_steps - t.step) * per_step)}"
                    + (f" (--time {t.opts.time})" if self.deadline else "")
                    + f"; peak memory so far {peak_memory_gb():.1f} GB")
            else:
                t.log(f"--time {t.opts.time}: planned again at step {t.step}: {t.total_steps} steps")
        elif self.deadline and t.step < t.total_steps and now > self.deadline - self.reserve():
            self._set_length(t.step)  # slower than planned: end now, on time
            t.run_dir.say(f"--time {t.opts.time}: ending at step {t.step:,} to finish on time")

    def reserve(self) -> float:
        """What the end needs within --time: the last checkpoint, grid and export."""
        return min(120.0, max(5.0, 0.05 * self.budget))

    def preview_due(self, t0: float) -> bool:
        """A grid after the first and the fifth minute, whatever --sample-every says."""
        if self.previews and time.time() - t0 >= self.previews[0]:
            while self.previews and time.time() - t0 >= self.previews[0]:
                self.previews.pop(0)
            return True
        return False
