"""One training loop for every family, with a run directory that is a complete record.

The loop names no family: what a step does, which optimisers it needs, what the grid shows and what the export
says come from the family's objective (``gancli.families.base``). The loop owns what every run shares: the run
directory, atomic checkpoints and exact resume, NaN rollback, DDP, the EMA generator, progress, metrics and evaluation.
Its parts, each a module: the run directory (``rundir``: lock, log, metrics file), the checkpoints
(``checkpoints``: save, resume, roll back, and the ``RunState`` they keep), what an objective sees (``context``), the
run's length and pace (``clock``), the EMA generator (``ema``), the watch on exploding losses (``watch``) and the
export (``runexport``); this module keeps the order of things. The parts are handed what they use and never reach
back into the loop: the clock returns the length it plans, the export reads a ``FinishedRun``.

    RUN_DIR/
      options.json        every setting, the gan version and the command line
      log.txt             what happened, in words (device, data, skipped files, checkpoints, rollbacks, the end)
      metrics.jsonl       one line per logging interval: losses, D(x), D(G(z)), V(D,G), learning rates, images/s;
                          with --eval-every, also {"event": "eval", ...} lines (FID, KID, precision/recall, coverage)
      samples/            grids from fixed latents (one column per class for conditional models), captioned with
                          their step
      progress.gif        those grids as an animation
      losses.png          over steps and epochs: the losses; D(x) and D(G(z)) with the equilibrium's 1/2; V(D,G)
                          with its optimum -log 4; the family's other stats; the learning rates
      quality.png         with --eval-every: FID, KID, precision, recall, diversity and coverage over training
      tensorboard/        with --tensorboard: the metrics rows and sample grids as TensorBoard events
      checkpoints/        step-XXXXXXXX.pt, written atomically, the last K kept
      .lock               held (flock) by the process training the run; holds its pid
      export/             zoo layout (config.json, README.md, model.safetensors): `gan sample RUN_DIR/export`

Every random draw of step s is a pure function of (seed, rank, s) or is saved in the checkpoint, and the batch order
of step s is a pure function of (seed, s): a resumed run ends with exactly the weights of an uninterrupted one.
Under ``torchrun`` the networks are wrapped in DistributedDataParallel and only rank 0 writes.
"""
from __future__ import annotations

import errno
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from gancli.data.imageio import captioned, grid_image, save_animation, save_image
from gancli.devices import describe, resolve_device
from gancli.errors import OptionError
from gancli.families import catalog
from gancli.options import LOOP, Options
from gancli.training import board, runexport
from gancli.training.checkpoints import Checkpoints, RunState
from gancli.training.clock import RunClock
from gancli.training.context import Distributed, TrainingContext
from gancli.training.ema import calibrate_ema, ema_copy, update_ema
from gancli.training.rundir import RunDir, TrainError, saved_data_path, saved_options
from gancli.training.watch import LossWatch
from gancli.version import __version__

SESSION_OPTIONS = ("data", "arch", "out", "steps", "epochs", "time", "device", "bf16", "compile", "resume",
                   "command")


def TrainOptions(data: str | None = None, out: str | None = None, arch: str | None = None, **given) -> Options:
    """A run's options: the loop's and the family's, checked. Given as ``gan train`` flags' Python names
    (``lr_g=1e-4``); a flag the family does not have is an error naming the family's own options.

    With ``resume=True`` every setting but the device defaults to the run's own (the family among them), read from
    its options.json: ``gan train --out RUN --resume`` is enough (the data too, unless given). The length does too
    unless --steps or --epochs is given: a run started for 20 epochs and resumed after a crash should not stop at the
    default 5."""
    defaults = {o.name: o.default for o in LOOP}
    out = out or defaults["out"]
    saved = saved_options(Path(out)) if given.get("resume") else {}
    arch = arch or saved.get("arch") or catalog.DEFAULT
    family = catalog.get(arch)
    if saved.get("arch") == arch:  # continue as the run was set up; only the device (and a length given) is new
        for o in family.declared():
            if given.get(o.name) is None and o.name in saved and o.name not in SESSION_OPTIONS:
                given[o.name] = saved[o.name]
        if given.get("steps") is None and given.get("epochs") is None and given.get("time") is None:
            given["steps"], given["epochs"] = saved.get("steps"), saved.get("epochs")
    if data is None and saved.get("data"):
        data = _saved_data(saved)
        if saved.get("data_b") and given.get("data_b") == saved["data_b"]:  # restored above, as it was written
            given["data_b"] = _saved_data(saved, "data_b")
    if data is None and given.get("resume"):
        if (Path(out) / "options.json").exists():
            raise TrainError(f"--resume: {Path(out) / 'options.json'} cannot be read or names no data: give the "
                             f"data, `gan train DATA --out {out} --resume`")
        raise TrainError(f"--resume: {out} holds no run to continue (no options.json); start one with "
                         f"`gan train DATA --out {out}`")
    if data is None:
        raise TrainError("give the training data: DATA... (an image folder, a .zip or MNIST IDX files), or "
                         "--resume --out RUN to continue a run")
    given.setdefault("command", shlex.join(["gan"] + sys.argv[1:]))
    spellings = {o.name: o.spelling for f in catalog.all_families().values() for o in f.declared()}
    try:
        return family.resolve_options({"data": None if data is None else str(data), "out": str(out), **given},
                                      spellings)
    except OptionError:
        raise
    except ValueError as e:
        raise TrainError(str(e)) from None


def _saved_data(saved: dict, key: str = "data") -> str:
    """A run's data, for a --resume that does not give it: the folder it was given, found from wherever the resume is
    run (a relative path is relative to the folder the run started in)."""
    path = saved_data_path(saved, key)
    if not path.exists():
        started = f" (given as {saved[key]} in {saved['started_in']})" if saved.get("started_in") and \
            not Path(saved[key]).is_absolute() else ""
        raise TrainError(f"--resume: this run's data {path}{started} is not there any more: give its new place, "
                         f"`gan train DATA --out {saved.get('out', 'RUN')} --resume`")
    return str(path)


def _check_objective(opts: Options, objective, data, world: int):
    per_step = opts.batch_size * world * objective.batches_per_step
    if min(len(d) for d in data.domains) < per_step:
        raise TrainError(f"{min(len(d) for d in data.domains)} training images is fewer than one step's "
                         f"{per_step} (batch size x processes x d-steps): lower --batch-size")
    if opts.eval_every and not objective.measurable:
        raise TrainError(f"--eval-every measures generators of images from noise; for {opts.arch} use "
                         "`gan eval` on the exported model")


class Trainer:
    """The loop: its parts (listed above) do the work, what stays here is the order of things. ``step`` and
    ``total_steps`` are the loop's own: the clock proposes a length, the loop sets it here and in the context."""

    def __init__(self, opts: Options):
        self.started = time.time()  # --time counts from here: reading the data is part of the budget
        self.opts = opts
        self.family = catalog.get(opts.arch)
        if opts.steps is not None and opts.epochs is not None:
            raise TrainError("give --steps or --epochs, not both")
        if opts.tensorboard:
            board.check_installed()
        self.out, self.dist = Path(opts.out), Distributed()
        self.device = self.dist.start(resolve_device(opts.device))
        self.run_dir = RunDir(opts, self.dist.main)
        self.lock = self.run_dir.lock
        created = self.run_dir.claim()
        try:
            self._setup(opts)
        except BaseException:
            self.run_dir.abandon(created)
            raise

    def _setup(self, opts: Options):
        resume_from = self.run_dir.resume_from()
        self.run_state = RunState()
        self.ctx = ctx = TrainingContext(opts, self.family, self.dist, self.device, self.run_dir, self.run_state)
        # the run as the command line, the benchmarks and the tests read it
        self.data, self.arch_args, self.crop, self.images = ctx.data, ctx.arch_args, ctx.crop, ctx.images
        self.conditional, self.nets, self.G = ctx.conditional, ctx.nets, ctx.nets["generator"]
        self.memory_format, self.amp, self.batches_per_epoch = ctx.memory_format, ctx.amp, ctx.batches_per_epoch
        self.take, self.noise = ctx.take, ctx.noise
        self.G_ema = ema_copy(self.G) if opts.ema else None  # before compile_nets: a copy of G's own forward
        ctx.compile_nets()
        self.objective = self.family.objective(ctx)
        _check_objective(opts, self.objective, self.data, self.dist.world)
        ctx.make_optimizers(self.objective)
        self.optimizers, self.clock = ctx.optimizers, RunClock(
            opts, self.batches_per_epoch / self.objective.batches_per_step, self.started, self.family, self.run_dir)
        self.total_steps = ctx.total_steps = self.clock.first_length()
        self.checkpointer = Checkpoints(self.run_dir, self.run_state, ctx, self.objective, self.G_ema)
        self.watch = LossWatch(self.run_state, self.warn, self.objective.divergence_hint)
        # started_at: the step this session started from
        self.monitor, self.last_eval, self.train_seconds, self.started_at = None, None, 0.0, 0
        self.board: board.TensorBoard | None = None  # --tensorboard's writer, on rank 0 while run() runs
        if resume_from:
            self.checkpointer.resume(resume_from)

    @property
    def step(self) -> int:
        return self.run_state.step

    @step.setter
    def step(self, value: int):  # the benchmarks drive train_step() themselves
        self.run_state.step = value

    @property
    def rollbacks(self) -> list[int]:
        return self.run_state.rollbacks

    @property
    def lr_scale(self) -> float:
        return self.run_state.lr_scale

    # ------------------------------------------------------------------ run directory and checkpoints
    def log(self, message: str):
        self.run_dir.log(message)

    def warn(self, message: str):
        self.run_dir.warn(message)

    def resume_command(self) -> str:
        return self.run_dir.resume_command()

    def save_checkpoint(self) -> Path:
        return self.checkpointer.save()

    def _apply_lr(self):
        self.ctx.scale_lr(self.lr_scale * self.objective.lr_factor(self.step))

    # ------------------------------------------------------------------ the step
    def train_step(self) -> dict:
        self.ctx.begin_step()
        stats = self.objective.step(self.step)
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, self.opts.ema_decay)
        return stats

    # ------------------------------------------------------------------ outputs
    @property
    def sampler(self):
        return self.G_ema if self.G_ema is not None else self.G

    def calibrate_ema(self):
        calibrate_ema(self.G_ema, self.device, self.opts.seed, self.objective.latent_dim, self.objective.num_classes)

    def write_samples(self) -> Path | None:
        if not self.dist.main:
            return None
        images, nrow = self.grid_images()
        path = self.out / "samples" / f"step-{self.step:08d}.png"
        picture = grid_image(images, nrow=nrow)
        save_image(captioned(picture, f"step {self.step}"), path)  # progress.gif's frames say their step too
        if self.board:
            self.board.grid(picture, self.step)  # TensorBoard has its own step slider: the grid as it is
        return path

    @torch.no_grad()
    def grid_images(self) -> tuple[torch.Tensor, int]:
        if self.G_ema is not None:
            self.calibrate_ema()
        with in_eval_mode(self.sampler) as G:
            return self.objective.grid(G)

    def write_progress(self):
        from PIL import Image

        from gancli.training import plots
        grids = sorted((self.out / "samples").glob("step-*.png"))
        if grids:
            frames = []
            for p in grids:
                with Image.open(p) as im:
                    frames.append(im.convert("RGB"))
            save_animation(frames, self.out / "progress.gif", fps=4)
        epochs_per_step = self.objective.batches_per_step / self.batches_per_epoch if self.batches_per_epoch else None
        rows = self.run_dir.metrics()
        if rows:  # one row (a short run) is still a figure: its points are marked
            panels = plots.training_panels(rows, self.objective.shown, self.objective.guides)
            plots.save_figure(panels, self.out / "losses.png", self.objective.title, epochs_per_step)
        evals = self.run_dir.metrics("eval")
        if evals:
            plots.save_figure(plots.quality_panels(evals), self.out / "quality.png",
                              f"{self.objective.title}: --eval-every measures", epochs_per_step)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Measure the sampler (the objective's own measures, else fixed latents judged against the training data;
        the mode-collapse alarm)."""
        # Building the judge draws weight inits from the global RNG: keep training's random stream untouched, or a
        # resumed run (which builds the judge at another step) would part from an uninterrupted one.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            with in_eval_mode(self.sampler) as G:
                row = self.objective.evaluate(G)
            if row is None:
                row = self._measure_noise_sampler()
        row = {"step": self.step, "event": "eval"} | row
        self.last_eval = row
        self.run_dir.append_metrics(row)
        if self.board:
            self.board.scalars(row)
        from gancli.quality.measures import EVAL_SUMMARY

        summary = ", ".join(f"{k} {row[k]}" for k in EVAL_SUMMARY if row.get(k) is not None) \
            or ", ".join(f"{k} {v}" for k, v in row.items() if k != "step" and isinstance(v, float))
        self.log(f"eval at step {self.step}: {summary}")
        for alarm in row["alarms"]:
            self.log(f"mode-collapse alarm at step {self.step}: {alarm}")
        return row

    def _measure_noise_sampler(self) -> dict:
        from gancli.evaluation.evaluate import TrainingMonitor

        if self.monitor is None:
            self.monitor = TrainingMonitor.for_data(self.opts.data, self.data.first, self.opts.eval_samples,
                                                    self.opts.seed, self.device, stack=self.data.stack)
            self.monitor.remember(self.run_dir.metrics("eval"))  # a resumed run keeps its best-so-far
        if self.G_ema is not None:
            self.calibrate_ema()
        with in_eval_mode(self.sampler) as G:
            return self.monitor.measure(lambda z, y: G(z.to(self.device), y.to(self.device) if y is not None else None),
                                        self.objective.latent_dim, self.objective.num_classes or None)

    def _write_metrics(self, interval: list[dict], images_per_s: float) -> dict:
        row = {"step": self.step, "epoch": self.epochs(4)}
        keys = dict.fromkeys(k for s in interval for k in s)  # a lazy term (R1) reports only on its steps
        for key in keys:
            row[key] = round(float(torch.stack([s[key] for s in interval if key in s]).float().mean()), 5)
        row |= {f"lr_{k}": opt.param_groups[0]["lr"] for k, opt in self.optimizers.items()}
        row["images_per_s"] = round(images_per_s, 1)
        self.run_dir.append_metrics(row)
        if self.board:  # made on rank 0 only
            self.board.scalars(row)
        return row

    # ------------------------------------------------------------------ the loop
    def run(self, progress=None) -> Path:
        """Train to the end and export; the run directory is unlocked however this ends."""
        try:
            return self._run(progress)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk anywhere in the run: one line, not a traceback
                raise self.run_dir.write_failed(Path(e.filename or self.out), e) from None
            raise
        finally:
            self.lock.release()

    def _run(self, progress=None) -> Path:
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.opts.tensorboard:
                self.board = board.TensorBoard(self.out / "tensorboard", self.step)
        self.dist.barrier()
        fresh = self.step == 0 and not self.run_dir.checkpoints()
        if fresh and self.dist.main:
            record = self.opts.asdict() | {"gan_version": __version__, "torch_version": torch.__version__,
                                          "device_used": describe(self.device), "processes": self.dist.world,
                                          "started_in": str(Path.cwd())}
            self.run_dir.write_options(record)
            self.run_dir.truncate_metrics(0)  # a session that died before its first checkpoint may have left lines
            self.log(f"start: {self.opts.command}")
        self.ctx.log_setup()
        if fresh:
            self.clock.check_plan(self.total_steps)
            self.save_checkpoint()  # step 0: something to roll back to
        for net in self.nets.values():
            net.train()
        self._apply_lr()
        t0, started_at, interval, seen, row = time.time(), self.step, [], 0, None
        self.started_at = started_at
        self.run_state.t0 = t0
        with _StopRequests() as stop:
            while self.step < self.total_steps:
                if stop.asked:  # only between steps: a checkpoint never holds half an update
                    self.save_checkpoint()
                    self.log(f"interrupted ({stop.asked}) at step {self.step}; checkpoint written")
                    self.ctx.release(self.objective)
                    raise KeyboardInterrupt
                self._apply_lr()
                self.clock.before_step(self.step, started_at)
                stats = self.train_step()
                self.step += 1
                seen += self.opts.batch_size * self.dist.world
                self.total_steps = self.ctx.total_steps = self.clock.after_step(self.step, started_at, self.total_steps)
                interval.append(stats)
                log_now = self.step % self.opts.log_every == 0 or self.step == self.total_steps
                if log_now or self.step % self.opts.checkpoint_every == 0:
                    # checked before anything is logged or saved, so a checkpoint never holds a diverged model
                    if not all(torch.isfinite(v).all() for s in interval for v in s.values()):
                        interval = []
                        self.checkpointer.roll_back()
                        self._apply_lr()
                        continue
                if log_now:
                    self.watch(interval)
                    row = self._write_metrics(interval, seen / max(time.time() - t0, 1e-9))
                    interval = []
                    if progress:
                        progress(self.step, self.total_steps, row)
                if self.step % self.opts.sample_every == 0 or self.step == 1 or self.clock.preview_due(t0):
                    self.write_samples()
                if self.opts.eval_every and self.dist.main and (
                        self.step % self.opts.eval_every == 0 or self.step == self.total_steps):
                    self.evaluate()
                    if progress and row is not None:
                        progress(self.step, self.total_steps, row)
                if self.step % self.opts.checkpoint_every == 0:
                    self.save_checkpoint()
        self.train_seconds = time.time() - t0
        if not (self.run_dir.ckpt_dir / f"step-{self.step:08d}.pt").exists():
            self.save_checkpoint()
        export = self.out / "export"
        if self.dist.main:
            if self.step % self.opts.sample_every:
                self.write_samples()
            self.write_progress()
            if self.board:
                self.board.close()
            export = self.export()
            self.log(f"done: {self.step} steps ({self.step - started_at} this session) in {self.train_seconds:.0f} s; "
                     f"exported to {export}")
        self.dist.barrier()
        self.ctx.release(self.objective)
        return export

    # ------------------------------------------------------------------ export
    def epochs(self, digits: int = 3) -> float:
        return round(self.step * self.objective.batches_per_step / self.batches_per_epoch, digits)

    def export(self) -> Path:
        return runexport.export(self._finished(), self.run_dir.metrics(), self.out / "export")

    def export_config(self) -> dict:
        return runexport.export_config(self._finished())

    def _finished(self) -> runexport.FinishedRun:
        return runexport.FinishedRun(
            opts=self.opts, family=self.family, objective=self.objective, data=self.data, arch_args=self.arch_args,
            crop=self.crop, nets=self.nets, G_ema=self.G_ema, device=self.device, processes=self.dist.world,
            step=self.step, epochs=self.epochs(), started_at=self.started_at, seconds=self.train_seconds,
            seconds_before=self.run_state.seconds_before)


@contextmanager
def in_eval_mode(net: torch.nn.Module):
    """``net`` in eval mode for a grid or a measurement, then back in the mode training left it in."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


class _StopRequests:
    """Ctrl-C and SIGTERM ask the loop to stop at the next step boundary; a second Ctrl-C stops at once."""

    def __init__(self):
        self.asked: str | None = None
        self._previous = {}

    def _ask(self, signum, frame):
        self.asked = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._ask)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
