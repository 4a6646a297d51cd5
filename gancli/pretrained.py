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
from gancli.devices import preferred_memory_format, resolve_device
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
        self.memory_format = preferred_memory_format(generator, self.device)
        self.generator.to(self.device, memory_format=self.memory_format)

    # ---------------------------------------------------------------- properties from config.json
    @property
    def architecture(self) -> str:
        return self.config["architecture"]

    @property
    def latent_dim(self) -> int:
        return int(self.config.get("latent_dim") or 0)

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
        if config.get("task") == "classifier":
            raise WeightsError(f"{name} is a classifier (a judge for `gan eval`), not a generator")
        for key in ("architecture", "image_size", "channels"):
            if key not in config:
                raise WeightsError(f"{folder / hub.CONFIG_NAME} lacks the required key {key!r}")
        state = read_weights(folder, config)
        g, d = build(config["architecture"], **config.get("arch_args", {}))
        load_strict(g, state, "generator.", folder)
        if any(k.startswith("discriminator.") for k in state):
            load_strict(d, state, "discriminator.", folder)
        else:
            d = None
        return cls(config, g, d, device=resolve_device(device), source=f"{resolved.source}:{folder}")

    def save_pretrained(self, folder: str | Path, card: str | None = None, include_discriminator: bool = True,
                        dtype: torch.dtype | None = None, max_shard_bytes: int | None = None):
        """Write config.json (with each weights file's sha256), the weights and, if given, the model card.

        ``dtype=torch.float16`` halves the files; ``max_shard_bytes`` splits them the Hugging Face way
        (``model-00001-of-0000N.safetensors`` + ``model.safetensors.index.json``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {f"generator.{k}": v for k, v in self.generator.state_dict().items()}
        if include_discriminator and self.discriminator is not None:
            state |= {f"discriminator.{k}": v for k, v in self.discriminator.state_dict().items()}
        self.config = write_folder(folder, state, self.config, card, dtype, max_shard_bytes)
        return folder

    # ---------------------------------------------------------------- sampling
    def to(self, device: str | torch.device) -> "GANModel":
        self.device = resolve_device(device)
        self.memory_format = preferred_memory_format(self.generator, self.device)
        self.generator.to(self.device, memory_format=self.memory_format)
        return self

    # ---------------------------------------------------------------- translation models
    @property
    def is_translation(self) -> bool:
        return self.config.get("task") == "translation"

    @property
    def domains(self) -> list[str]:
        return list(self.config.get("domains") or ["A", "B"])

    def direction(self, spec: str = "a2b") -> str:
        """``a2b`` / ``b2a``, a target domain name (``zebra``), or ``horse2zebra``."""
        if not self.is_translation:
            raise ValueError(f"{self.config.get('name', 'this model')} is not a translation model")
        a, b = (_normalise(d) for d in self.domains)
        key = _normalise(spec)
        table = {"a2b": "a2b", "b2a": "b2a", b: "a2b", a: "b2a", f"{a}2{b}": "a2b", f"{b}2{a}": "b2a",
                 "atob": "a2b", "btoa": "b2a"}
        if key not in table:
            from gancli.registry import UnknownNameError

            raise UnknownNameError("direction", spec, ["a2b", "b2a", *self.domains])
        if not hasattr(self.generator, table[key]):
            raise ValueError(f"{self.config.get('name', 'this model')} has no {table[key]} generator "
                             f"(it holds: {', '.join(n for n, _ in self.generator.named_children())})")
        return table[key]

    def target_domain(self, direction: str) -> str:
        return self.domains[1] if self.direction(direction) == "a2b" else self.domains[0]

    @torch.inference_mode()
    def translate(self, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """(N, C, H, W) in [-1, 1], sides multiples of 4 (see gancli.translate for any size) -> same shape."""
        net = getattr(self.generator, self.direction(direction))
        return net(images.to(self.device).contiguous(memory_format=self.memory_format)).float().cpu()

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
        if self.is_translation:
            raise ValueError(f"{self.config.get('name', 'this model')} translates images rather than sampling them: "
                             "use `gan translate`")
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


def read_weights(folder: Path, config: dict) -> dict[str, torch.Tensor]:
    """All tensors of a model folder (one file, or shards listed in the index), each file checked against its sha256."""
    index = folder / hub.INDEX_NAME
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as e:
            raise WeightsError(f"{index} is not a valid shard index ({e})") from None
    elif (folder / hub.WEIGHTS_NAME).is_file():
        names = [hub.WEIGHTS_NAME]
    else:
        raise WeightsError(f"{folder} has no {hub.WEIGHTS_NAME}")
    recorded = config.get("files") or {}
    state: dict[str, torch.Tensor] = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path} is missing (listed in {hub.INDEX_NAME})")
        expected = recorded.get(name, {}).get("sha256")
        if expected:
            actual = hub.sha256_file(path)
            if actual != expected:
                raise WeightsError(f"{path} is corrupt or was changed: sha256 {actual[:12]}… does not match "
                                   f"{expected[:12]}… recorded in config.json (delete it and download again)")
        try:
            state |= load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0]}); "
                               "it may be truncated") from None
    return state


def write_folder(folder: Path, state: dict[str, torch.Tensor], config: dict, card: str | None = None,
                 dtype: torch.dtype | None = None, max_shard_bytes: int | None = None) -> dict:
    """Write a model folder in the Hub layout: weights (maybe cast and sharded), config.json with each file's sha256,
    and the card. Returns the config as written. Every file is written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().to("cpu").contiguous()
             for k, v in state.items()}
    for old in list(folder.glob("*.safetensors")) + list(folder.glob(hub.INDEX_NAME)):
        old.unlink()
    shards = _shard(state, max_shard_bytes)
    files = {}
    meta = {"architecture": config.get("architecture", "")}
    for shard_name, keys in shards.items():
        part = {k: state[k] for k in keys}
        atomic_write(folder / shard_name, lambda f, part=part: f.write(_safetensors_bytes(part, meta)))
        files[shard_name] = {"sha256": hub.sha256_file(folder / shard_name), "bytes": (folder / shard_name).stat().st_size}
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                 "weight_map": {k: name for name, keys in shards.items() for k in keys}}
        atomic_write(folder / hub.INDEX_NAME, lambda f: f.write((json.dumps(index, indent=2) + "\n").encode()))
    config = dict(config)
    config["files"] = files
    config["dtype"] = str(dtype or torch.float32).removeprefix("torch.")
    atomic_write(folder / hub.CONFIG_NAME, lambda f: f.write((json.dumps(config, indent=2) + "\n").encode()))
    if card is not None:
        atomic_write(folder / hub.CARD_NAME, lambda f: f.write(card.encode()))
    return config


def _shard(state: dict[str, torch.Tensor], max_bytes: int | None) -> dict[str, list[str]]:
    """Greedy split of the tensors, in key order, into files of at most ``max_bytes`` (one tensor may exceed it)."""
    total = sum(t.numel() * t.element_size() for t in state.values())
    if not max_bytes or total <= max_bytes:
        return {hub.WEIGHTS_NAME: list(state)}
    groups, current, size = [], [], 0
    for k, t in state.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(k)
        size += nbytes
    groups.append(current)
    n = len(groups)
    return {f"model-{i + 1:05d}-of-{n:05d}.safetensors": g for i, g in enumerate(groups)}


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def state_mismatches(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], prefix: str = "",
                     optional: frozenset[str] = frozenset()) -> list[str]:
    """What keeps ``given`` from loading where ``expected`` is: missing, unexpected and misshapen tensors, in words."""
    missing = sorted(set(expected) - set(given) - optional)
    unexpected = sorted(set(given) - set(expected))
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in given and given[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s) (e.g. {prefix}{missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {prefix}{unexpected[0]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) (e.g. {prefix}{shapes[0]})")
    return problems


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, source) -> None:
    own = module.state_dict()
    theirs = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    problems = state_mismatches(own, theirs, prefix)
    if problems:
        raise WeightsError(f"{source} does not fit the architecture in config.json: " + "; ".join(problems))
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in theirs.items()}, strict=True)


def _safetensors_bytes(state: dict, metadata: dict) -> bytes:
    from safetensors.torch import save

    return save(state, metadata={"format": "pt", **{k: str(v) for k, v in metadata.items()}})


__all__ = ["GANModel", "WeightsError", "load", "load_strict"]
