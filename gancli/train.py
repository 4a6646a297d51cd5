"""One training loop for the unconditional GAN families, with a run directory that is a complete record.

    RUN_DIR/
      options.json        every setting, the gan version and the command line
      log.txt             what happened, in words (device, data, skipped files, checkpoints, the end)
      metrics.jsonl       one line per logging interval: losses, D(x), D(G(z)), V(D,G), images/s
      samples/            grids from 64 fixed latents, every --sample-every steps
      progress.gif        those grids as an animation
      checkpoints/        step-XXXXXXXX.pt, written atomically, the last K kept
      export/             zoo layout (config.json, README.md, model.safetensors): `gan sample RUN_DIR/export`

The batch order of step s is a pure function of (seed, s) and every random stream is saved in the checkpoint, so a
resumed run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import gancli
from gancli import latents, losses
from gancli.data import ImageData, load_data, to_model_range
from gancli.devices import describe, resolve_device
from gancli.imageio import atomic_write, grid_image, save_animation, save_image
from gancli.pretrained import GANModel
from gancli.registry import build, get_architecture

GRID_SAMPLES = 64


class TrainError(ValueError):
    pass


@dataclass
class TrainOptions:
    data: str
    out: str
    arch: str = "dcgan"
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    seed: int = 0
    loss: str = "ns"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    latent_dim: int = 100
    g_width: int | None = None
    d_width: int | None = None
    size: int | None = None
    channels: int | None = None
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    device: str = "auto"
    name: str | None = None
    resume: bool = False
    command: str = field(default_factory=lambda: shlex.join(["gan"] + sys.argv[1:]))

    def validate(self):
        get_architecture(self.arch)
        if self.loss not in losses.LOSSES:
            raise TrainError(f"unknown loss {self.loss!r}: use {', '.join(losses.LOSSES)}")
        if self.steps is not None and self.epochs is not None:
            raise TrainError("give --steps or --epochs, not both")
        for name in ("batch_size", "sample_every", "checkpoint_every", "keep_checkpoints", "log_every", "latent_dim"):
            if getattr(self, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be at least 1")
        if (self.steps is not None and self.steps < 1) or (self.epochs is not None and self.epochs <= 0):
            raise TrainError("--steps / --epochs must be positive")
        if self.channels not in (None, 1, 3):
            raise TrainError("--channels must be 1 or 3")


def arch_arguments(opts: TrainOptions, data: ImageData) -> dict:
    args = {"latent_dim": opts.latent_dim, "image_size": data.image_size, "channels": data.channels}
    if opts.arch == "dcgan":
        args |= {"g_width": opts.g_width or 64, "d_width": opts.d_width or 64}
    elif opts.g_width or opts.d_width:
        raise TrainError(f"--g-width / --d-width apply to dcgan, not {opts.arch}")
    return args


class Trainer:
    def __init__(self, opts: TrainOptions, console=None):
        opts.validate()
        self.opts = opts
        self.out = Path(opts.out)
        self.console = console
        self.device = resolve_device(opts.device)
        self.ckpt_dir = self.out / "checkpoints"
        resume_from = self._check_run_dir()

        self.data = load_data(opts.data, opts.size, opts.channels)
        if len(self.data) < opts.batch_size:
            raise TrainError(f"{len(self.data)} training images is fewer than one batch of {opts.batch_size}: "
                             "lower --batch-size")
        self.arch_args = arch_arguments(opts, self.data)
        torch.manual_seed(opts.seed)  # weight init, then dropout: all from the run's seed
        try:
            self.G, self.D = build(opts.arch, **self.arch_args)
        except ValueError as e:
            raise TrainError(str(e)) from None
        self.G.to(self.device)
        self.D.to(self.device)
        betas = (opts.beta1, opts.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opts.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=opts.lr_d, betas=betas)
        # Data stays uint8 (on the GPU when training there) and is converted per batch.
        self.images = self.data.images.to(self.device)
        self.batches_per_epoch = len(self.data) // opts.batch_size
        self.total_steps = opts.steps or max(1, math.ceil((opts.epochs or 5) * self.batches_per_epoch))
        self.noise = torch.Generator(self.device).manual_seed(latents._mix(opts.seed, 1))
        self.fixed_z = latents.latents([(opts.seed, i) for i in range(GRID_SAMPLES)], opts.latent_dim).to(self.device)
        self.step = 0
        if resume_from:
            self._load_checkpoint(resume_from)

    # ------------------------------------------------------------------ run directory
    def _check_run_dir(self) -> Path | None:
        existing = self.checkpoints()
        if self.opts.resume:
            if not existing:
                raise TrainError(f"--resume: {self.out} has no checkpoint to resume from")
            saved = json.loads((self.out / "options.json").read_text()) if (self.out / "options.json").exists() else {}
            for key in ("data", "arch", "batch_size", "seed", "loss", "latent_dim", "size", "channels"):
                if key in saved and saved[key] != getattr(self.opts, key) and getattr(self.opts, key) is not None:
                    raise TrainError(f"--resume: {key} was {saved[key]!r} in this run, not {getattr(self.opts, key)!r}")
            return existing[-1]
        if existing or (self.out / "options.json").exists():
            raise TrainError(f"{self.out} already holds a training run: add --resume to continue it, "
                             "or choose another --out")
        return None

    def checkpoints(self) -> list[Path]:
        return sorted(self.ckpt_dir.glob("step-*.pt")) if self.ckpt_dir.is_dir() else []

    def log(self, message: str):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.out / "log.txt", "a") as f:
            f.write(f"{stamp} {message}\n")

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "noise": self.noise.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"step": self.step, "G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "rng": rng,
                "arch": self.opts.arch, "arch_args": self.arch_args}

    def save_checkpoint(self) -> Path:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / f"step-{self.step:08d}.pt"
        atomic_write(path, lambda f: torch.save(self._state(), f))
        for old in self.checkpoints()[:-self.opts.keep_checkpoints]:
            old.unlink()
        self.log(f"checkpoint {path.name}")
        return path

    def _load_checkpoint(self, path: Path):
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)  # never unpickle objects
        except Exception as e:  # a checkpoint cut short by a crash is reported, not a traceback
            raise TrainError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
        if state.get("arch_args") != self.arch_args:
            raise TrainError(f"checkpoint {path.name} was made for {state.get('arch_args')}, not {self.arch_args}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        self.noise.set_state(state["rng"]["noise"].cpu())
        if "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        self.step = int(state["step"])
        self._truncate_metrics(self.step)
        self.log(f"resumed from {path.name} at step {self.step}")

    def _truncate_metrics(self, step: int):
        path = self.out / "metrics.jsonl"
        if path.exists():
            keep = [l for l in path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= step]
            atomic_write(path, lambda f: f.write("".join(l + "\n" for l in keep).encode()))

    # ------------------------------------------------------------------ the loop
    def batch(self, step: int) -> torch.Tensor:
        epoch, k = divmod(step, self.batches_per_epoch)
        g = torch.Generator().manual_seed(latents._mix(self.opts.seed, 1_000_003 + epoch))
        order = torch.randperm(len(self.data), generator=g)
        idx = order[k * self.opts.batch_size:(k + 1) * self.opts.batch_size].to(self.device)
        return to_model_range(self.images[idx])

    def train_step(self, real: torch.Tensor) -> dict:
        z = torch.randn(len(real), self.opts.latent_dim, device=self.device, generator=self.noise)
        fake = self.G(z)
        real_logits, fake_logits = self.D(real), self.D(fake.detach())
        loss_d = losses.d_loss(real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        gen_logits = self.D(fake)
        loss_g = losses.g_loss(gen_logits, self.opts.loss)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        with torch.no_grad():
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                    "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean(),
                    "value": -loss_d.detach()}

    def write_samples(self) -> Path:
        self.G.eval()
        with torch.no_grad():
            images = torch.cat([self.G(z) for z in self.fixed_z.split(32)]).float().cpu()
        self.G.train()
        path = self.out / "samples" / f"step-{self.step:08d}.png"
        save_image(grid_image(images, nrow=8), path)
        return path

    def write_progress_gif(self):
        from PIL import Image

        grids = sorted((self.out / "samples").glob("step-*.png"))
        if grids:
            frames = []
            for p in grids:
                with Image.open(p) as im:
                    frames.append(im.convert("RGB"))
            save_animation(frames, self.out / "progress.gif", fps=4)

    def run(self, progress=None) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        opts_record = asdict(self.opts) | {"gan_version": gancli.__version__, "torch_version": torch.__version__,
                                           "device_used": describe(self.device)}
        if not self.opts.resume:
            atomic_write(self.out / "options.json", lambda f: f.write(json.dumps(opts_record, indent=2).encode()))
            self.log(f"start: {self.opts.command}")
        self.log(f"device {describe(self.device)}; data {self.data.source}: {len(self.data)} images "
                 f"{self.data.channels}x{self.data.image_size}x{self.data.image_size}; "
                 f"{self.batches_per_epoch} batches per epoch; {self.total_steps} steps")
        for f, why in self.data.skipped:
            self.log(f"skipped {f}: {why}")
        if self.data.skipped:
            self.log(f"skipped {len(self.data.skipped)} unreadable file(s)")
        self.G.train()
        self.D.train()
        t0, started_at, interval, seen = time.time(), self.step, [], 0
        self.train_seconds = 0.0
        try:
            while self.step < self.total_steps:
                stats = self.train_step(self.batch(self.step))
                self.step += 1
                seen += self.opts.batch_size
                interval.append(stats)
                if self.step % self.opts.log_every == 0 or self.step == self.total_steps:
                    row = self._write_metrics(interval, seen / max(time.time() - t0, 1e-9))
                    interval = []
                    if progress:
                        progress(self.step, self.total_steps, row)
                if self.step % self.opts.sample_every == 0 or self.step == 1:
                    self.write_samples()
                if self.step % self.opts.checkpoint_every == 0:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            self.save_checkpoint()
            self.log(f"interrupted at step {self.step}; checkpoint written")
            raise
        self.train_seconds = time.time() - t0
        if not (self.ckpt_dir / f"step-{self.step:08d}.pt").exists():
            self.save_checkpoint()
        if self.step % self.opts.sample_every:
            self.write_samples()
        self.write_progress_gif()
        export = self.export()
        self.log(f"done: {self.step} steps ({self.step - started_at} this session) in {self.train_seconds:.0f} s; "
                 f"exported to {export}")
        return export

    def _write_metrics(self, interval: list[dict], images_per_s: float) -> dict:
        row = {"step": self.step, "epoch": round(self.step / self.batches_per_epoch, 4)}
        for key in interval[0]:
            row[key] = round(float(torch.stack([s[key] for s in interval]).mean()), 5)
        row |= {"lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
                "images_per_s": round(images_per_s, 1)}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    # ------------------------------------------------------------------ export
    def export(self) -> Path:
        name = self.opts.name or f"{self.opts.arch}-{Path(self.opts.data).resolve().name}"
        config = {
            "gan_version": gancli.__version__,
            "name": name,
            "architecture": self.opts.arch,
            "arch_args": self.arch_args,
            "task": get_architecture(self.opts.arch).task,
            "latent_dim": self.opts.latent_dim,
            "image_size": self.data.image_size,
            "channels": self.data.channels,
            "class_names": None,
            "dataset": Path(self.opts.data).resolve().name,
            "training": {"command": self.opts.command, "steps": self.step, "batch_size": self.opts.batch_size,
                         "epochs": round(self.step / self.batches_per_epoch, 3), "loss": self.opts.loss,
                         "seed": self.opts.seed, "device": describe(self.device), "seconds": round(self.train_seconds),
                         "torch": torch.__version__, "platform": platform.platform()},
        }
        model = GANModel(config, self.G, self.D, device=self.device)
        folder = model.save_pretrained(self.out / "export", card=model_card(config, self._last_metrics()))
        self.G.train()
        return folder

    def _last_metrics(self) -> dict:
        path = self.out / "metrics.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return json.loads(lines[-1]) if lines else {}


def model_card(config: dict, last: dict, results: str = "") -> str:
    t = config["training"]
    tags = ["gan", "gancli", config["architecture"], "image-generation"]
    lines = [
        "---", "license: mit", "library_name: gancli", "tags:", *[f"- {x}" for x in tags],
        "datasets:", f"- {config['dataset']}", "pipeline_tag: unconditional-image-generation", "---", "",
        f"# {config['name']}", "",
        f"A `{config['architecture']}` GAN generating {config['image_size']}x{config['image_size']} "
        f"{'grayscale' if config['channels'] == 1 else 'RGB'} images, trained on {config['dataset']} with "
        f"[gan](https://pypi.org/project/gancli/) {config['gan_version']}.", "",
        "## Use", "", "```bash", f"gan sample {config['name']} -n 64 -o grid.png", "```", "",
        "## Training", "", "```bash", t["command"], "```", "",
        f"- {t['steps']} steps ({t['epochs']} epochs) at batch {t['batch_size']}, loss `{t['loss']}`, seed {t['seed']}",
        f"- {t['seconds']} s on {t['device']} (torch {t['torch']}, {t['platform']})",
    ]
    if last:
        lines.append(f"- last logged: D loss {last.get('loss_d')}, G loss {last.get('loss_g')}, "
                     f"D(x) {last.get('d_real')}, D(G(z)) {last.get('d_fake')}, V(D,G) {last.get('value')} "
                     f"(equilibrium: -log 4 = {losses.OPTIMAL_VALUE:.3f})")
    if results:
        lines += ["", "## Results", "", results.strip()]
    return "\n".join(lines) + "\n"
