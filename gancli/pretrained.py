"""A trained model as a library object: ``config.json`` + ``model.safetensors``, ``from_pretrained`` /
``save_pretrained``.

Weights are only ever read with safetensors (never unpickled), checked against the sha256 recorded in config.json,
and loaded with strict key and shape checks (see ``gancli.weights``). The networks come from the family named in
config.json (``architecture``), built from ``arch_args``; what else a model can do (truncation and style mixing,
encoding real images) is what its family declares in ``capabilities``.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from gancli import catalog, hub, latents
from gancli.devices import preferred_memory_format, resolve_device
from gancli.errors import UnknownNameError
from gancli.imageio import to_pil
from gancli.weights import WeightsError, check_config, load_networks, load_strict, write_folder

class GANModel:
    def __init__(self, config: dict, generator: nn.Module, discriminator: nn.Module | None = None,
                 device: str | torch.device = "cpu", source: str | None = None,
                 others: dict[str, nn.Module] | None = None):
        self.config = config
        self.family = catalog.get(config["architecture"])
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
        from gancli.inference import weights_key

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

    def use_backend(self, backend: str = "torch", direction: str | None = None) -> str:
        """Run the generator with ``backend`` (gancli.backends: torch, onnxruntime) from now on; a translator
        readies only ``direction``. Returns the backend that runs. Truncation, StackGAN's stage I and the like are
        not in the exported graph: those requests keep running on PyTorch."""
        from gancli import backends

        self.backend = backends.choose(backend, self.device)
        self.runners = backends.onnx_runners(self, direction) if self.backend == "onnxruntime" else {}
        return self.backend

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
        family = catalog.get(config["architecture"])
        try:
            return family.build(**config.get("arch_args", {}))
        except TypeError as e:
            raise ValueError(f"bad arguments for architecture {family.name!r}: {e}") from None

    @classmethod
    def from_config(cls, config: dict, device: str | torch.device = "cpu") -> "GANModel":
        nets = cls.build(config)
        return cls(config, nets.pop("generator"), nets.pop("discriminator", None), device=device, others=nets)

    @classmethod
    def from_pretrained(cls, name: str | Path, device: str | torch.device = "auto") -> "GANModel":
        resolved = hub.resolve(str(name))
        folder = resolved.path
        config = hub.read_config(folder)
        if config.get("task") == "classifier":
            raise WeightsError(f"{name} is a classifier (a judge for `gan eval`), not a generator")
        check_config(config, folder / hub.CONFIG_NAME)  # before the family is looked up by its name
        _check_latent_dim(config, folder / hub.CONFIG_NAME)
        family = catalog.get(config["architecture"])
        why = family.check_config(config, folder / hub.CONFIG_NAME)
        if why:
            raise WeightsError(why)
        nets = load_networks(folder, config, family.build, {"generator"})
        return cls(config, nets.pop("generator"), nets.pop("discriminator", None), device=resolve_device(device),
                   source=f"{resolved.source}:{folder}", others=nets)

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

    # ---------------------------------------------------------------- translation models
    @property
    def is_translation(self) -> bool:
        return "translate" in self.family.capabilities

    @property
    def image_command(self) -> str | None:
        """What a model that takes images instead of z runs under ("translate", "upscale"); None for samplers."""
        return next((c for c in ("translate", "upscale") if c in self.family.capabilities), None)

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
            raise UnknownNameError("direction", spec, ["a2b", "b2a", *self.domains])
        if not hasattr(self.generator, table[key]):
            raise ValueError(f"{self.config.get('name', 'this model')} has no {table[key]} generator "
                             f"(it holds: {', '.join(n for n, _ in self.generator.named_children())})")
        return table[key]

    def target_domain(self, direction: str) -> str:
        return self.domains[1] if self.direction(direction) == "a2b" else self.domains[0]

    @torch.inference_mode()
    def translate(self, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """(N, C, H, W) in [-1, 1], sides multiples of the network's ``multiple`` (CycleGAN: 4; see gancli.translate
        for any size) -> same shape."""
        direction = self.direction(direction)
        if direction in self.runners:
            return self.runners[direction](images.float())
        net = getattr(self.generator, direction)
        net = self.prepared(net) if self.input_dtype else net
        x = images.to(self.device, self.input_dtype).contiguous(memory_format=self.memory_format)
        with self.autocast():
            return net(x).float().cpu()

    @property
    def is_conditional(self) -> bool:
        return bool(self.config.get("arch_args", {}).get("num_classes"))

    def class_index(self, label: int | str) -> int:
        """A class by index or by name (case and punctuation ignored; a unique prefix is enough). A label without
        letters ("7", "-1", "1.5") is an index or an exact name: ignoring its punctuation would turn -1 into 1."""
        if not self.is_conditional:
            raise ValueError(f"{self.config.get('name', 'this model')} is not a conditional model: it takes no label")
        names = self.class_names or [str(i) for i in range(self.config["arch_args"]["num_classes"])]
        text, prefix = str(label).strip(), []
        if not any(ch.isalpha() for ch in text):
            if text in names:
                return names.index(text)
            if text.isdigit() and int(text) < len(names):
                return int(text)
        else:
            key = _normalise(text)
            exact = [i for i, n in enumerate(names) if _normalise(n) == key]
            prefix = [i for i, n in enumerate(names) if _normalise(n).startswith(key)]
            if exact or len(prefix) == 1:
                return (exact or prefix)[0]
        indexed = names == [str(i) for i in range(len(names))]
        valid = ", ".join(names) if indexed else ", ".join(f"{i} {n}" for i, n in enumerate(names))
        what = f"class {str(label)!r} is ambiguous" if len(prefix) > 1 else f"unknown class {str(label)!r}"
        raise LookupError(f"{what} for {self.config.get('name', 'this model')}: "
                          + (f"the classes are {valid}" if indexed else f"give a class name or its index: {valid}"))

    @property
    def takes_text(self) -> bool:
        return "text" in self.family.capabilities

    def labels_for(self, n: int, label: int | str | None = None,
                   text: str | list[str] | None = None) -> torch.Tensor | None:
        """Labels for n images: all ``label``, or (conditional models, no label) cycling through the classes.
        Text models (StackGAN): the caption ``text`` (a list: one per image, cycled) as word indices; without one,
        the family's default captions (each class's first training phrasing) in turn."""
        if text is not None:
            self.requires("text", "--text")
        if self.takes_text:
            if label is not None:
                raise ValueError(f"{self.config.get('name', 'this model')} draws from a caption: give --text, "
                                 "not --label")
            texts = [text] if isinstance(text, str) else list(text or self.family.default_texts(self.config))
            if not texts:
                raise ValueError("no caption given: give --text")
            ids = self.family.text_tokens(self.config, texts)
            return ids[torch.arange(n) % len(ids)]
        if label is not None:
            return torch.full((n,), self.class_index(label), dtype=torch.long)
        if self.is_conditional:
            return torch.arange(n) % self.config["arch_args"]["num_classes"]
        return None

    def requires(self, capability: str, what: str):
        """Refuse, in words, what this model's family cannot do (``--truncation`` on a DCGAN, say)."""
        if capability not in self.family.capabilities:
            able = sorted(f.name for f in catalog.all_families().values() if capability in f.capabilities)
            raise ValueError(f"{self.config.get('name', 'this model')} is a {self.architecture} model: {what} is "
                             f"for {', '.join(able) or 'no'} models")

    def truncation(self, psi: float | None) -> float:
        """A checked psi (None: none, 1.0). Values above 1 extrapolate away from the average, as StyleGAN allows."""
        if psi is None:
            return 1.0
        self.requires("truncation", "--truncation")
        if not math.isfinite(psi) or not -1 <= psi <= 2:
            raise ValueError(f"--truncation {psi:g}: psi runs from 0 (the average image) to 1 (no truncation)")
        return float(psi)

    @torch.inference_mode()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 256,
                 truncation: float | None = None, stage: int | None = None) -> Iterator[torch.Tensor]:
        """Images for the given latents (and labels), batch by batch, as CPU float tensors in [-1, 1].

        ``truncation`` (psi, StyleGAN): pull each w towards the average w; 1 leaves it, 0 gives the average image.
        ``stage`` (StackGAN): 1 for stage I's coarse image (upscaled to the model's size), 2 (the default) for the
        final one."""
        kwargs = {}
        if truncation is not None:
            kwargs["truncation"] = self.truncation(truncation)
        if stage is not None:
            self.requires("stages", "--stage")
            if stage not in (1, 2):
                raise ValueError(f"--stage {stage}: a StackGAN has stage 1 (coarse) and stage 2 (final)")
            kwargs["stage"] = stage
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
        """What ``generate`` runs: on the CPU, the generator rewritten for inference (gancli.inference: the same
        function, 1.3x faster for a DCGAN; in bf16 under --bf16); elsewhere the generator."""
        from gancli.inference import for_inference

        return self.prepared(self.generator, for_inference) if self.device.type == "cpu" else self.generator

    # ---------------------------------------------------------------- style models: w space and mixing
    @torch.inference_mode()
    def map(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """z -> w through the mapping network (with truncation psi): (N, w_dim)."""
        self.requires("w_space", "w space")
        return self.generator.mapping(z.to(self.device), truncation=self.truncation(truncation)).cpu()

    @torch.inference_mode()
    def synthesize(self, ws: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images from w: (N, w_dim) for one style everywhere, or (N, layers, w_dim) for one per layer."""
        self.requires("w_space", "w space")
        return torch.cat([self.generator.synthesis(w.to(self.device)).float().cpu() for w in ws.split(batch_size)])

    def mixing_levels(self) -> dict[str, list[int]]:
        self.requires("mixing", "style mixing")
        return self.generator.levels()

    @torch.inference_mode()
    def style_mix(self, row_seeds: list[int], col_seeds: list[int], levels: str | list[str] = "coarse",
                  truncation: float | None = None) -> tuple[torch.Tensor, int]:
        """The style-mixing figure of Karras et al. 2019: column sources along the top, row sources down the side;
        each cell is its column source with the styles of ``levels`` (coarse, middle, fine) taken from its row
        source. Returns the images in grid order (a blank corner first) and the grid's width."""
        table = self.mixing_levels()
        names = [levels] if isinstance(levels, str) else list(levels)
        names = [n.strip() for part in names for n in part.split(",") if n.strip()]
        for n in names:
            if n not in table:
                raise UnknownNameError("style level", n, list(table))
        layers = sorted({i for n in names for i in table[n]})
        if not layers:
            raise ValueError(f"--levels {levels!r} selects no styles of this {self.image_size} px model "
                             f"(its levels: {', '.join(k for k, v in table.items() if v)})")
        w_rows = self.map(self.latents_for(seeds=row_seeds), truncation)
        w_cols = self.map(self.latents_for(seeds=col_seeds), truncation)
        rows, cols = self.synthesize(w_rows), self.synthesize(w_cols)
        cells = [self.synthesize(self.generator.mixed_styles(w_cols, w_rows[r], layers)) for r in range(len(row_seeds))]
        blank = torch.full_like(cols[:1], -1.0)
        grid = [blank, cols] + [torch.cat([rows[r:r + 1], cells[r]]) for r in range(len(row_seeds))]
        return torch.cat(grid), len(col_seeds) + 1

    # ---------------------------------------------------------------- models whose discriminator classifies (SSGAN)
    @property
    def classifier_classes(self) -> list[str]:
        self.requires("classify", "classifying images")
        return list(self.config.get("classifier_classes") or [])

    @torch.inference_mode()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Real images (N, C, H, W) in [-1, 1] at the model's size -> class probabilities (N, K)."""
        self.requires("classify", "classifying images")
        if self.discriminator is None:
            raise WeightsError(f"{self.config.get('name', 'this model')} was saved without its discriminator, "
                               "which is its classifier")
        want = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != want:
            raise ValueError(f"images of shape {tuple(images.shape[1:])} given; the classifier takes {want}")
        self.discriminator.eval().to(self.device)
        return torch.softmax(self.discriminator(images.to(self.device)).float(), 1).cpu()

    # ---------------------------------------------------------------- models with an encoder (the VAE)
    def read_images(self, paths: list[str | Path]) -> torch.Tensor:
        """Image files as a batch this model takes: its channels, resized and centre-cropped to its size."""
        import numpy as np

        from gancli.data import fit, open_image

        batch = []
        for path in paths:
            try:
                im = open_image(path)
            except (ValueError, OSError) as e:
                raise ValueError(f"{path}: {e}") from None
            im = fit(im.convert("L" if self.channels == 1 else "RGB"), self.image_size)
            a = torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1)
            batch.append(a[None] if self.channels == 1 else a.permute(2, 0, 1))
        return torch.stack(batch)

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Real images (N, C, H, W) in [-1, 1] at the model's size -> their latents (the encoder's means)."""
        self.requires("encode", "encoding images")
        if "encoder" not in self.others:
            raise WeightsError(f"{self.config.get('name', 'this model')} was saved without its encoder")
        want = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != want:
            raise ValueError(f"images of shape {tuple(images.shape[1:])} given; the encoder takes {want}")
        return self.others["encoder"](images.to(self.device))[0].float().cpu()

    def latents_for(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None) -> torch.Tensor:
        pairs = [(s, 0) for s in seeds] if seeds is not None else [(seed, i) for i in range(n or 0)]
        return latents.latents(pairs, self.latent_dim)

    def sample(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None,
               label: int | str | None = None, batch_size: int = 256, truncation: float | None = None,
               text: str | list[str] | None = None, stage: int | None = None) -> torch.Tensor:
        """``n`` images from ``seed`` (or one per entry of ``seeds``): a (N, C, H, W) tensor in [-1, 1].

        Conditional models draw class ``label`` (an index or a class name), or cycle through the classes. Text
        models (StackGAN) draw ``text`` (a caption, or a list of captions cycled through the images); ``stage=1``
        gives their coarse stage-I images."""
        if self.image_command:
            raise ValueError(f"{self.config.get('name', 'this model')} {self.image_command}s images rather than "
                             f"sampling them: use `gan {self.image_command}`")
        self.require_text(text)
        if seeds is None and (n is None or n < 0):
            raise ValueError(f"the number of images must be 0 or more, not {n}")
        z = self.latents_for(n, seed, seeds)
        if len(z) == 0:
            return torch.empty(0, self.channels, self.image_size, self.image_size)
        return torch.cat(list(self.generate(z, self.labels_for(len(z), label, text), batch_size, truncation, stage)))

    def require_text(self, text):
        """A text model samples what it is told: without a caption, one line that says how to give one."""
        if self.takes_text and text is None:
            prompts = self.family.default_texts(self.config)
            raise ValueError(f"{self.config.get('name', 'this model')} draws images from a caption: give --text, "
                             f"e.g. --text {prompts[-1]!r}" if prompts else "give --text")

    def sample_images(self, n: int | None = None, seed: int = 0, seeds: list[int] | None = None,
                      label: int | str | None = None, truncation: float | None = None,
                      text: str | list[str] | None = None, stage: int | None = None):
        return to_pil(self.sample(n, seed, seeds, label, truncation=truncation, text=text, stage=stage))

    def __repr__(self):
        return (f"GANModel({self.architecture}, {self.image_size}x{self.image_size}x{self.channels}, "
                f"z={self.latent_dim}, {self.num_parameters():,} generator parameters, device={self.device})")


def load(name: str | Path, device: str | torch.device = "auto") -> GANModel:
    """Load a model by zoo name, local folder or ``owner/repo[@revision]`` on the Hugging Face Hub."""
    return GANModel.from_pretrained(name, device=device)


def _check_latent_dim(config: dict, path: Path):
    """A sampler's z size comes from config.json: missing, it would reach the network as a 0-wide input. (Its type,
    range and agreement with arch_args are check_config's.)"""
    if {"translate", "upscale"} & catalog.get(config["architecture"]).capabilities:  # they take images, not z
        return
    if config.get("latent_dim") is None:
        raise WeightsError(f"{path} lacks the required key 'latent_dim' (the size of z)")
    if config["latent_dim"] < 1:
        raise WeightsError(f"{path}: latent_dim is 0; a model that samples needs a z of at least 1")


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())




__all__ = ["GANModel", "WeightsError", "load", "load_strict"]
