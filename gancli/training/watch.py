"""The loop's watch on the losses for what the NaN rollback (``gancli.training.checkpoints``) does not see."""
from __future__ import annotations

import math

import torch

from gancli.training.checkpoints import RunState

EXPLODED = 1e4  # a finite loss this many times its value at the start (or 1) is diverging: warn, once


class LossWatch:
    """Warn once when a loss explodes but stays finite (a learning rate far too high: G loss 2e9), which the
    NaN rollback does not see. Judged against each loss at step 1, where its scale is the problem's; that scale is
    checkpointed (``RunState.loss_start``), so a resumed run judges by the same one."""

    def __init__(self, state: RunState, warn, hint: str):
        self.state, self.warn, self.hint = state, warn, hint
        self.exploded = False

    def __call__(self, interval: list[dict]):
        """``interval``: the stats of the steps up to ``state.step``."""
        if self.exploded or not interval:
            return
        first_step = self.state.step - len(interval) + 1
        names = [k for k in interval[0] if k.startswith("loss")]
        if self.state.loss_start is None:  # step 1 (or, from an older checkpoint, this session's first step)
            start = {k: float(interval[0][k].float().mean()) for k in names}
            self.state.loss_start = {k: v for k, v in start.items() if math.isfinite(v)}
        loss_start = self.state.loss_start
        for k in names:
            if k not in loss_start:
                continue
            at = [(first_step + i, s[k]) for i, s in enumerate(interval) if k in s]
            limit = EXPLODED * max(1.0, abs(loss_start[k]))
            over = (torch.stack([v.float().mean() for _, v in at]).abs() > limit).nonzero()
            if len(over):
                step, value = at[int(over[0])]
                self.exploded = True
                self.warn(f"{k} reached {float(value.float().mean()):.3g} at step {step} (it was "
                          f"{loss_start[k]:.3g} at the start): training is diverging; " + self.hint)
                return
