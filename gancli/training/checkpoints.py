"""Checkpoints: everything a run needs to continue exactly where it was, written atomically, read back safely.

A checkpoint (RUN_DIR/checkpoints/step-XXXXXXXX.pt, a ``torch.save`` dict of tensors and plain containers) holds the
networks, the optimisers, the random generators' states, the EMA generator, the objective's own state and the
loop's ``RunState``. Its keys are the format: checkpoints of earlier versions load and resume, so keys are only
ever added (and read with a default when missing).
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gancli.data.imageio import atomic_write
from gancli.training.rundir import RunDir, TrainError

MAX_ROLLBACKS = 3



def as_this_session(opt: torch.optim.Optimizer):
    """A loaded optimiser run as this session built it (fused on CUDA, PyTorch's default elsewhere) with its state
    laid out as this session's parameters. ``load_state_dict`` keeps a checkpoint's own flags and memory layout: one
    written on the GPU (fused, channels_last) and resumed on the CPU would run a fused kernel over moments laid out
    unlike their parameters, which updates the wrong elements without an error. The values are unchanged, so a
    resume on the same device stays bit-identical."""
    fused = opt.defaults.get("fused")
    for group in opt.param_groups:
        group["fused"] = fused
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in list(state.items()):
                if key == "step" and torch.is_tensor(value):  # fused Adam counts on the device, the others on the host
                    state[key] = value.to(device=p.device if fused else "cpu", dtype=torch.float32).clone()
                elif torch.is_tensor(value) and value.shape == p.shape:
                    state[key] = torch.empty_like(p).copy_(value)

class _Unreadable(TrainError):
    """A checkpoint file that cannot be read (cut short, or damaged): an older one may still be."""


@dataclass
class RunState:
    """Where the run is, beyond the weights (its step, the NaN rollbacks and what they did to the learning rates,
    the losses' starting scale, the training time): checkpointed with them, and shared by the loop, its
    checkpoints, its loss watch and the objective's context."""
    step: int = 0
    lr_scale: float = 1.0                     # halved on every NaN rollback
    rollbacks: list[int] = field(default_factory=list)  # the steps whose loss became NaN/inf
    loss_start: dict[str, float] | None = None  # each loss at step 1, the scale an explosion is judged by
    seconds_before: float = 0.0               # training time of earlier sessions of this run
    t0: float | None = None                   # when this session started training

    def seconds(self) -> float:
        return self.seconds_before + (time.time() - self.t0 if self.t0 else 0.0)


class Checkpoints:
    """Saves and restores one run's training state: ``ctx``'s networks and optimisers (a
    ``gancli.training.context.TrainingContext``), the objective's state, the EMA generator and the ``RunState``."""

    def __init__(self, run: RunDir, state: RunState, ctx, objective, G_ema: torch.nn.Module | None):
        self.run, self.state, self.objective, self.G_ema = run, state, objective, G_ema
        self.device, self.nets, self.arch_args = ctx.device, ctx.nets, ctx.arch_args
        self.run_family = ctx.family  # arch_args of older checkpoints lack later options' keys: built_with
        self.optimizers = ctx.optimizers

    def _state(self) -> dict:
        p = self.state
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {"step": p.step, "networks": {k: net.state_dict() for k, net in self.nets.items()},
                 "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()}, "rng": rng,
                 "lr_scale": p.lr_scale, "rollbacks": torch.tensor(p.rollbacks, dtype=torch.int64),
                 "seconds": p.seconds(), "arch": self.run.opts.arch, "arch_args": self.arch_args,
                 "objective": self.objective.state()}
        if p.loss_start is not None:
            state["loss_start"] = p.loss_start
        if self.G_ema is not None:
            state["G_ema"] = self.G_ema.state_dict()
        return state

    def save(self) -> Path:
        path = self.run.ckpt_dir / f"step-{self.state.step:08d}.pt"
        if self.run.main:
            self.run.ckpt_dir.mkdir(parents=True, exist_ok=True)
            # Serialised in memory first: a failed write is then a plain OSError of ours (torch's zip writer
            # buries it under "unexpected pos"), and we know how much room the checkpoint needs.
            buffer = io.BytesIO()
            torch.save(self._state(), buffer)
            data = buffer.getbuffer()
            try:
                atomic_write(path, lambda f: f.write(data))
            except OSError as e:
                raise self.run.write_failed(path, e, len(data)) from None
            for old in self.run.checkpoints()[:-self.run.opts.keep_checkpoints]:
                old.unlink()
            self.run.log(f"checkpoint {path.name}")
        return path

    def resume(self, candidates: list[Path]):
        """Continue from the newest checkpoint that can be read. One that cannot (a crash or a bad disk damaged
        it) is renamed ``.corrupt``, kept rather than deleted, and said; none readable is an error."""
        unreadable = []
        for path in candidates:
            try:
                self.load(path)
            except _Unreadable as e:
                unreadable.append((path, str(e)))
                continue
            for bad, why in unreadable:
                if self.run.main:
                    bad.rename(bad.with_name(bad.name + ".corrupt"))
                self.run.warn(f"{why}; kept it as {bad.name}.corrupt and resumed from {path.name} "
                              f"(step {self.state.step})")
            return
        raise TrainError(f"none of the {len(candidates)} checkpoint(s) in {self.run.ckpt_dir} can be read: "
                         + "; ".join(why for _, why in unreadable))

    def load(self, path: Path, quiet: bool = False):
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)  # never unpickle objects
        except Exception as e:  # a checkpoint cut short by a crash is reported, not a traceback
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise _Unreadable(f"checkpoint {path} cannot be read ({why})") from None
        if not isinstance(state, dict) or "step" not in state:
            raise _Unreadable(f"checkpoint {path} is not one of ours")
        family = self.run_family
        if not isinstance(state.get("arch_args"), dict) or \
                family.built_with(state["arch_args"]) != family.built_with(self.arch_args):
            raise TrainError(f"checkpoint {path.name} was made for {state.get('arch_args')}, not {self.arch_args}")
        if "networks" not in state:
            raise TrainError(f"checkpoint {path} was written by an older gan (before families had their own "
                             "modules); start a new run")
        for k, net in self.nets.items():
            net.load_state_dict(state["networks"][k])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state.get("G_ema", state["networks"]["generator"]))
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
            as_this_session(opt)
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        p = self.state
        p.step = int(state["step"])
        p.seconds_before = float(state.get("seconds", 0.0))
        self.objective.load_state(state.get("objective", {}))
        p.lr_scale = float(state.get("lr_scale", 1.0))
        p.rollbacks = [int(s) for s in state.get("rollbacks", torch.zeros(0, dtype=torch.int64)).tolist()]
        p.loss_start = state.get("loss_start")
        if not quiet:
            if self.run.main:
                self.run.truncate_metrics(p.step)
            self.run.log(f"resumed from {path.name} at step {p.step}")

    def roll_back(self):
        """A non-finite loss: return to the last checkpoint with half the learning rates, or give up."""
        p = self.state
        p.rollbacks.append(p.step)
        if len(p.rollbacks) > MAX_ROLLBACKS:
            self.run.log(f"stopped: non-finite loss {len(p.rollbacks)} times (steps {p.rollbacks})")
            raise TrainError(f"training diverged: the loss became NaN/inf {len(p.rollbacks)} times (at steps "
                             f"{', '.join(map(str, p.rollbacks))}) even after lowering the learning rate; "
                             + self.objective.divergence_hint)
        bad_step, rollbacks, scale = p.step, p.rollbacks, p.lr_scale
        last = self.run.checkpoints()[-1]
        self.load(last, quiet=True)
        p.rollbacks = rollbacks
        p.lr_scale = scale * 0.5  # halved again on every retry, not the checkpoint's scale halved once more
        self.run.log(f"non-finite loss at step {bad_step}: rolled back to {last.name}, learning rates "
                     f"x{p.lr_scale:g}")
