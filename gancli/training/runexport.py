"""What a finished run leaves in RUN_DIR/export: config.json (the model's keys and the record of its training), the
weights of the networks the family exports, and the model card.

``trainer`` arguments are the finished ``gancli.training.trainer.Trainer`` (not imported: the loop sits above this).
"""
from __future__ import annotations

import copy
import platform
import shlex
from pathlib import Path

import torch

from gancli.devices import describe
from gancli.use import cards
from gancli.use.model import GANModel
from gancli.version import __version__


def export(trainer) -> Path:
    config = export_config(trainer)
    if trainer.G_ema is not None:
        trainer.calibrate_ema()
    keep = trainer.family.exported
    others = {k: net for k, net in trainer.nets.items() if k in keep and k not in ("generator", "discriminator")}
    model = GANModel(config, copy.deepcopy(trainer.sampler).float(),
                     trainer.D if "discriminator" in keep else None, device=trainer.device, others=others)
    # The card's "Use" commands name this folder: the model has no zoo name until it is published as one
    rows = trainer.run_dir.metrics()
    card = cards.model_card(config, rows[-1] if rows else {}, where=shlex.quote(str(trainer.out / "export")))
    return model.save_pretrained(trainer.out / "export", card=card,
                                 dtype=trainer.objective.export_dtype,
                                 max_shard_bytes=trainer.objective.export_shard_bytes)


def export_config(trainer) -> dict:
    opts, data, objective = trainer.opts, trainer.data, trainer.objective
    extra = objective.export_config()
    training = training_record(trainer) | extra.pop("training", {})
    return {"gan_version": __version__,
            "name": opts.name or f"{opts.arch}-{data.dataset}",
            "architecture": opts.arch, "arch_args": trainer.arch_args, "task": trainer.family.task,
            "latent_dim": objective.latent_dim, "image_size": trainer.crop,
            "channels": data.channels, "class_names": None, "dataset": data.dataset} \
        | extra | {"training": training}


def training_record(trainer) -> dict:
    """config.json's ``training``. A resumed run records the one command that sets it up as it was (its
    options.json), not the last session's ``--resume`` line, which alone would not reproduce the model."""
    opts, seconds_before, seconds = trainer.opts, trainer.progress.seconds_before, trainer.train_seconds
    resumed = seconds_before > 0 or trainer.started_at > 0
    command = trainer.family.train_command(opts.asdict()) if resumed else opts.command
    return {"command": command, "steps": trainer.step, "batch_size": opts.batch_size,
            "processes": trainer.dist.world, "epochs": trainer.epochs(), **trainer.objective.record(),
            "ema": opts.ema_decay if opts.ema else None, "seed": opts.seed,
            "device": describe(trainer.device), "seconds": round(seconds_before + seconds),
            "seconds_this_session": round(seconds), "torch": torch.__version__,
            "platform": platform.platform()}
