"""What a finished run leaves in RUN_DIR/export: config.json (the model's keys and the record of its training), the
weights of the networks the family exports, and the model card.

The export reads a ``FinishedRun``, not the loop: what it writes is then plainly a function of what the loop hands it.
"""
from __future__ import annotations

import copy
import platform
import shlex
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gancli.devices import describe
from gancli.families.base import Family, Objective, TrainingData
from gancli.options import Options
from gancli.training.ema import calibrate_ema
from gancli.use import cards
from gancli.use.model import GANModel
from gancli.version import __version__


@dataclass
class FinishedRun:
    """What an export needs of a run, at the step it ends on (``gancli.training.trainer.Trainer`` makes one)."""
    opts: Options
    family: Family
    objective: Objective
    data: TrainingData
    arch_args: dict
    crop: int                # the training size, the model's image size
    nets: dict[str, nn.Module]
    G_ema: nn.Module | None  # exported in G's place when there is one, its batch-norm statistics measured first
    device: torch.device
    processes: int
    step: int                # the one it ends on
    epochs: float
    started_at: int          # the step this session started from
    seconds: float           # this session's training time
    seconds_before: float    # earlier sessions'


def export(run: FinishedRun, rows: list[dict], folder: Path) -> Path:
    """The model folder ``folder``; ``rows``: metrics.jsonl's training rows, whose last is on the model card."""
    config = export_config(run)
    if run.G_ema is not None:
        calibrate_ema(run.G_ema, run.device, run.opts.seed, run.objective.latent_dim, run.objective.num_classes)
    keep = run.family.exported
    sampler = run.G_ema if run.G_ema is not None else run.nets["generator"]
    others = {k: net for k, net in run.nets.items() if k in keep and k not in ("generator", "discriminator")}
    model = GANModel.of_family(config)(config, copy.deepcopy(sampler).float(),
                                       run.nets.get("discriminator") if "discriminator" in keep else None,
                                       device=run.device, others=others)
    # The card's "Use" commands name this folder: the model has no zoo name until it is published as one
    card = cards.model_card(config, rows[-1] if rows else {}, where=shlex.quote(str(folder)))
    return model.save_pretrained(folder, card=card, dtype=run.objective.export_dtype,
                                 max_shard_bytes=run.objective.export_shard_bytes)


def export_config(run: FinishedRun) -> dict:
    opts, data, objective = run.opts, run.data, run.objective
    extra = objective.export_config()
    training = training_record(run) | extra.pop("training", {})
    return {"gan_version": __version__,
            "name": opts.name or f"{opts.arch}-{data.dataset}",
            "architecture": opts.arch, "arch_args": run.arch_args,
            "task": "unconditional",  # unless the objective's export_config says otherwise
            "latent_dim": objective.latent_dim, "image_size": run.crop,
            "channels": data.channels, "class_names": None, "dataset": data.dataset} \
        | extra | {"training": training}


def training_record(run: FinishedRun) -> dict:
    """config.json's ``training``. A resumed run records the one command that sets it up as it was (its
    options.json), not the last session's ``--resume`` line, which alone would not reproduce the model."""
    opts = run.opts
    resumed = run.seconds_before > 0 or run.started_at > 0
    command = run.family.train_command(opts.asdict()) if resumed else opts.command
    return {"command": command, "steps": run.step, "batch_size": opts.batch_size,
            "processes": run.processes, "epochs": run.epochs, **run.objective.record(),
            "ema": opts.ema_decay if opts.ema else None, "seed": opts.seed,
            "device": describe(run.device), "seconds": round(run.seconds_before + run.seconds),
            "seconds_this_session": round(run.seconds), "torch": torch.__version__,
            "platform": platform.platform()}
