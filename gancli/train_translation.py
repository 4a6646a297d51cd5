"""CycleGAN training on unpaired images: the same Trainer (run directory, checkpoints, resume, Ctrl-C, NaN
rollback, progress, DDP) with the translation objective of Zhu et al. 2017.

Defaults are the paper's: LSGAN loss, cycle-consistency weight 10, identity weight 0.5 x 10, a history pool of 50
generated images per domain for the discriminators, Adam 2e-4 with beta1 0.5, a constant learning rate for the first
half of training and a linear decay to zero over the second; images loaded at 286 px, randomly cropped to 256 and
mirrored.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from gancli import latents, losses
from gancli.data import load_data, to_model_range
from gancli.pretrained import GANModel
from gancli.train import Trainer, TrainError, model_card

LOAD_RATIO = 286 / 256


def domain_folders(data: str, data_b: str | None) -> tuple[Path, Path, list[str]]:
    """DIR_A DIR_B, or one root holding trainA/ and trainB/ (the CycleGAN data sets' layout)."""
    root = Path(data)
    if data_b:
        return root, Path(data_b), [root.name, Path(data_b).name]
    if (root / "trainA").is_dir() and (root / "trainB").is_dir():
        return root / "trainA", root / "trainB", ["A", "B"]
    raise TrainError(f"CycleGAN needs two image folders: give DIR_A DIR_B, or a folder with trainA/ and trainB/ "
                     f"({root} has neither)")


class ImagePool:
    """The discriminators' history of generated images (Shrivastava et al. 2017): half of each batch they see
    comes from older generators, which damps oscillation."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=g) < 0.5:
                k = int(torch.randint(0, self.size, (), generator=g))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> torch.Tensor:
        return torch.stack(self.images) if self.images else torch.zeros(0)

    def load(self, t: torch.Tensor):
        self.images = [x for x in t] if t.numel() else []


class CycleGANTrainer(Trainer):
    def load_data(self):
        opts = self.opts
        dir_a, dir_b, names = domain_folders(opts.data, opts.data_b)
        self.domains = [d.strip() for d in opts.domains.split(",")] if opts.domains else names
        if len(self.domains) != 2:
            raise TrainError("--domains needs two names, e.g. horse,zebra")
        self.crop = opts.size or 256
        load_size = math.ceil(self.crop * LOAD_RATIO) if opts.random_crop else self.crop
        self.data_a = load_data(dir_a, load_size, opts.channels or 3)
        self.data_b = load_data(dir_b, load_size, opts.channels or 3)
        self.data = self.data_a
        self.data.skipped = self.data_a.skipped + self.data_b.skipped
        self.data.source = f"{dir_a} + {dir_b}"
        self.conditional = self.aux_classifier = False
        per_step = opts.batch_size * self.dist.world
        if min(len(self.data_a), len(self.data_b)) < per_step:
            raise TrainError(f"each domain needs at least {per_step} images (batch size x processes)")
        self.images_a = self.place_data(self.data_a.images)
        self.images_b = self.place_data(self.data_b.images)
        self.batches_per_epoch = max(len(self.data_a), len(self.data_b)) // per_step
        self.pools = [ImagePool(opts.pool_size), ImagePool(opts.pool_size)]

    def architecture_arguments(self) -> dict:
        return {"channels": self.data_a.channels, "g_width": self.opts.g_width or 64,
                "d_width": self.opts.d_width or 64, "n_blocks": self.opts.n_blocks}

    def prepare_grid(self):
        k = min(4, len(self.data_a), len(self.data_b))
        off = (self.images_a.shape[-1] - self.crop) // 2
        crop = lambda x: to_model_range(x[:k, :, off:off + self.crop, off:off + self.crop].to(self.device))
        self.fixed_a, self.fixed_b = crop(self.images_a), crop(self.images_b)

    def lr_factor(self, step: int) -> float:
        half = self.total_steps // 2
        return 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(1, self.total_steps - half))

    def extra_state(self) -> dict:
        return {"pool_a": self.pools[0].state(), "pool_b": self.pools[1].state()}

    def load_extra_state(self, state: dict):
        self.pools[0].load(state["pool_a"].to(self.device))
        self.pools[1].load(state["pool_b"].to(self.device))

    def batch(self, index: int):
        seed = self.opts.seed
        return (self.take(self.images_a, seed + 11, seed + 11, index)[0],
                self.take(self.images_b, seed + 13, seed + 13, index)[0])

    def train_step(self) -> dict:
        opts, autocast = self.opts, self._autocast()
        real_a, real_b = self.batch(self.step)
        identity = opts.identity_weight > 0
        D = self.D  # the generator step needs no discriminator gradients: skip DDP and freeze D
        with autocast:
            out = self.G_train(real_a, real_b, identity)
            D.requires_grad_(False)
            fake_a_out, fake_b_out = D(out["fake_a"], out["fake_b"])
            loss_gan = losses.g_loss(opts.loss, fake_a_out.float()) + losses.g_loss(opts.loss, fake_b_out.float())
            loss_cycle = F.l1_loss(out["rec_a"].float(), real_a) + F.l1_loss(out["rec_b"].float(), real_b)
            loss_idt = (F.l1_loss(out["idt_a"].float(), real_a) + F.l1_loss(out["idt_b"].float(), real_b)) \
                if identity else torch.zeros((), device=self.device)
            loss_g = loss_gan + opts.cycle_weight * (loss_cycle + opts.identity_weight * loss_idt)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        D.requires_grad_(True)

        g = torch.Generator().manual_seed(latents._mix(opts.seed + 17, self.step * self.dist.world + self.dist.rank))
        pooled_a = self.pools[0].query(out["fake_a"].detach(), g)
        pooled_b = self.pools[1].query(out["fake_b"].detach(), g)
        n = len(real_a)
        with autocast:  # real and fake in one pass: instance norm keeps the samples independent
            d_a, d_b = self.D_train(torch.cat([real_a, pooled_a.to(real_a.dtype)]),
                                    torch.cat([real_b, pooled_b.to(real_b.dtype)]))
            d_a, d_b = d_a.float(), d_b.float()
            loss_d = losses.d_loss(opts.loss, d_a[:n], d_a[n:]) + losses.d_loss(opts.loss, d_b[:n], d_b[n:])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        if self.G_ema is not None:
            self._update_ema()
        with torch.no_grad():
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_gan": loss_gan.detach(),
                    "loss_cycle": loss_cycle.detach(), "loss_idt": loss_idt.detach(),
                    "d_real": (d_a[:n].mean() + d_b[:n].mean()) / 2, "d_fake": (d_a[n:].mean() + d_b[n:].mean()) / 2}

    @torch.no_grad()
    def grid_images(self) -> tuple[torch.Tensor, int]:
        """Per row: real A, fake B, reconstructed A, real B, fake A, reconstructed B."""
        G = self.sampler
        was_training = G.training
        G.eval()
        out = G(self.fixed_a, self.fixed_b, identity=False)
        G.train(was_training)
        rows = torch.stack([self.fixed_a, out["fake_b"], out["rec_a"], self.fixed_b, out["fake_a"], out["rec_b"]], 1)
        return rows.flatten(0, 1).float().cpu(), 6

    def export_config(self) -> dict:
        name_a, name_b = self.domains
        return {
            "gan_version": self.opts_version(),
            "name": self.opts.name or f"cyclegan-{name_a}2{name_b}",
            "architecture": "cyclegan",
            "arch_args": self.arch_args,
            "task": "translation",
            "domains": self.domains,
            "latent_dim": 0,
            "image_size": self.crop,
            "channels": self.data_a.channels,
            "class_names": None,
            "dataset": Path(self.opts.data).resolve().name,
            "training": self.training_record() | {"cycle_weight": self.opts.cycle_weight,
                                                  "identity_weight": self.opts.identity_weight,
                                                  "pool_size": self.opts.pool_size},
        }

    @staticmethod
    def opts_version() -> str:
        import gancli

        return gancli.__version__

    def export(self) -> Path:
        import copy

        config = self.export_config()
        model = GANModel(config, copy.deepcopy(self.sampler).float(), None, device=self.device)
        # fp16 halves the two generators (~45 MB fp32 at width 64); shards keep each file under 16 MiB
        return model.save_pretrained(self.out / "export", card=translation_card(config, self._last_row()),
                                     dtype=torch.float16, max_shard_bytes=15 * 2**20)


def translation_card(config: dict, last: dict, results: str = "") -> str:
    card = model_card(config, last, results)
    a, b = config["domains"]
    return card.replace(
        f"gan sample {config['name']} -n 64 -o grid.png",
        f"gan translate {config['name']} {a}.jpg                 # -> {a}-{b.lower()}.jpg\n"
        f"gan translate {config['name']} {b}.jpg --direction {a}")
