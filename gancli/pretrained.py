"""A trained GAN as a library object: ``config.json`` + ``model.safetensors``, ``from_pretrained`` / ``save_pretrained``.

Weights are only ever read with safetensors (never unpickled), checked against the sha256 recorded in config.json,
and loaded with strict key and shape checks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from gancli import hub, latents
from gancli.devices import resolve_device
from gancli.imageio import atomic_write, to_pil
from gancli.registry import build


class WeightsError(ValueError):
    """Weights that are missing, corrupt, or do not fit the architecture in config.json."""


class GANModel:
    def __init__(self, config: dict, generator: nn.Module, discriminator: nn.Module | None = None,
                 device: str | torch.device = "cpu", source: str | None = None):
        self.config = config
        self.generator = generator.eval()
        self.discriminator = discriminator
        self.device = torch.device(device)
        self.source = source
        self.generator.to(self.device)

    # ---------------------------------------------------------------- properties from config.json
    @property
    def architecture(self) -> str:
        return self.config["architecture"]

    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def channels(self) -> int:
        return int(self.config["channels"])

    @property
    def class_names(self) -> list[str] | None:
        return self.config.get("class_names")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())

    # ---------------------------------------------------------------- loading and saving
    @classmethod
    def from_config(cls, config: dict, device: str | torch.device = "cpu") -> "GANModel":
        g, d = build(config["architecture"], **config.get("arch_args", {}))
        return cls(config, g, d, device=device)

    @classmethod
    def from_pretrained(cls, name: str | Path, device: str | torch.device = "auto") -> "GANModel":
        resolved = hub.resolve(str(name))
        folder = resolved.path
        config = hub.read_config(folder)
        for key in ("architecture", "latent_dim", "image_size", "channels"):
            if key not in config:
                raise WeightsError(f"{folder / hub.CONFIG_NAME} lacks the required key {key!r}")
        weights = folder / hub.WEIGHTS_NAME
        if not weights.is_file():
            raise WeightsError(f"{folder} has no {hub.WEIGHTS_NAME}")
        expected = (config.get("files") or {}).get(hub.WEIGHTS_NAME, {}).get("sha256")
        if expected:
            actual = hub.sha256_file(weights)
            if actual != expected:
                raise WeightsError(f"{weights} is corrupt or was changed: sha256 {actual[:12]}… does not match "
                                   f"{expected[:12]}… recorded in config.json (delete it and download again)")
        try:
            state = load_file(weights)
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{weights} is not a readable safetensors file ({str(e).splitlines()[0]}); "
                               "it may be truncated") from None
        g, d = build(config["architecture"], **config.get("arch_args", {}))
        load_strict(g, state, "generator.", weights)
        if any(k.startswith("discriminator.") for k in state):
            load_strict(d, state, "discriminator.", weights)
        else:
            d = None
        model = cls(config, g, d, device=resolve_device(device), source=f"{resolved.source}:{folder}")
        return model

    def save_pretrained(self, folder: str | Path, card: str | None = None, include_discriminator: bool = True):
        """Write config.json (with the weights' sha256), model.safetensors and, if given, the model card."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {f"generator.{k}": v for k, v in self.generator.state_dict().items()}
        if include_discriminator and self.discriminator is not None:
            state |= {f"discriminator.{k}": v for k, v in self.discriminator.state_dict().items()}
        state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        weights = folder / hub.WEIGHTS_NAME
        atomic_write(weights, lambda f: f.write(_safetensors_bytes(state, {"architecture": self.architecture})))
        config = dict(self.config)
        config["files"] = {hub.WEIGHTS_NAME: {"sha256": hub.sha256_file(weights), "bytes": weights.stat().st_size}}
        self.config = config
        atomic_write(folder / hub.CONFIG_NAME, lambda f: f.write((json.dumps(config, indent=2) + "\n").encode()))
        if card is not None:
            atomic_write(folder / hub.CARD_NAME, lambda f: f.write(card.encode()))
        return folder

    # ---------------------------------------------------------------- sampling
    def to(self, device: str | torch.device) -> "GANModel":
        self.device = resolve_device(device)
        self.generator.to(self.device)
        return self

    @property
    def is_conditional(self) -> bool:
        return bool(self.config.get("arch_args", {}).get("num_classes"))

    def class_index(self, label: int | str) -> int:
        """A class by index or by name (case and punctuation ignored; a unique prefix is enough)."""
        if not self.is_conditional:
            raise ValueError(f"{self.config.get('name', 'this model')} is not a conditional model: it takes no label")
        names = self.class_names or [str(i) for i in range(self.config["arch_args"]["num_classes"])]
        key = _normalise(str(label))
        exact = [i for i, n in enumerate(names) if _normalise(n) == key]
        if exact:
            return exact[0]
        if str(label).isdigit() and int(label) < len(names):
            return int(label)
        prefix = [i for i, n in enumerate(names) if _normalise(n).startswith(key)] if key else []
        if len(prefix) == 1:
            return prefix[0]
        from gancli.registry import UnknownNameError

        raise UnknownNameError("class", str(label), names)

    def labels_for(self, n: int, label: int | str | None = None) -> torch.Tensor | None:
        """Labels for n images: all ``label``, or (conditional models, no label) cycling through the classes."""
        if label is not None:
            return torch.full((n,), self.class_index(label), dtype=torch.long)
        if self.is_conditional:
            return torch.arange(n) % self.config["arch_args"]["num_classes"]
        return None

    @torch.inference_mode()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 256) -> Iterator[torch.Tensor]:
        """Images for the given latents (and labels), batch by batch, as CPU float tensors in [-1, 1]."""
        if self.is_conditional and labels is None:
            labels = self.labels_for(len(z))
        for start in range(0, len(z), batch_size):
            y = labels[start:start + batch_size].to(self.device) if labels is not None else None
            yield self.generator(z[start:start + batch_size].to(self.device), y).float().cpu()

    def latents_for(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None) -> torch.Tensor:
        pairs = [(s, 0) for s in seeds] if seeds is not None else [(seed, i) for i in range(n or 0)]
        return latents.latents(pairs, self.latent_dim)

    def sample(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None,
               label: int | str | None = None, batch_size: int = 256) -> torch.Tensor:
        """``n`` images from ``seed`` (or one per entry of ``seeds``): a (N, C, H, W) tensor in [-1, 1].

        Conditional models draw class ``label`` (an index or a class name), or cycle through the classes."""
        z = self.latents_for(n, seed, seeds)
        if len(z) == 0:
            return torch.empty(0, self.channels, self.image_size, self.image_size)
        return torch.cat(list(self.generate(z, self.labels_for(len(z), label), batch_size)))

    def sample_images(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None,
                      label: int | str | None = None):
        return to_pil(self.sample(n, seed, seeds, label))

    def __repr__(self):
        return (f"GANModel({self.architecture}, {self.image_size}x{self.image_size}x{self.channels}, "
                f"z={self.latent_dim}, {self.num_parameters():,} generator parameters, device={self.device})")


def load(name: str | Path, device: str | torch.device = "auto") -> GANModel:
    """Load a model by zoo name, local folder or ``owner/repo[@revision]`` on the Hugging Face Hub."""
    return GANModel.from_pretrained(name, device=device)


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, source) -> None:
    own = module.state_dict()
    theirs = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = [f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in theirs and theirs[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s) (e.g. {prefix}{missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {prefix}{unexpected[0]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) (e.g. {prefix}{shapes[0]})")
    if problems:
        raise WeightsError(f"{source} does not fit the architecture in config.json: " + "; ".join(problems))
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in theirs.items()}, strict=True)


def _safetensors_bytes(state: dict, metadata: dict) -> bytes:
    from safetensors.torch import save

    return save(state, metadata={"format": "pt", **{k: str(v) for k, v in metadata.items()}})


__all__ = ["GANModel", "WeightsError", "load", "load_strict"]
