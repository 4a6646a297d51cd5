"""One training loop for every family, with a run directory that is a complete record.

The loop names no family: what a step does, which optimisers it needs, what the grid shows and what the export
says come from the family's objective (``gancli.family``). The loop owns what every run shares: the run directory,
atomic checkpoints and exact resume, NaN rollback, DDP, the EMA generator, progress, metrics and evaluation.

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

import copy
import errno
import io
import json
import math
import os
import platform
import shlex
import shutil
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from gancli.version import __version__
from gancli import board, cards, catalog, latents
from gancli.data import to_model_range
from gancli.devices import describe, preferred_memory_format, resolve_device
from gancli.errors import OptionError
from gancli.imageio import atomic_write, captioned, grid_image, save_animation, save_image
from gancli.options import LOOP, Options
from gancli.pretrained import GANModel

MAX_ROLLBACKS = 3
EXPLODED = 1e4  # a finite loss this many times its value at the start (or 1) is diverging: warn, once
SESSION_OPTIONS = ("data", "arch", "out", "steps", "epochs", "device", "bf16", "resume", "command")


class TrainError(ValueError):
    pass


class _Unreadable(TrainError):
    """A checkpoint file that cannot be read (cut short, or damaged): an older one may still be."""


def TrainOptions(data: str | None = None, out: str | None = None, arch: str | None = None, **given) -> Options:
    """A run's options: the loop's and the family's, checked. Given as ``gan train`` flags' Python names
    (``lr_g=1e-4``); a flag the family does not have is an error naming the family's own options.

    With ``resume=True`` every setting but the device defaults to the run's own (the family among them), read from
    its options.json: ``gan train --out RUN --resume`` is enough (the data too, unless given). The length does too
    unless --steps or --epochs is given: a run started for 20 epochs and resumed after a crash should not stop at the
    default 5."""
    defaults = {o.name: o.default for o in LOOP}
    out = out or defaults["out"]
    saved = _saved_options(Path(out)) if given.get("resume") else {}
    arch = arch or saved.get("arch") or defaults["arch"]
    family = catalog.get(arch)
    if saved.get("arch") == arch:  # continue as the run was set up; only the device (and a length given) is new
        for o in family.declared():
            if given.get(o.name) is None and o.name in saved and o.name not in SESSION_OPTIONS:
                given[o.name] = saved[o.name]
        if given.get("steps") is None and given.get("epochs") is None:
            given["steps"], given["epochs"] = saved.get("steps"), saved.get("epochs")
    if data is None and saved.get("data"):
        data = _saved_data(saved)
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


def _saved_data(saved: dict) -> str:
    """A run's data, for a --resume that does not give it: as it was given, which is only right from the folder
    the run started in when it was a relative path."""
    paths = [saved[k] for k in ("data", "data_b") if saved.get(k)]
    started = saved.get("started_in")
    if started and Path.cwd() != Path(started) and any(not Path(p).is_absolute() for p in paths):
        raise TrainError(f"--resume: this run's data ({' '.join(paths)}) is relative to {started}: resume from "
                         "there, or give the data")
    return saved["data"]


def _saved_options(run: Path) -> dict:
    try:
        saved = json.loads((run / "options.json").read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def start(self, device: torch.device) -> torch.device:
        if not self.active:
            return device
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def barrier(self):
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def stop(self):
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class RunLock:
    """One process trains a run directory at a time. ``flock`` on RUN/.lock: the kernel drops it when its holder
    dies, SIGKILL included, so a crashed run never leaves its directory locked. The file names the holder (pid,
    start time, command) for the error the next process shows; under torchrun only rank 0 takes it."""

    NAME = ".lock"

    def __init__(self, run: Path):
        self.path = run / self.NAME
        self._file = None

    def acquire(self, command: str):
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock, as before
            return
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                f.close()
                raise
            f.seek(0)
            holder = f.read().strip() or "a process that has not yet written its pid"
            f.close()
            raise TrainError(f"{self.path.parent} is being trained by another process ({holder}): wait for it to "
                             "end or stop it, or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}: {command}\n")
        f.flush()
        self._file = f

    def release(self):
        if self._file is not None:
            self._file.close()  # closing drops the flock; the file stays (deleting it would race a newcomer)
            self._file = None


class Trainer:
    def __init__(self, opts: Options):
        self.opts = opts
        self.family = catalog.get(opts.arch)
        if opts.steps is not None and opts.epochs is not None:
            raise TrainError("give --steps or --epochs, not both")
        if opts.tensorboard:
            board.check_installed()
        self.out = Path(opts.out)
        self.dist = Distributed()
        self.device = self.dist.start(resolve_device(opts.device))
        self.ckpt_dir = self.out / "checkpoints"
        self.lock = RunLock(self.out)
        created = self._claim_run_dir()
        try:
            self._setup(opts)
        except BaseException:
            self.lock.release()
            if created:  # a run that never started leaves no empty folder behind, nor the runs/ made for it
                (self.out / RunLock.NAME).unlink(missing_ok=True)
                for folder in self.created:
                    try:
                        folder.rmdir()
                    except OSError:
                        break
            raise

    def _setup(self, opts: Options):
        resume_from = self._check_run_dir()
        self._build(opts)
        self.objective = self.family.objective(self)
        per_step = opts.batch_size * self.dist.world * self.objective.batches_per_step
        if min(len(d) for d in self.data.domains) < per_step:
            raise TrainError(f"{min(len(d) for d in self.data.domains)} training images is fewer than one step's "
                             f"{per_step} (batch size x processes x d-steps): lower --batch-size")
        if opts.eval_every and not self.objective.measurable:
            raise TrainError(f"--eval-every measures generators of images from noise; for {opts.arch} use "
                             "`gan eval` on the exported model")
        self.optimizers, self.base_lr = {}, {}
        for name, (params, lr, betas) in self.objective.optimizers().items():
            self.optimizers[name] = torch.optim.Adam(params, lr=lr, betas=betas)
            self.base_lr[name] = lr
        self.lr_scale = 1.0
        self.total_steps = opts.steps or max(1, math.ceil((opts.epochs or 5) * self.batches_per_epoch
                                                          / self.objective.batches_per_step))
        self.step = 0
        self.rollbacks: list[int] = []
        self.loss_start: dict[str, float] | None = None  # each loss at step 1, the scale an explosion is judged by
        self.exploded = False
        self.monitor, self.last_eval = None, None
        self.board: board.TensorBoard | None = None  # --tensorboard's writer, on rank 0 while run() runs
        self.train_seconds = 0.0
        self.started_at = 0  # the step this session started from
        self.seconds_before, self.t0 = 0.0, None  # training time of earlier sessions of this run, and this one's start
        if resume_from:
            self._resume(resume_from)

    def _build(self, opts: Options):
        """The family's data and networks, placed on the device (and wrapped for DDP), and the EMA copy of G."""
        try:
            self.data = self.family.load_data(opts)
            self.arch_args = self.family.arch_args(opts, self.data)
            torch.manual_seed(opts.seed)  # weight init, dropout and the gradient penalty's mixing: all from the seed
            nets = GANModel.build({"architecture": opts.arch, "arch_args": self.arch_args})
        except TrainError:
            raise
        except ValueError as e:
            raise TrainError(str(e)) from None
        self.crop = self.data.crop
        self.conditional = self.family.is_conditional(self.arch_args)
        self.images = [self.place_data(d.images) for d in self.data.domains]
        self.batches_per_epoch = len(self.data) // (opts.batch_size * self.dist.world)
        self.memory_format = preferred_memory_format(nets["generator"], self.device)
        self.nets = {k: net.to(self.device, memory_format=self.memory_format) for k, net in nets.items()}
        self.G = self.nets["generator"]
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if opts.ema else None
        self.train_nets = dict(self.nets)
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Batch-norm running statistics stay per process (they only matter for sampling, and rank 0's are
            # saved); broadcasting them on every forward breaks D's separate real and fake passes.
            self.train_nets = {k: DDP(net, device_ids=ids, broadcast_buffers=False) for k, net in self.nets.items()}
        # on by default on CUDA; on the CPU only when asked for: 1.6-1.75x here (avx512_bf16), but it lowered recall
        # in a three-seed check against fp32 (bench/RESULTS.md)
        self.amp = opts.bf16 if opts.bf16 is not None else self.device.type == "cuda"
        if self.amp and self.device.type not in ("cuda", "cpu"):
            raise TrainError(f"--bf16 autocast is for CUDA devices and the CPU, not {self.device.type}")

    @property
    def D(self):
        return self.nets.get("discriminator")

    def place_data(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 data on the GPU when it fits in a third of the free memory, else in pinned host memory."""
        self.data_device = self.device
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.numel() > free // 3:
                self.data_device = torch.device("cpu")
                return images.pin_memory()
        return images.to(self.data_device)

    # ------------------------------------------------------------------ run directory
    def _claim_run_dir(self) -> bool:
        """Lock the run directory (rank 0), creating it for a new run; True when it was created here. The lock
        comes first: what the directory holds is only looked at, and cleaned, by the process that trains it."""
        if self.opts.resume and not (self.out / "options.json").exists() and not self.checkpoints():
            raise TrainError(f"--resume: {self.out} has no checkpoint to resume from")
        if not self.dist.main:
            return False
        self.created = [d for d in (self.out, *self.out.parents) if not d.exists()]  # runs/ too, for `--out runs/x`
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock.acquire(self.opts.command)
        self._remove_leftovers()
        return bool(self.created)

    def _remove_leftovers(self):
        """Temporary files of writes cut short by a crash (``atomic_write``'s ``.NAME.tmpPID``): the files they
        were to replace are intact, and no one else writes here while we hold the lock."""
        for folder in (self.out, self.ckpt_dir, self.out / "samples", self.out / "export"):
            for tmp in sorted(folder.glob(".*.tmp[0-9]*")) if folder.is_dir() else []:
                tmp.unlink(missing_ok=True)
                self.log(f"removed {tmp.relative_to(self.out)}, left by a write that a crash cut short")

    def _check_run_dir(self) -> list[Path]:
        """The checkpoints to resume from, newest first ([] for a run that starts at step 0)."""
        existing = self.checkpoints()
        if not existing:
            if (self.out / "options.json").exists():  # its last session died before its first checkpoint
                self.warn(f"{self.out} has no checkpoint yet (its last session stopped before writing one): "
                          "starting the run from step 0")
            return []
        if not self.opts.resume:
            raise TrainError(f"{self.out} already holds a training run: add --resume to continue it, "
                             "or choose another --out")
        saved = _saved_options(self.out)
        for key in self.opts.resume_keys():
            if key in saved and saved[key] != getattr(self.opts, key):
                raise TrainError(f"--resume: {key} was {saved[key]!r} in this run, not "
                                 f"{getattr(self.opts, key)!r}; resume with the run's own settings")
        return existing[::-1]

    def resume_command(self) -> str:
        """The command that continues this run, ready to paste: the run's settings come from its options.json,
        so only the data, the directory and this session's length and device need saying."""
        words = ["gan", "train", str(self.opts.data)]
        if self.opts.get("data_b"):
            words.append(str(self.opts.data_b))
        words += ["--out", str(self.out)]
        for name in ("steps", "epochs"):
            if self.opts.get(name) is not None:
                words += [f"--{name}", str(self.opts.get(name))]
        if self.opts.device != "auto":
            words += ["--device", self.opts.device]
        if self.opts.bf16 is not None:
            words.append("--bf16" if self.opts.bf16 else "--no-bf16")
        return shlex.join(words + ["--resume"])

    def _stop_distributed(self):
        """Leave the process group. The DDP wrappers hold it and its gloo threads; left for the interpreter's exit
        to free, they abort the process ("terminate called without an active exception", SIGABRT) and torchrun
        calls a finished run failed. So they are unwrapped everywhere and freed first, while Python is alive."""
        if not self.dist.active:
            return
        wrapped = {id(w): w.module for w in self.train_nets.values() if hasattr(w, "module")}
        holders = [self, self.objective, *getattr(self.objective, "terms", ())]
        for holder in holders:
            for key, value in list(vars(holder).items()):
                if id(value) in wrapped:
                    setattr(holder, key, wrapped[id(value)])
        self.train_nets = dict(self.nets)
        import gc

        gc.collect()
        self.dist.stop()

    def warn(self, message: str):
        """Something the user should know now, not only in log.txt."""
        if self.dist.main:
            self.log(f"warning: {message}")
            print(f"warning: {message}", file=sys.stderr, flush=True)

    def checkpoints(self) -> list[Path]:
        return sorted(self.ckpt_dir.glob("step-*.pt")) if self.ckpt_dir.is_dir() else []

    def log(self, message: str):
        if self.dist.main:
            with open(self.out / "log.txt", "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {"step": self.step, "networks": {k: net.state_dict() for k, net in self.nets.items()},
                 "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()}, "rng": rng,
                 "lr_scale": self.lr_scale, "rollbacks": torch.tensor(self.rollbacks, dtype=torch.int64),
                 "seconds": self.seconds_before + (time.time() - self.t0 if self.t0 else 0.0),
                 "arch": self.opts.arch, "arch_args": self.arch_args, "objective": self.objective.state()}
        if self.loss_start is not None:
            state["loss_start"] = self.loss_start
        if self.G_ema is not None:
            state["G_ema"] = self.G_ema.state_dict()
        return state

    def save_checkpoint(self) -> Path:
        path = self.ckpt_dir / f"step-{self.step:08d}.pt"
        if self.dist.main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            # Serialised in memory first: a failed write is then a plain OSError of ours (torch's zip writer
            # buries it under "unexpected pos"), and we know how much room the checkpoint needs.
            buffer = io.BytesIO()
            torch.save(self._state(), buffer)
            data = buffer.getbuffer()
            try:
                atomic_write(path, lambda f: f.write(data))
            except OSError as e:
                raise self._write_failed(path, e, len(data)) from None
            for old in self.checkpoints()[:-self.opts.keep_checkpoints]:
                old.unlink()
            self.log(f"checkpoint {path.name}")
        return path

    def _write_failed(self, path: Path, e: OSError, needed: int | None = None) -> TrainError:
        """A write of the run that failed (a full disk, most often), as one line: the file, the room it needs, the
        checkpoint that is still intact, and the command that continues the run once there is room."""
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        what = "no space left on the device" if full else (e.strerror or str(e))
        what += "" if str(path) in what else f" writing {path}"
        room = ""
        if full:
            free = shutil.disk_usage(next(p for p in (path, *path.parents) if p.exists())).free
            room = (f" (it needs {_size(needed)}; {_size(free)} free)" if needed else f" ({_size(free)} free)")
        done = [p for p in self.checkpoints() if p != path]
        kept = f"the last checkpoint, {done[-1].name}, is intact" if done else "no checkpoint was written yet"
        message = (f"{what}{room}; {kept}: {'free some space' if full else 'fix that'}, then "
                   f"continue with `{self.resume_command()}`")
        try:
            self.log(f"stopped: {message}")
        except OSError:  # the log lives on the same full disk
            pass
        return TrainError(message)

    def _resume(self, candidates: list[Path]):
        """Continue from the newest checkpoint that can be read. One that cannot (a crash or a bad disk damaged
        it) is renamed ``.corrupt``, kept rather than deleted, and said; none readable is an error."""
        unreadable = []
        for path in candidates:
            try:
                self._load_checkpoint(path)
            except _Unreadable as e:
                unreadable.append((path, str(e)))
                continue
            for bad, why in unreadable:
                if self.dist.main:
                    bad.rename(bad.with_name(bad.name + ".corrupt"))
                self.warn(f"{why}; kept it as {bad.name}.corrupt and resumed from {path.name} (step {self.step})")
            return
        raise TrainError(f"none of the {len(candidates)} checkpoint(s) in {self.ckpt_dir} can be read: "
                         + "; ".join(why for _, why in unreadable))

    def _load_checkpoint(self, path: Path, quiet: bool = False):
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)  # never unpickle objects
        except Exception as e:  # a checkpoint cut short by a crash is reported, not a traceback
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise _Unreadable(f"checkpoint {path} cannot be read ({why})") from None
        if not isinstance(state, dict) or "step" not in state:
            raise _Unreadable(f"checkpoint {path} is not one of ours")
        if state.get("arch_args") != self.arch_args:
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
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        self.step = int(state["step"])
        self.seconds_before = float(state.get("seconds", 0.0))
        self.objective.load_state(state.get("objective", {}))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.rollbacks = [int(s) for s in state.get("rollbacks", torch.zeros(0, dtype=torch.int64)).tolist()]
        self.loss_start = state.get("loss_start")
        if not quiet:
            if self.dist.main:
                self._truncate_metrics(self.step)
            self.log(f"resumed from {path.name} at step {self.step}")

    def _truncate_metrics(self, step: int):
        """metrics.jsonl up to ``step``, where the run continues. A line a crash cut off mid-write is dropped
        (and said): it would otherwise block every later reading of the file."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return
        keep, broken = [], []
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                broken.append(n)
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), (int, float)) and row["step"] <= step:
                keep.append(line)
        atomic_write(path, lambda f: f.write("".join(l + "\n" for l in keep).encode()))
        if broken:
            self.log(f"metrics.jsonl: dropped {len(broken)} unreadable line(s) (line {', '.join(map(str, broken))};"
                     " a write cut off by a crash)")

    def _roll_back(self):
        """A non-finite loss: return to the last checkpoint with half the learning rates, or give up."""
        self.rollbacks.append(self.step)
        if len(self.rollbacks) > MAX_ROLLBACKS:
            self.log(f"stopped: non-finite loss {len(self.rollbacks)} times (steps {self.rollbacks})")
            raise TrainError(f"training diverged: the loss became NaN/inf {len(self.rollbacks)} times (at steps "
                             f"{', '.join(map(str, self.rollbacks))}) even after lowering the learning rate; "
                             + self.objective.divergence_hint)
        bad_step, rollbacks, scale = self.step, self.rollbacks, self.lr_scale
        last = self.checkpoints()[-1]
        self._load_checkpoint(last, quiet=True)
        self.rollbacks = rollbacks
        self.lr_scale = scale * 0.5  # halved again on every retry, not the checkpoint's scale halved once more
        self.log(f"non-finite loss at step {bad_step}: rolled back to {last.name}, learning rates x{self.lr_scale:g}")

    def _watch_losses(self, interval: list[dict]):
        """Warn once when a loss explodes but stays finite (a learning rate far too high: G loss 2e9), which the
        NaN rollback does not see. Judged against each loss at step 1, where its scale is the problem's."""
        if self.exploded or not interval:
            return
        first_step = self.step - len(interval) + 1
        names = [k for k in interval[0] if k.startswith("loss")]
        if self.loss_start is None:  # step 1 (or, from an older checkpoint, this session's first step)
            self.loss_start = {k: float(interval[0][k].float().mean()) for k in names}
            self.loss_start = {k: v for k, v in self.loss_start.items() if math.isfinite(v)}
        for k in names:
            if k not in self.loss_start:
                continue
            at = [(first_step + i, s[k]) for i, s in enumerate(interval) if k in s]
            limit = EXPLODED * max(1.0, abs(self.loss_start[k]))
            over = (torch.stack([v.float().mean() for _, v in at]).abs() > limit).nonzero()
            if len(over):
                step, value = at[int(over[0])]
                self.exploded = True
                self.warn(f"{k} reached {float(value.float().mean()):.3g} at step {step} (it was "
                          f"{self.loss_start[k]:.3g} at the start): training is diverging; "
                          + self.objective.divergence_hint)
                return

    def _apply_lr(self):
        factor = self.lr_scale * self.objective.lr_factor(self.step)
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr[name] * factor

    # ------------------------------------------------------------------ what objectives call
    def take(self, images: torch.Tensor, order_seed: int, aug_seed: int, index: int):
        """This process's share of batch ``index`` from ``images``, cropped, mirrored, in [-1, 1]; and its indices.
        A data set shorter than an epoch of another (CycleGAN's smaller domain) wraps around."""
        world, b = self.dist.world, self.opts.batch_size
        epoch, k = divmod(index, self.batches_per_epoch)
        start = (k * world + self.dist.rank) * b
        idx = self.epoch_order(len(images), order_seed, epoch)[(start + torch.arange(b)) % len(images)]
        x = to_model_range(images[idx.to(images.device)].to(self.device, non_blocking=True))
        aug = torch.Generator().manual_seed(latents._mix(aug_seed, index * world + self.dist.rank))
        room = x.shape[-1] - self.crop
        if room:
            offsets = torch.randint(0, room + 1, (len(x), 2), generator=aug).tolist() if self.opts.random_crop \
                else [(room // 2, room // 2)] * len(x)
            x = torch.stack([img[:, i:i + self.crop, j:j + self.crop] for img, (i, j) in zip(x, offsets)])
        if self.opts.mirror:
            flip = (torch.rand(len(x), generator=aug) < 0.5).to(self.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x.contiguous(memory_format=self.memory_format), idx

    def epoch_order(self, n: int, seed: int, epoch: int) -> torch.Tensor:
        """The data order of an epoch, a function of (seed, epoch); cached, since every step of the epoch needs it."""
        cache = self.__dict__.setdefault("_orders", {})
        key = (n, seed, epoch)
        if key not in cache:
            if len(cache) >= 4:
                cache.clear()
            g = torch.Generator().manual_seed(latents._mix(seed, 1_000_003 + epoch))
            cache[key] = torch.randperm(n, generator=g)
        return cache[key]

    def noise(self, index: int, n: int, dim: int) -> torch.Tensor:
        """Latents for batch ``index`` of this process: a pure function of (seed, index, rank)."""
        g = torch.Generator(self.device).manual_seed(latents._mix(self.opts.seed + 1, index * self.dist.world
                                                                  + self.dist.rank))
        return torch.randn(n, dim, device=self.device, generator=g)

    def optimize(self, name: str, loss: torch.Tensor):
        """One update of the optimiser ``name`` on ``loss``."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
        if self.dist.active or not params:  # DDP's reducer waits for every parameter its forward saw
            loss.backward()
        else:
            # Only this optimiser's gradients: the others' would be thrown away by their own zero_grad before any
            # step reads them. In G's step that skips D's weight gradients (~10% of a DCGAN step on the CPU).
            loss.backward(inputs=params)
        opt.step()

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()

    # ------------------------------------------------------------------ the step
    def train_step(self) -> dict:
        stats = self.objective.step(self.step)
        if self.G_ema is not None:
            self._update_ema()
        return stats

    @torch.no_grad()
    def _update_ema(self):
        """Parameters averaged; buffers (StyleGAN's average w) copied. Batch-norm statistics of the average are
        measured afresh before it samples (``calibrate_ema``)."""
        decay = self.opts.ema_decay
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1.0 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ outputs
    @property
    def sampler(self):
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def calibrate_ema(self, batches: int = 50, batch_size: int = 256):
        """Batch-norm statistics for the averaged weights ("precise BN"): the live G's running statistics were
        measured on other weights, and using them blurs the EMA generator's samples."""
        norms = [m for m in self.G_ema.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over all calibration batches
        self.G_ema.train()
        g = torch.Generator(self.device).manual_seed(latents._mix(self.opts.seed, 2))
        classes = self.objective.num_classes
        for _ in range(batches):
            z = torch.randn(batch_size, self.objective.latent_dim, device=self.device, generator=g)
            y = torch.arange(batch_size, device=self.device) % classes if classes else None
            self.G_ema(z, y)
        for m in norms:
            m.momentum = 0.1
        self.G_ema.eval()

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
        G, was_training = self.sampler, self.sampler.training
        G.eval()
        images, nrow = self.objective.grid(G)
        G.train(was_training)
        return images, nrow

    def write_progress(self):
        from PIL import Image

        from gancli import plots

        grids = sorted((self.out / "samples").glob("step-*.png"))
        if grids:
            frames = []
            for p in grids:
                with Image.open(p) as im:
                    frames.append(im.convert("RGB"))
            save_animation(frames, self.out / "progress.gif", fps=4)
        epochs_per_step = self.objective.batches_per_step / self.batches_per_epoch if self.batches_per_epoch else None
        rows = self._metrics()
        if rows:  # one row (a short run) is still a figure: its points are marked
            panels = plots.training_panels(rows, self.objective.shown, self.objective.guides)
            plots.save_figure(panels, self.out / "losses.png", self.objective.title, epochs_per_step)
        evals = self._metrics("eval")
        if evals:
            plots.save_figure(plots.quality_panels(evals), self.out / "quality.png",
                              f"{self.objective.title}: --eval-every measures", epochs_per_step)

    def _metrics(self, event: str | None = None) -> list[dict]:
        """The training rows of metrics.jsonl, or those of one ``event`` ("eval")."""
        path = self.out / "metrics.jsonl"
        rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
        return [r for r in rows if r.get("event") == event]

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Measure the sampler (the objective's own measures, else fixed latents judged against the training data;
        the mode-collapse alarm)."""
        # Building the judge draws weight inits from the global RNG: keep training's random stream untouched, or a
        # resumed run (which builds the judge at another step) would part from an uninterrupted one.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            G, was_training = self.sampler, self.sampler.training
            G.eval()
            row = self.objective.evaluate(G)
            G.train(was_training)
            if row is None:
                row = self._measure_noise_sampler()
        row = {"step": self.step, "event": "eval"} | row
        self.last_eval = row
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.board:
            self.board.scalars(row)
        summary = ", ".join(f"{k} {row[k]}" for k in ("fid", "kid", "precision", "recall", "classes_covered",
                                                      "modes_covered", "diversity") if row.get(k) is not None) \
            or ", ".join(f"{k} {v}" for k, v in row.items() if k != "step" and isinstance(v, float))
        self.log(f"eval at step {self.step}: {summary}")
        for alarm in row["alarms"]:
            self.log(f"mode-collapse alarm at step {self.step}: {alarm}")
        return row

    def _measure_noise_sampler(self) -> dict:
        from gancli.evaluate import TrainingMonitor

        if self.monitor is None:
            self.monitor = TrainingMonitor.for_data(self.opts.data, self.data.first, self.opts.eval_samples,
                                                    self.opts.seed, self.device, stack=self.data.stack)
            self.monitor.remember(self._metrics("eval"))  # a resumed run keeps its best-so-far
        if self.G_ema is not None:
            self.calibrate_ema()
        G, was_training = self.sampler, self.sampler.training
        G.eval()
        row = self.monitor.measure(lambda z, y: G(z.to(self.device), y.to(self.device) if y is not None else None),
                                   self.objective.latent_dim, self.objective.num_classes or None)
        G.train(was_training)
        return row

    def _write_metrics(self, interval: list[dict], images_per_s: float) -> dict:
        row = {"step": self.step, "epoch": self.epochs(4)}
        keys = dict.fromkeys(k for s in interval for k in s)  # a lazy term (R1) reports only on its steps
        for key in keys:
            row[key] = round(float(torch.stack([s[key] for s in interval if key in s]).float().mean()), 5)
        row |= {f"lr_{k}": opt.param_groups[0]["lr"] for k, opt in self.optimizers.items()}
        row["images_per_s"] = round(images_per_s, 1)
        if self.dist.main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if self.board:
                self.board.scalars(row)
        return row

    # ------------------------------------------------------------------ the loop
    def run(self, progress=None) -> Path:
        """Train to the end and export; the run directory is unlocked however this ends."""
        try:
            return self._run(progress)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk anywhere in the run: one line, not a traceback
                raise self._write_failed(Path(e.filename or self.out), e) from None
            raise
        finally:
            self.lock.release()

    def _run(self, progress=None) -> Path:
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.opts.tensorboard:
                self.board = board.TensorBoard(self.out / "tensorboard", self.step)
        self.dist.barrier()
        fresh = self.step == 0 and not self.checkpoints()
        if fresh and self.dist.main:
            record = self.opts.asdict() | {"gan_version": __version__, "torch_version": torch.__version__,
                                          "device_used": describe(self.device), "processes": self.dist.world,
                                          "started_in": str(Path.cwd())}
            atomic_write(self.out / "options.json", lambda f: f.write(json.dumps(record, indent=2).encode()))
            self._truncate_metrics(0)  # a session that died before its first checkpoint may have left lines
            self.log(f"start: {self.opts.command}")
        self.log(f"device {describe(self.device)} x{self.dist.world}; data {self.data.source}: {len(self.data)} images "
                 f"{self.data.channels}x{self.crop}x{self.crop}"
                 + (f", {len(self.data.class_names)} classes" if self.conditional else "")
                 + f"; {self.batches_per_epoch} batches per epoch; {self.total_steps} steps"
                 + ("; bf16 autocast" if self.amp else "")
                 + (f"; data kept in host memory ({sum(x.numel() for x in self.images) / 2**30:.1f} GiB)"
                    if self.data_device != self.device else ""))
        for note in (n for d in self.data.domains for n in d.notes):
            self.log(note)
        for f, why in self.data.skipped:
            self.log(f"skipped {f}: {why}")
        if self.data.skipped:
            self.log(f"skipped {len(self.data.skipped)} file(s), unreadable or far smaller than the rest")
        if fresh:
            self.save_checkpoint()  # step 0: something to roll back to
        for net in self.nets.values():
            net.train()
        self._apply_lr()
        t0, started_at, interval, seen, row = time.time(), self.step, [], 0, None
        self.started_at = started_at
        self.t0 = t0
        with _StopRequests() as stop:
            while self.step < self.total_steps:
                if stop.asked:  # only between steps: a checkpoint never holds half an update
                    self.save_checkpoint()
                    self.log(f"interrupted ({stop.asked}) at step {self.step}; checkpoint written")
                    self._stop_distributed()
                    raise KeyboardInterrupt
                self._apply_lr()
                stats = self.train_step()
                self.step += 1
                seen += self.opts.batch_size * self.dist.world
                interval.append(stats)
                log_now = self.step % self.opts.log_every == 0 or self.step == self.total_steps
                if log_now or self.step % self.opts.checkpoint_every == 0:
                    # checked before anything is logged or saved, so a checkpoint never holds a diverged model
                    if not all(torch.isfinite(v).all() for s in interval for v in s.values()):
                        interval = []
                        self._roll_back()
                        self._apply_lr()
                        continue
                if log_now:
                    self._watch_losses(interval)
                    row = self._write_metrics(interval, seen / max(time.time() - t0, 1e-9))
                    interval = []
                    if progress:
                        progress(self.step, self.total_steps, row)
                if self.step % self.opts.sample_every == 0 or self.step == 1:
                    self.write_samples()
                if self.opts.eval_every and self.dist.main and (
                        self.step % self.opts.eval_every == 0 or self.step == self.total_steps):
                    self.evaluate()
                    if progress and row is not None:
                        progress(self.step, self.total_steps, row)
                if self.step % self.opts.checkpoint_every == 0:
                    self.save_checkpoint()
        self.train_seconds = time.time() - t0
        if not (self.ckpt_dir / f"step-{self.step:08d}.pt").exists():
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
        self._stop_distributed()
        return export

    # ------------------------------------------------------------------ export
    def epochs(self, digits: int = 3) -> float:
        return round(self.step * self.objective.batches_per_step / self.batches_per_epoch, digits)

    def export(self) -> Path:
        config = self.export_config()
        if self.G_ema is not None:
            self.calibrate_ema()
        keep = self.family.exported
        others = {k: net for k, net in self.nets.items() if k in keep and k not in ("generator", "discriminator")}
        model = GANModel(config, copy.deepcopy(self.sampler).float(),
                         self.D if "discriminator" in keep else None, device=self.device, others=others)
        # The card's "Use" commands name this folder: the model has no zoo name until it is published as one
        card = cards.model_card(config, self._last_row(), where=shlex.quote(str(self.out / "export")))
        return model.save_pretrained(self.out / "export", card=card,
                                     dtype=self.objective.export_dtype,
                                     max_shard_bytes=self.objective.export_shard_bytes)

    def _last_row(self) -> dict:
        rows = self._metrics()
        return rows[-1] if rows else {}

    def export_config(self) -> dict:
        extra = self.objective.export_config()
        training = self.training_record() | extra.pop("training", {})
        return {"gan_version": __version__,
                "name": self.opts.name or f"{self.opts.arch}-{self.data.dataset}",
                "architecture": self.opts.arch, "arch_args": self.arch_args, "task": self.family.task,
                "latent_dim": self.objective.latent_dim, "image_size": self.crop,
                "channels": self.data.channels, "class_names": None, "dataset": self.data.dataset} \
            | extra | {"training": training}

    def training_record(self) -> dict:
        resumed = self.seconds_before > 0 or self.started_at > 0
        command = self.family.train_command(self.opts.asdict()) if resumed else self.opts.command
        return {"command": command, "steps": self.step, "batch_size": self.opts.batch_size,
                "processes": self.dist.world, "epochs": self.epochs(), **self.objective.record(),
                "ema": self.opts.ema_decay if self.opts.ema else None, "seed": self.opts.seed,
                "device": describe(self.device), "seconds": round(self.seconds_before + self.train_seconds),
                "seconds_this_session": round(self.train_seconds), "torch": torch.__version__,
                "platform": platform.platform()}


def _size(n: int) -> str:
    return next(f"{n / 2**k:.1f} {unit}" for k, unit in ((30, "GB"), (20, "MB"), (10, "KB"), (0, "B")) if n >= 2**k
                or unit == "B")


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
