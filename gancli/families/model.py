"""A trained model as a library object: ``config.json`` + ``model.safetensors``, ``from_pretrained`` /
``save_pretrained``.

Weights are only ever read with safetensors (never unpickled), checked against the sha256 recorded in config.json,
and loaded with strict key and shape checks (see ``gancli.store.weights``). The networks come from the family named
in config.json (``architecture``), built from ``arch_args``. ``GANModel`` holds what every model has; what else a
model can do is its family's: a family declares its model class (``Family.model_class``, a subclass of this one
whose ``abilities`` say what it brings; gancli.families.abilities), so a family that brings an ability (a space to
walk in, a caption to draw from) adds it in its own module.

Families are looked up in the registry: ``gancli.load`` (gancli.use.model) imports the catalogue first.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from gancli import latents, registry
from gancli.data.datasets import class_key
from gancli.data.imageio import to_pil
from gancli.devices import preferred_memory_format, resolve_device
from gancli.families.abilities import GENERATE, Ability, bringing
from gancli.families.inference import for_inference, weights_key
from gancli.store import hub
from gancli.store.weights import WeightsError, check_config, load_networks, load_strict, write_folder


class NotAbleError(AttributeError, ValueError):
    """Asked of a model what its family cannot do: a ValueError to the CLI (one line), an AttributeError to
    ``hasattr``."""


class GANModel:
    """What every model has: its config, generator, device and precision, loading and saving, sampling from z.
    Loading returns an instance of the family's ``model_class``: this class, or a subclass declaring
    ``abilities``."""

    abilities: tuple[Ability, ...] = ()
    # the operation that takes images instead of z (translate, upscale), from the abilities; None: a sampler
    image_operation: str | None = None

    def __init_subclass__(cls, **kwargs):
        """A declared ability is a promise: every operation it names is a method of the class."""
        super().__init_subclass__(**kwargs)
        for ability in cls.abilities:
            missing = [op for op in ability.operations if not hasattr(cls, op)]
            if missing:
                raise TypeError(f"{cls.__name__} declares {ability.name} but lacks {', '.join(missing)}")
        cls.image_operation = next((a.replaces_generate for a in cls.abilities if a.replaces_generate), None)

    def __init__(self, config: dict, generator: nn.Module, discriminator: nn.Module | None = None,
                 device: str | torch.device = "cpu", source: str | None = None,
                 others: dict[str, nn.Module] | None = None):
        self.config = config
        self.family = registry.lookup(config["architecture"])
        self.generator = generator.eval()
        self.discriminator = discriminator
        self.others = {k: v.eval() for k, v in (others or {}).items()}  # e.g. a VAE's encoder
        self.device = torch.device(device)
        self.source = source
        self.memory_format = preferred_memory_format(generator, self.device)
        self.generator.to(self.device, memory_format=self.memory_format)
        for net in self.others.values():
            net.to(self.device)
        self.backend, self.runners = "torch", {}
        self.bf16 = False  # bf16 for sampling and translating (``--bf16``): faster, not the same pixels

    def autocast(self):
        """bf16 autocast when asked for: about 2x on a CPU with avx512_bf16 (bench/speed.py), but images differ
        from fp32 by up to several grey levels, so fp32 stays the default."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def prepared(self, net: nn.Module, make=copy.deepcopy) -> nn.Module:
        """The copy of ``net`` that runs on the CPU: ``make(net)`` (a rewrite for inference, or a plain copy), in
        bf16 under --bf16, kept until ``net``'s weights or the precision change. A bf16 copy keeps activations bf16
        between layers: autocast alone recasts fp32 weights on every call (a 256 px CycleGAN: 1.9x fp32 that way,
        2.1x with the copy, its pixels as far from fp32's; bench/speed.py). Autocast still covers what a forward pass
        makes in fp32 on its own."""
        copies = self.__dict__.setdefault("_prepared", {})
        key = (weights_key(net), make, self.input_dtype)
        if id(net) not in copies or copies[id(net)][0] != key:
            ready = make(net)
            copies[id(net)] = (key, ready.to(self.input_dtype) if self.input_dtype else ready)
        return copies[id(net)][1]

    @property
    def input_dtype(self) -> torch.dtype | None:
        """What ``prepared`` networks take: bf16 under --bf16 on the CPU; otherwise None (as given)."""
        return torch.bfloat16 if self.bf16 and self.device.type == "cpu" else None

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
    @staticmethod
    def build(config: dict) -> dict[str, nn.Module]:
        family = registry.lookup(config["architecture"])
        try:
            return family.build(**config.get("arch_args", {}))
        except TypeError as e:
            raise ValueError(f"bad arguments for architecture {family.name!r}: {e}") from None

    @classmethod
    def from_config(cls, config: dict, device: str | torch.device = "cpu") -> "GANModel":
        nets = cls.build(config)
        return cls.of_family(config)(config, nets.pop("generator"), nets.pop("discriminator", None), device=device,
                                     others=nets)

    @classmethod
    def of_family(cls, config: dict) -> type:
        """The class a model of this config is: its family's declared one (``cls`` itself where that is a
        subclass of it)."""
        declared = registry.lookup(config["architecture"]).model_class
        return cls if issubclass(cls, declared) else declared

    @classmethod
    def from_pretrained(cls, name: str | Path, device: str | torch.device = "auto") -> "GANModel":
        resolved = hub.resolve(str(name))
        folder = resolved.path
        config = hub.read_config(folder)
        if config.get("task") == "classifier":
            raise WeightsError(f"{name} is a classifier (a judge for `gan eval`), not a generator")
        check_config(config, folder / hub.CONFIG_NAME)  # before the family is looked up by its name
        _check_latent_dim(config, folder / hub.CONFIG_NAME)
        family = registry.lookup(config["architecture"])
        why = family.check_config(config, folder / hub.CONFIG_NAME)
        if why:
            raise WeightsError(why)
        nets = load_networks(folder, config, family.build, {"generator"})
        return cls.of_family(config)(config, nets.pop("generator"), nets.pop("discriminator", None),
                                     device=resolve_device(device), source=f"{resolved.source}:{folder}", others=nets)

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
        for net_name, net in self.others.items():
            state |= {f"{net_name}.{k}": v for k, v in net.state_dict().items()}
        self.config = write_folder(folder, state, self.config, card, dtype, max_shard_bytes)
        return folder

    # ---------------------------------------------------------------- sampling
    def to(self, device: str | torch.device) -> "GANModel":
        self.device = resolve_device(device)
        self.memory_format = preferred_memory_format(self.generator, self.device)
        self.generator.to(self.device, memory_format=self.memory_format)
        for net in self.others.values():
            net.to(self.device)
        self.backend, self.runners = "torch", {}  # a graph readied for the CPU is not for the new device
        return self

    @property
    def is_translation(self) -> bool:
        return self.image_operation == "translate"

    @property
    def operations(self) -> list[str]:
        """What this model can be asked to do: ``generate`` (samplers), or the operation that replaces it
        (translate, upscale), and every operation its abilities bring."""
        return ([] if self.image_operation else [GENERATE]) + [op for a in self.abilities for op in a.operations]

    @property
    def is_conditional(self) -> bool:
        return bool(self.config.get("arch_args", {}).get("num_classes"))

    def class_index(self, label: int | str) -> int:
        """A class by index or by name (case and punctuation ignored; a unique prefix is enough)."""
        if not self.is_conditional:
            raise ValueError(f"{self.config.get('name', 'this model')} is not a conditional model: it takes no label")
        names = self.class_names or [str(i) for i in range(self.config["arch_args"]["num_classes"])]
        return find_class(names, label, self.config.get("name", "this model"))

    @property
    def takes_text(self) -> bool:
        """Whether images are drawn from captions (an ability's ``text`` option; see ``labels_for``)."""
        return "text" in self.use_options(GENERATE)

    def use_options(self, operation: str | None = None) -> dict:
        """The options this model takes at use time (name -> ``gancli.options.Option``), for ``operation`` or for
        any: its abilities declare them (a StyleGAN's ``truncation``, a StackGAN's ``text`` and ``stage``)."""
        return {o.name: o for a in self.abilities for o in a.options
                if operation is None or operation in o.operations}

    def check_use(self, **use):
        """Refuse, in one line, an option given that this model does not take (``--truncation`` for a DCGAN)."""
        for name, value in use.items():
            if value is not None and name not in self.use_options():
                self.refuse("--" + name.replace("_", "-"))

    def require_use(self, **use):
        """What a model cannot draw without (a text model's caption): its ability says how to give it."""

    def describe_use(self, **use) -> list[str]:
        """The use-time options given, as the command's summary line shows them."""
        return []

    def labels_for(self, n: int, label: int | str | None = None, **use) -> torch.Tensor | None:
        """Labels for n images: all ``label``, or (conditional models, no label) cycling through the classes. A
        family whose models take something else (captions) overrides this."""
        self.check_use(**use)
        if label is not None:
            return torch.full((n,), self.class_index(label), dtype=torch.long)
        if self.is_conditional:
            return torch.arange(n) % self.config["arch_args"]["num_classes"]
        return None

    def generator_options(self, **use) -> dict:
        """What the generator takes besides z and labels: a family's ability that has generator options (a
        truncation psi, a stage) adds its own in an override; the rest of ``use`` (a caption) is not for it."""
        return {}

    def require(self, operation: str):
        """Refuse, in words, an operation this model cannot do (``gan upscale`` on a DCGAN, say)."""
        if operation not in self.operations:
            ability = bringing(operation)
            self.refuse(ability.phrase(operation) if ability else operation)

    def refuse(self, what: str):
        """One line saying which families can do ``what`` (an option like ``--truncation``, or an operation's
        phrase), for a model whose family cannot."""
        def able(family) -> bool:
            return any(what in a.operations.values() or any(o.spelling == what for o in a.options)
                       for a in family.model_class.abilities)

        others = sorted(f.name for f in registry.registered().values() if able(f))
        raise NotAbleError(f"{self.config.get('name', 'this model')} is a {self.architecture} model: {what} is for "
                           f"{', '.join(others) or 'no'} models")

    def __getattr__(self, attribute: str):
        """Called only for what this model lacks: another ability's operation (``style_mix`` on a DCGAN) is
        refused in words; NotAbleError is an AttributeError too, so ``hasattr`` stays False."""
        ability = bringing(attribute) if not attribute.startswith("_") else None
        if ability is not None:
            self.refuse(ability.phrase(attribute))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")

    @torch.inference_mode()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 256,
                 **options) -> Iterator[torch.Tensor]:
        """Images for the given latents (and labels), batch by batch, as CPU float tensors in [-1, 1]. ``options``
        are the family's use-time options (``truncation=0.7``, ``stage=1``; see ``use_options``)."""
        self.check_use(**options)
        kwargs = self.generator_options(**options)
        if (self.is_conditional or self.takes_text) and labels is None:
            labels = self.labels_for(len(z))
        runner = self.runners.get("") if not kwargs else None
        generator = self.sampling_generator()
        for start in range(0, len(z), batch_size):
            if runner is not None:
                yield runner(z[start:start + batch_size], *([] if labels is None else [labels[start:start + batch_size]]))
                continue
            y = labels[start:start + batch_size].to(self.device) if labels is not None else None
            with self.autocast():
                images = generator(z[start:start + batch_size].to(self.device, self.input_dtype), y, **kwargs).float().cpu()
            yield images

    def sampling_generator(self) -> nn.Module:
        """What ``generate`` runs: on the CPU, the generator rewritten for inference (gancli.families.inference: the same
        function, 1.3x faster for a DCGAN; in bf16 under --bf16); elsewhere the generator."""
        return self.prepared(self.generator, for_inference) if self.device.type == "cpu" else self.generator

    def read_images(self, paths: list[str | Path], notes=None) -> torch.Tensor:
        """Image files as a batch this model takes: its channels, resized and centre-cropped to its size
        (``notes``: a ``gancli.data.reading.InputNotes`` that hears of animations and transparency)."""
        from gancli.data.reading import read_batch

        return read_batch(paths, self.channels, self.image_size, notes)

    def latents_for(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None) -> torch.Tensor:
        pairs = [(s, 0) for s in seeds] if seeds is not None else [(seed, i) for i in range(n or 0)]
        return latents.latents(pairs, self.latent_dim)

    def sample(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None,
               label: int | str | None = None, batch_size: int = 256, text: str | list[str] | None = None,
               **options) -> torch.Tensor:
        """``n`` images from ``seed`` (or one per entry of ``seeds``): a (N, C, H, W) tensor in [-1, 1].

        Conditional models draw class ``label`` (an index or a class name), or cycle through the classes. Text
        models draw ``text`` (a caption, or a list of captions cycled through the images). ``options``: the family's
        generator options (``truncation=0.7`` for a StyleGAN, ``stage=1`` for a StackGAN)."""
        if self.image_operation:
            raise ValueError(f"{self.config.get('name', 'this model')} {self.image_operation}s images rather than "
                             f"sampling them: use `gan {self.image_operation}`")
        self.check_use(text=text, **options)
        self.require_use(text=text, **options)
        if seeds is None and (n is None or n < 0):
            raise ValueError(f"the number of images must be 0 or more, not {n}")
        z = self.latents_for(n, seed, seeds)
        if len(z) == 0:
            return torch.empty(0, self.channels, self.image_size, self.image_size)
        return torch.cat(list(self.generate(z, self.labels_for(len(z), label, text=text, **options), batch_size,
                                            text=text, **options)))

    def sample_images(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None,
                      label: int | str | None = None, text: str | list[str] | None = None, **options):
        return to_pil(self.sample(n, seed, seeds, label, text=text, **options))

    def __repr__(self):
        return (f"GANModel({self.architecture}, {self.image_size}x{self.image_size}x{self.channels}, "
                f"z={self.latent_dim}, {self.num_parameters():,} generator parameters, device={self.device})")


def _check_latent_dim(config: dict, path: Path):
    """A sampler's z size comes from config.json: missing, it would reach the network as a 0-wide input. (Its type,
    range and agreement with arch_args are check_config's.)"""
    if registry.lookup(config["architecture"]).model_class.image_operation:  # they take images, not z
        return
    if config.get("latent_dim") is None:
        raise WeightsError(f"{path} lacks the required key 'latent_dim' (the size of z)")
    if config["latent_dim"] < 1:
        raise WeightsError(f"{path}: latent_dim is 0; a model that samples needs a z of at least 1")


def find_class(names: list[str], label: int | str, model: str) -> int:
    """The index of ``label`` among ``names``. A label without letters ("7", "-1", "1.5") is an index or an exact
    name: ignoring its punctuation would turn -1 into 1."""
    text, prefix = str(label).strip(), []
    if not any(ch.isalpha() for ch in text):
        if text in names:
            return names.index(text)
        if text.isdigit() and int(text) < len(names):
            return int(text)
    else:
        key = class_key(text)
        exact = [i for i, n in enumerate(names) if class_key(n) == key]
        prefix = [i for i, n in enumerate(names) if class_key(n).startswith(key)]
        if exact or len(prefix) == 1:
            return (exact or prefix)[0]
    indexed = names == [str(i) for i in range(len(names))]
    valid = ", ".join(names) if indexed else ", ".join(f"{i} {n}" for i, n in enumerate(names))
    what = f"class {str(label)!r} is ambiguous" if len(prefix) > 1 else f"unknown class {str(label)!r}"
    raise LookupError(f"{what} for {model}: "
                      + (f"the classes are {valid}" if indexed else f"give a class name or its index: {valid}"))


__all__ = ["GANModel", "NotAbleError", "WeightsError", "load_strict"]
