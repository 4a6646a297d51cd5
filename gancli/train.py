"""One training loop for every GAN family, with a run directory that is a complete record.

    RUN_DIR/
      options.json        every setting, the gan version and the command line
      log.txt             what happened, in words (device, data, skipped files, checkpoints, rollbacks, the end)
      metrics.jsonl       one line per logging interval: losses, D(x), D(G(z)), V(D,G), learning rates, images/s;
                          with --eval-every, also {"event": "eval", ...} lines (FID, KID, precision/recall, coverage)
      samples/            grids from fixed latents (one column per class for conditional models)
      progress.gif        those grids as an animation
      losses.png          the losses and D outputs over training
      quality.png         with --eval-every: precision, recall, diversity and coverage over training
      checkpoints/        step-XXXXXXXX.pt, written atomically, the last K kept
      export/             zoo layout (config.json, README.md, model.safetensors): `gan sample RUN_DIR/export`

Every random draw of step s is a pure function of (seed, rank, s) or is saved in the checkpoint, and the batch order
of step s is a pure function of (seed, s): a resumed run ends with exactly the weights of an uninterrupted one.
Under ``torchrun`` the networks are wrapped in DistributedDataParallel and only rank 0 writes.
"""
from __future__ import annotations

import copy
import json
import math
import os
import platform
import shlex
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import gancli
from gancli import latents, losses
from gancli.data import ImageData, load_data, to_model_range
from gancli.devices import describe, preferred_memory_format, resolve_device
from gancli.imageio import atomic_write, grid_image, line_plot, save_animation, save_image
from gancli.pretrained import GANModel
from gancli.registry import build, get_architecture

GRID_SAMPLES = 64
MAX_ROLLBACKS = 3


class TrainError(ValueError):
    pass


@dataclass
class TrainOptions:
    data: str
    out: str
    arch: str = "dcgan"
    data_b: str | None = None
    conditional: bool = False
    steps: int | None = None
    epochs: float | None = None
    batch_size: int | None = None
    seed: int = 0
    loss: str | None = None
    d_steps: int = 1
    gp_weight: float = 10.0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema: float | None = None
    latent_dim: int = 100
    g_width: int | None = None
    d_width: int | None = None
    size: int | None = None
    channels: int | None = None
    mirror: bool | None = None
    random_crop: bool | None = None
    domains: str | None = None
    n_blocks: int = 9
    cycle_weight: float = 10.0
    identity_weight: float = 0.5
    pool_size: int = 50
    bf16: bool | None = None
    sample_every: int = 500
    eval_every: int | None = None
    eval_samples: int = 2000
    stack: int | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    device: str = "auto"
    name: str | None = None
    resume: bool = False
    command: str = field(default_factory=lambda: shlex.join(["gan"] + sys.argv[1:]))

    def __post_init__(self):
        # Per-family defaults: the CycleGAN paper's settings, or DCGAN's
        translation = self.arch == "cyclegan"
        if self.loss is None:
            self.loss = "lsgan" if translation else "ns"
        if self.batch_size is None:
            self.batch_size = 1 if translation else 64
        if self.mirror is None:
            self.mirror = translation
        if self.random_crop is None:
            self.random_crop = translation

    def validate(self):
        get_architecture(self.arch)
        if self.data_b is not None and self.arch != "cyclegan":
            raise TrainError(f"a second data folder is for --arch cyclegan (unpaired A and B), not {self.arch}")
        if self.loss not in losses.LOSSES:
            raise TrainError(f"unknown loss {self.loss!r}: use one of {', '.join(losses.LOSSES)}")
        if self.steps is not None and self.epochs is not None:
            raise TrainError("give --steps or --epochs, not both")
        for name in ("batch_size", "sample_every", "checkpoint_every", "keep_checkpoints", "log_every", "latent_dim",
                     "d_steps"):
            if getattr(self, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be at least 1")
        if (self.steps is not None and self.steps < 1) or (self.epochs is not None and self.epochs <= 0):
            raise TrainError("--steps / --epochs must be positive")
        if self.eval_every is not None and self.eval_every < 1:
            raise TrainError("--eval-every must be at least 1")
        if self.eval_every is not None and self.arch == "cyclegan":
            raise TrainError("--eval-every measures generators of images from noise; for cyclegan use `gan eval` "
                             "on the exported model")
        if self.eval_samples < 100:
            raise TrainError("--eval-samples must be at least 100")
        if self.stack is not None and (self.stack != 3 or self.arch == "cyclegan" or self.is_conditional):
            raise TrainError("--stack 3 (Stacked-MNIST) is for unconditional models of MNIST-style digits")
        if self.channels not in (None, 1, 3):
            raise TrainError("--channels must be 1 or 3")
        if self.ema is not None and not 0 < self.ema < 1:
            raise TrainError("--ema must be a decay between 0 and 1, e.g. 0.999")
        if min(self.lr_g, self.lr_d) <= 0:
            raise TrainError("learning rates must be positive")

    @property
    def is_conditional(self) -> bool:
        return self.conditional or get_architecture(self.arch).task == "conditional"


def arch_arguments(opts: TrainOptions, data: ImageData) -> dict:
    args = {"latent_dim": opts.latent_dim, "image_size": opts.size or data.image_size, "channels": data.channels}
    if opts.is_conditional:
        if data.labels is None:
            raise TrainError(f"a conditional model needs labelled data: put each class's images in its own "
                             f"sub-folder of {opts.data}")
        args["num_classes"] = len(data.class_names)
    if opts.arch in ("dcgan", "acgan"):
        args |= {"g_width": opts.g_width or 64, "d_width": opts.d_width or 64}
        if opts.loss == "wgan-gp":
            args["d_norm"] = "layer"  # the gradient penalty is per sample: batch norm in the critic breaks it
    elif opts.g_width or opts.d_width:
        raise TrainError(f"--g-width / --d-width apply to dcgan and acgan, not {opts.arch}")
    return args


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


class Trainer:
    def __init__(self, opts: TrainOptions):
        opts.validate()
        self.opts = opts
        self.out = Path(opts.out)
        self.dist = Distributed()
        self.device = self.dist.start(resolve_device(opts.device))
        self.ckpt_dir = self.out / "checkpoints"
        resume_from = self._check_run_dir()

        self.load_data()
        self.arch_args = self.architecture_arguments()
        torch.manual_seed(opts.seed)  # weight init, dropout and the gradient penalty's mixing: all from the seed
        try:
            G, D = build(opts.arch, **self.arch_args)
        except ValueError as e:
            raise TrainError(str(e)) from None
        self.memory_format = preferred_memory_format(G, self.device)
        self.G = G.to(self.device, memory_format=self.memory_format)
        self.D = D.to(self.device, memory_format=self.memory_format)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if opts.ema else None
        self.G_train, self.D_train = self.G, self.D
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Batch-norm running statistics stay per process (they only matter for sampling, and rank 0's are
            # saved); broadcasting them on every forward breaks D's separate real and fake passes.
            self.G_train = DDP(self.G, device_ids=ids, broadcast_buffers=False)
            self.D_train = DDP(self.D, device_ids=ids, broadcast_buffers=False)
        betas = (opts.beta1, opts.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opts.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=opts.lr_d, betas=betas)
        self.lr_scale = 1.0
        self.amp = opts.bf16 if opts.bf16 is not None else self.device.type == "cuda"
        if self.amp and self.device.type != "cuda":
            raise TrainError("--bf16 autocast is for CUDA devices")
        self.total_steps = opts.steps or max(1, math.ceil((opts.epochs or 5) * self.batches_per_epoch / opts.d_steps))
        self.prepare_grid()
        self.step = 0
        self.rollbacks: list[int] = []
        self.monitor, self.last_eval = None, None
        self.train_seconds = 0.0
        self.seconds_before, self.t0 = 0.0, None  # training time of earlier sessions of this run, and this one's start
        if resume_from:
            self._load_checkpoint(resume_from)

    # ------------------------------------------------------------------ what a GAN family decides (overridable)
    def load_data(self):
        opts = self.opts
        if opts.random_crop and not opts.size:
            raise TrainError("--random-crop needs --size (images are loaded 12.5% larger and cropped to --size)")
        load_size = math.ceil(opts.size * 1.125) if opts.random_crop else opts.size
        self.data = load_data(opts.data, load_size, opts.channels)
        if opts.stack:
            if self.data.labels is None or self.data.channels != 1:
                raise TrainError("--stack needs labelled single-channel digits (an MNIST-style IDX folder)")
            from gancli.datasets import stack_digits

            self.data = stack_digits(self.data, len(self.data), seed=opts.seed, k=opts.stack)
        self.crop = opts.size or self.data.image_size
        per_step = opts.batch_size * self.dist.world * opts.d_steps
        if len(self.data) < per_step:
            raise TrainError(f"{len(self.data)} training images is fewer than one step's {per_step} "
                             "(batch size x processes x d-steps): lower --batch-size")
        self.conditional = opts.is_conditional
        self.aux_classifier = opts.arch == "acgan"
        if self.conditional and self.data.labels is None:
            raise TrainError(f"a conditional model needs labelled data: put each class's images in its own "
                             f"sub-folder of {opts.data}")
        self.images = self.place_data(self.data.images)
        self.labels = self.data.labels.to(self.device) if self.conditional else None
        self.batches_per_epoch = len(self.data) // (opts.batch_size * self.dist.world)

    def place_data(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 data on the GPU when it fits in a third of the free memory, else in pinned host memory."""
        self.data_device = self.device
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.numel() > free // 3:
                self.data_device = torch.device("cpu")
                return images.pin_memory()
        return images.to(self.data_device)

    def architecture_arguments(self) -> dict:
        return arch_arguments(self.opts, self.data)

    def prepare_grid(self):
        self.fixed_z, self.fixed_labels, self.grid_nrow = self._grid_latents()

    def lr_factor(self, step: int) -> float:
        return 1.0

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict):
        pass

    def _grid_latents(self):
        if self.conditional:
            classes = self.arch_args["num_classes"]
            rows = max(1, GRID_SAMPLES // classes) if classes > 8 else 8
            n = rows * classes
            labels = torch.arange(n) % classes  # one column per class
            return latents.latents([(self.opts.seed, i) for i in range(n)], self.opts.latent_dim).to(self.device), \
                labels.to(self.device), classes
        z = latents.latents([(self.opts.seed, i) for i in range(GRID_SAMPLES)], self.opts.latent_dim)
        return z.to(self.device), None, 8

    # ------------------------------------------------------------------ run directory
    def _check_run_dir(self) -> Path | None:
        existing = self.checkpoints()
        if self.opts.resume:
            if not existing:
                raise TrainError(f"--resume: {self.out} has no checkpoint to resume from")
            saved_path = self.out / "options.json"
            saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
            for key in ("data", "data_b", "arch", "conditional", "batch_size", "seed", "loss", "latent_dim", "size",
                        "channels", "d_steps", "ema", "g_width", "d_width", "n_blocks", "cycle_weight",
                        "identity_weight", "pool_size", "stack"):
                if key in saved and saved[key] != getattr(self.opts, key):
                    raise TrainError(f"--resume: {key} was {saved[key]!r} in this run, not "
                                     f"{getattr(self.opts, key)!r}; resume with the run's own settings")
            return existing[-1]
        if existing or (self.out / "options.json").exists():
            raise TrainError(f"{self.out} already holds a training run: add --resume to continue it, "
                             "or choose another --out")
        return None

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
        state = {"step": self.step, "G": self.G.state_dict(), "D": self.D.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "rng": rng,
                 "lr_scale": self.lr_scale, "rollbacks": torch.tensor(self.rollbacks, dtype=torch.int64),
                 "seconds": self.seconds_before + (time.time() - self.t0 if self.t0 else 0.0),
                 "arch": self.opts.arch, "arch_args": self.arch_args}
        if self.G_ema is not None:
            state["G_ema"] = self.G_ema.state_dict()
        return state | self.extra_state()

    def save_checkpoint(self) -> Path:
        path = self.ckpt_dir / f"step-{self.step:08d}.pt"
        if self.dist.main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: torch.save(self._state(), f))
            for old in self.checkpoints()[:-self.opts.keep_checkpoints]:
                old.unlink()
            self.log(f"checkpoint {path.name}")
        return path

    def _load_checkpoint(self, path: Path, quiet: bool = False):
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)  # never unpickle objects
        except Exception as e:  # a checkpoint cut short by a crash is reported, not a traceback
            raise TrainError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
        if state.get("arch_args") != self.arch_args:
            raise TrainError(f"checkpoint {path.name} was made for {state.get('arch_args')}, not {self.arch_args}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state.get("G_ema", state["G"]))
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        self.step = int(state["step"])
        self.seconds_before = float(state.get("seconds", 0.0))
        self.load_extra_state(state)
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.rollbacks = [int(s) for s in state.get("rollbacks", torch.zeros(0, dtype=torch.int64)).tolist()]
        if not quiet:
            if self.dist.main:
                self._truncate_metrics(self.step)
            self.log(f"resumed from {path.name} at step {self.step}")

    def _truncate_metrics(self, step: int):
        path = self.out / "metrics.jsonl"
        if path.exists():
            keep = [l for l in path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= step]
            atomic_write(path, lambda f: f.write("".join(l + "\n" for l in keep).encode()))

    def _roll_back(self):
        """A non-finite loss: return to the last checkpoint with half the learning rates, or give up."""
        self.rollbacks.append(self.step)
        if len(self.rollbacks) > MAX_ROLLBACKS:
            self.log(f"stopped: non-finite loss {len(self.rollbacks)} times (steps {self.rollbacks})")
            raise TrainError(f"training diverged: the loss became NaN/inf {len(self.rollbacks)} times (at steps "
                             f"{', '.join(map(str, self.rollbacks))}) even after lowering the learning rate; "
                             "try lower --lr-g/--lr-d or another --loss")
        bad_step, rollbacks = self.step, self.rollbacks
        last = self.checkpoints()[-1]
        self._load_checkpoint(last, quiet=True)
        self.rollbacks = rollbacks
        self.lr_scale *= 0.5
        self.log(f"non-finite loss at step {bad_step}: rolled back to {last.name}, learning rates x{self.lr_scale:g}")

    def _apply_lr(self):
        factor = self.lr_scale * self.lr_factor(self.step)
        for opt, base in ((self.opt_g, self.opts.lr_g), (self.opt_d, self.opts.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    # ------------------------------------------------------------------ the step
    def batch(self, index: int):
        """Batch ``index`` (counting D steps) of this process: pure function of (seed, index, rank)."""
        x, idx = self.take(self.images, self.opts.seed, self.opts.seed + 7, index)
        return x, (self.labels[idx.to(self.device)] if self.conditional else None)

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

    def noise(self, index: int, n: int) -> torch.Tensor:
        g = torch.Generator(self.device).manual_seed(latents._mix(self.opts.seed + 1, index * self.dist.world
                                                                  + self.dist.rank))
        return torch.randn(n, self.opts.latent_dim, device=self.device, generator=g)

    def _discriminate(self, x, labels):
        out = self.D_train(x, labels)
        return (out[0].float(), out[1].float()) if isinstance(out, tuple) else (out.float(), None)

    def train_step(self) -> dict:
        opts, autocast = self.opts, self._autocast()
        for k in range(opts.d_steps):
            index = self.step * opts.d_steps + k
            real, labels = self.batch(index)
            with autocast:
                fake = self.G_train(self.noise(index, len(real)), labels)
                real_out, real_cls = self._discriminate(real, labels)
                fake_out, fake_cls = self._discriminate(fake.detach(), labels)
                loss_d = losses.d_loss(opts.loss, real_out, fake_out)
                if self.aux_classifier:
                    loss_d = loss_d + F.cross_entropy(real_cls, labels) + F.cross_entropy(fake_cls, labels)
            if opts.loss == "wgan-gp":  # in fp32: the penalty's second-order gradients are precision-hungry
                loss_d = loss_d + opts.gp_weight * losses.gradient_penalty(self.D_train, real, fake.detach().float(),
                                                                           labels)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()

        with autocast:
            gen_out, gen_cls = self._discriminate(fake, labels)
            loss_g = losses.g_loss(opts.loss, gen_out)
            if self.aux_classifier:
                loss_g = loss_g + F.cross_entropy(gen_cls, labels)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if self.G_ema is not None:
            self._update_ema()
        with torch.no_grad():
            sigmoid = opts.loss in losses.SIGMOID_LOSSES
            d_of = torch.sigmoid if sigmoid else (lambda t: t)
            stats = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                     "d_real": d_of(real_out).mean(), "d_fake": d_of(fake_out).mean()}
            if sigmoid:
                stats["value"] = -losses.d_loss("ns", real_out, fake_out)
            if self.aux_classifier:
                stats["class_acc_real"] = (real_cls.argmax(1) == labels).float().mean()
            return stats

    @torch.no_grad()
    def _update_ema(self):
        decay = self.opts.ema
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1.0 - decay)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()

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
        classes = self.arch_args.get("num_classes")
        for _ in range(batches):
            z = torch.randn(batch_size, self.opts.latent_dim, device=self.device, generator=g)
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
        save_image(grid_image(images, nrow=nrow), path)
        return path

    @torch.no_grad()
    def grid_images(self) -> tuple[torch.Tensor, int]:
        if self.G_ema is not None:
            self.calibrate_ema()
        G, was_training = self.sampler, self.sampler.training
        G.eval()
        labels = self.fixed_labels.split(32) if self.conditional else [None] * math.ceil(len(self.fixed_z) / 32)
        images = torch.cat([G(z, y) for z, y in zip(self.fixed_z.split(32), labels)]).float().cpu()
        G.train(was_training)
        return images, self.grid_nrow

    def write_progress(self):
        from PIL import Image

        grids = sorted((self.out / "samples").glob("step-*.png"))
        if grids:
            frames = []
            for p in grids:
                with Image.open(p) as im:
                    frames.append(im.convert("RGB"))
            save_animation(frames, self.out / "progress.gif", fps=4)
        rows = self._metrics()
        if len(rows) > 1:
            series = {k: [(r["step"], r[k]) for r in rows] for k in ("loss_d", "loss_g", "d_real", "d_fake")}
            line_plot(series, self.out / "losses.png", title=f"{self.opts.arch} / {self.opts.loss}")
        evals = self._metrics("eval")
        if len(evals) > 1:  # the measures that live in [0, 1]; a collapse shows as a drop
            series = {k: [(r["step"], r[k]) for r in evals] for k in ("precision", "recall")}
            series["diversity / real"] = [(r["step"], r["diversity"] / max(r["real_diversity"], 1e-9)) for r in evals]
            for covered, total in (("classes_covered", "num_classes"), ("modes_covered", "num_modes")):
                if evals[-1].get(covered) is not None:
                    series["coverage"] = [(r["step"], r[covered] / r[total]) for r in evals]
            line_plot(series, self.out / "quality.png", title="--eval-every: quality over training")

    def _metrics(self, event: str | None = None) -> list[dict]:
        """The training rows of metrics.jsonl, or those of one ``event`` ("eval")."""
        path = self.out / "metrics.jsonl"
        rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
        return [r for r in rows if r.get("event") == event]

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Measure the sampler on fixed latents against the training data; raise the mode-collapse alarm."""
        from gancli.evaluate import TrainingMonitor

        if self.monitor is None:
            self.monitor = TrainingMonitor.for_data(self.opts.data, self.data, self.opts.eval_samples, self.opts.seed,
                                                    self.device, stack=self.opts.stack or 1)
            self.monitor.remember(self._metrics("eval"))  # a resumed run keeps its best-so-far
        if self.G_ema is not None:
            self.calibrate_ema()
        G, was_training = self.sampler, self.sampler.training
        G.eval()
        row = self.monitor.measure(lambda z, y: G(z.to(self.device), y.to(self.device) if y is not None else None),
                                   self.opts.latent_dim,
                                   self.arch_args.get("num_classes"))
        G.train(was_training)
        row = {"step": self.step, "event": "eval"} | row
        self.last_eval = row
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        summary = ", ".join(f"{k} {row[k]}" for k in ("fid", "kid", "precision", "recall", "classes_covered",
                                                      "modes_covered", "diversity") if row.get(k) is not None)
        self.log(f"eval at step {self.step}: {summary}")
        for alarm in row["alarms"]:
            self.log(f"mode-collapse alarm at step {self.step}: {alarm}")
        return row

    def _write_metrics(self, interval: list[dict], images_per_s: float) -> dict:
        row = {"step": self.step, "epoch": round(self.step * self.opts.d_steps / self.batches_per_epoch, 4)}
        for key in interval[0]:
            row[key] = round(float(torch.stack([s[key] for s in interval]).float().mean()), 5)
        row |= {"lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
                "images_per_s": round(images_per_s, 1)}
        if self.dist.main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        return row

    # ------------------------------------------------------------------ the loop
    def run(self, progress=None) -> Path:
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.dist.barrier()
        fresh = self.step == 0 and not self.checkpoints()
        if fresh and self.dist.main:
            record = asdict(self.opts) | {"gan_version": gancli.__version__, "torch_version": torch.__version__,
                                          "device_used": describe(self.device), "processes": self.dist.world}
            atomic_write(self.out / "options.json", lambda f: f.write(json.dumps(record, indent=2).encode()))
            self.log(f"start: {self.opts.command}")
        self.log(f"device {describe(self.device)} x{self.dist.world}; data {self.data.source}: {len(self.data)} images "
                 f"{self.data.channels}x{self.data.image_size}x{self.data.image_size}"
                 + (f", {len(self.data.class_names)} classes" if self.conditional else "")
                 + f"; {self.batches_per_epoch} batches per epoch; {self.total_steps} steps"
                 + ("; bf16 autocast" if self.amp else "")
                 + (f"; data kept in host memory ({self.data.images.numel() / 2**30:.1f} GiB)"
                    if self.data_device != self.device else ""))
        for f, why in self.data.skipped:
            self.log(f"skipped {f}: {why}")
        if self.data.skipped:
            self.log(f"skipped {len(self.data.skipped)} unreadable file(s)")
        if fresh:
            self.save_checkpoint()  # step 0: something to roll back to
        self.G.train()
        self.D.train()
        self._apply_lr()
        t0, started_at, interval, seen, row = time.time(), self.step, [], 0, None
        self.t0 = t0
        with _StopRequests() as stop:
            while self.step < self.total_steps:
                if stop.asked:  # only between steps: a checkpoint never holds half an update
                    self.save_checkpoint()
                    self.log(f"interrupted ({stop.asked}) at step {self.step}; checkpoint written")
                    self.dist.stop()
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
            export = self.export()
            self.log(f"done: {self.step} steps ({self.step - started_at} this session) in {self.train_seconds:.0f} s; "
                     f"exported to {export}")
        self.dist.barrier()
        self.dist.stop()
        return export

    # ------------------------------------------------------------------ export
    def export(self) -> Path:
        config = self.export_config()
        if self.G_ema is not None:
            self.calibrate_ema()
        model = GANModel(config, copy.deepcopy(self.sampler), self.D, device=self.device)
        return model.save_pretrained(self.out / "export", card=model_card(config, self._last_row()))

    def _last_row(self) -> dict:
        rows = self._metrics()
        return rows[-1] if rows else {}

    def export_config(self) -> dict:
        data_name = Path(self.opts.data).resolve().name
        return {
            "gan_version": gancli.__version__,
            "name": self.opts.name or f"{self.opts.arch}-{Path(data_name).stem}",
            "architecture": self.opts.arch,
            "arch_args": self.arch_args,
            "task": "conditional" if self.conditional else "unconditional",
            "latent_dim": self.opts.latent_dim,
            "image_size": self.crop,
            "channels": self.data.channels,
            "class_names": self.data.class_names if self.conditional else None,
            "dataset": "stacked-mnist" if self.opts.stack else Path(data_name).stem,
            "training": self.training_record(),
        }

    def training_record(self) -> dict:
        return {"command": self.opts.command, "steps": self.step, "batch_size": self.opts.batch_size,
                "processes": self.dist.world, "epochs": round(self.step * self.opts.d_steps / self.batches_per_epoch, 3),
                "loss": self.opts.loss, "ema": self.opts.ema, "seed": self.opts.seed, "device": describe(self.device),
                "seconds": round(self.seconds_before + self.train_seconds), "seconds_this_session": round(self.train_seconds),
                "torch": torch.__version__, "platform": platform.platform()}


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


def model_card(config: dict, last: dict, results: str = "") -> str:
    t = config["training"]
    conditional = config.get("task") == "conditional"
    translation = config.get("task") == "translation"
    tags = ["gan", "gancli", config["architecture"], "image-generation"] + (["conditional"] if conditional else [])
    use = f"gan sample {config['name']} -n 64 -o grid.png"
    if conditional:
        use += f"\ngan sample {config['name']} --label {shlex.quote(config['class_names'][-1])} -n 16"
    lines = [
        "---", "license: mit", "library_name: gancli", "tags:", *[f"- {x}" for x in tags],
        "datasets:", f"- {config['dataset']}",
        "pipeline_tag: " + ("image-to-image" if translation else "image-generation" if conditional
                            else "unconditional-image-generation"), "---", "",
        f"# {config['name']}", "",
        (f"A `{config['architecture']}` model translating {config['domains'][0]} <-> {config['domains'][1]} images "
         f"(both directions; trained on {config['image_size']}px crops of {config['dataset']}, applies to any size) "
         f"with gan {config['gan_version']}." if translation else
         f"A {'class-conditional ' if conditional else ''}`{config['architecture']}` GAN generating "
         f"{config['image_size']}x{config['image_size']} {'grayscale' if config['channels'] == 1 else 'RGB'} images, "
         f"trained on {config['dataset']} with gan {config['gan_version']}."
         + (f" Classes: {', '.join(config['class_names'])}." if conditional else "")), "",
        "## Use", "", "```bash", use, "```", "",
        "## Training", "", "```bash", t["command"], "```", "",
        f"- {t['steps']} steps ({t['epochs']} epochs) at batch {t['batch_size']}"
        + (f" x {t['processes']} processes" if t.get("processes", 1) > 1 else "")
        + f", loss `{t['loss']}`, seed {t['seed']}" + (f", EMA {t['ema']}" if t.get("ema") else ""),
        f"- {t['seconds']} s of training on {t['device']} (torch {t['torch']}, {t['platform']})"
        + (f"; resumed, {t['seconds_this_session']} s in the last session"
           if t.get("seconds_this_session", t["seconds"]) != t["seconds"] else ""),
    ]
    if last:
        line = (f"- last logged: D loss {last.get('loss_d')}, G loss {last.get('loss_g')}, "
                f"D(x) {last.get('d_real')}, D(G(z)) {last.get('d_fake')}")
        if "value" in last:
            line += f", V(D,G) {last['value']} (at the equilibrium: -log 4 = {losses.OPTIMAL_VALUE:.3f})"
        lines.append(line)
    if results:
        lines += ["", "## Results", "", results.strip()]
    return "\n".join(lines) + "\n"


def make_trainer(opts: TrainOptions) -> Trainer:
    """The trainer for the family: translation models bring their own objective to the same loop."""
    if get_architecture(opts.arch).task == "translation":
        from gancli.train_translation import CycleGANTrainer

        return CycleGANTrainer(opts)
    return Trainer(opts)
