"""What a GAN family is: one module holding its networks, options, objective, card text and converter.

A family subclasses ``Family`` and registers itself (``@register``); ``gancli.families.catalog`` imports the module. The
training loop (``gancli.training.trainer``) knows families only through this interface, and ``GANModel`` builds their
networks from config.json through ``Family.build``. See docs/code.md for a worked example (the VAE).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gancli import latents
from gancli.data.reading import DataError, ImageData, SizeRule, load_data
from gancli.families.graphs import ExportGraph, sampler_graph
from gancli.families.model import GANModel
from gancli.options import LOOP, Option, Options, at_least, group, one_of, resolve
from gancli.quality.measures import Table, sweep_table

GRID_SAMPLES = 64
# `ctx` arguments are the run's gancli.training.context.TrainingContext: what an objective may use of the loop (its
# docstring lists all of it). Not imported (nor annotated): the loop sits above this.

# Options of every family that draws images from a latent z (all but cyclegan)
LATENT = group(
    "Latent",
    Option("latent_dim", int, 100, "Size of z.", check=at_least(1), resume=True),
    Option("stack", int, None, "3: Stacked-MNIST, three random digits as RGB channels (1000 modes).",
           check=one_of(3), resume=True),
)


class _FromOption:
    """The marker ``OPTION``: see ``Family.build``."""

    def __repr__(self):
        return "OPTION"


OPTION: Any = _FromOption()


def _defaults_from_options(cls):
    """Give ``cls.build``'s ``OPTION`` arguments their defaults: the option's, as the run's options resolve it (the
    family's ``defaults`` over the declaration), or the family's ``legacy_defaults``."""
    import inspect

    build = cls.__dict__["build"]
    declared = {o.name: o for o in (*LOOP, *cls.options)}
    defaults = {}
    for name, param in inspect.signature(build).parameters.items():
        if param.default is not OPTION:
            continue
        option = cls.arch_options.get(name, name)
        if option not in declared:
            raise TypeError(f"{cls.__name__}.build: {name}'s default is OPTION, but {cls.name} has no option "
                            f"{option!r} (arch_options names the option of an argument spelled otherwise)")
        defaults[name] = cls.legacy_defaults.get(name, cls.defaults.get(option, declared[option].default))
    cls.set_by_options = {name: cls.arch_options.get(name, name) for name in defaults}
    if build.__defaults__:
        names = [n for n, p in inspect.signature(build).parameters.items()
                 if p.kind is p.POSITIONAL_OR_KEYWORD][-len(build.__defaults__):]
        build.__defaults__ = tuple(defaults.get(n, d) for n, d in zip(names, build.__defaults__))
    if build.__kwdefaults__:
        build.__kwdefaults__ = {n: defaults.get(n, d) for n, d in build.__kwdefaults__.items()}


def noise_grid(ctx, latent_dim: int, num_classes: int = 0):
    """The fixed latents (and labels) of the training grids: (z, labels or None, images per row)."""
    device, seed = ctx.device, ctx.opts.seed
    if num_classes:
        rows = max(1, GRID_SAMPLES // num_classes) if num_classes > 8 else 8
        n = rows * num_classes
        z = latents.latents([(seed, i) for i in range(n)], latent_dim)
        return z.to(device), (torch.arange(n) % num_classes).to(device), num_classes  # one column per class
    z = latents.latents([(seed, i) for i in range(GRID_SAMPLES)], latent_dim)
    return z.to(device), None, 8


class Family:
    name: str = ""
    description: str = ""
    options: tuple[Option, ...] = ()  # its own options, and the shared groups it takes
    defaults: dict[str, Any] = {}     # its defaults for options declared elsewhere (cyclegan: batch_size 1)
    networks: tuple[str, ...] = ("generator", "discriminator")  # what build() returns: the safetensors prefixes
    exported: tuple[str, ...] = ("generator", "discriminator")  # what a training run's export/ keeps
    # what a loaded model of this family is: GANModel, or the family's subclass whose ``abilities`` say what else
    # it can do (gancli.families.abilities)
    model_class: type[GANModel] = GANModel
    data_folders: int = 1             # how many DATA arguments ``gan train`` takes
    photo_size: int | None = None      # without --size, images larger than this are trained at this (DCGAN: 64 px)
    translates_at_scale: bool = False  # translators: resize inputs to the training size (a bottleneck cannot adapt)
    # steps of its default recipe before its samples show shapes (a quarter as legible as the real images, on the
    # shared data sets: bench/learns_after.py); a planned run shorter than that is told so before it spends its time
    learns_after: int | None = None
    # what a CPU training step holds per pixel of each image of the batch, at its default widths, beyond torch's own
    # (measured: the README's table of peak memory); a run that would not fit the machine is refused before it starts
    step_bytes_per_pixel: float | None = None
    size_rule: SizeRule | None = None  # the sizes its networks take, for a size chosen from the data (DCGAN's)
    summary: str = ""                 # the card's first sentence, formatted with config.json's keys and {images}
    examples: tuple[str, ...] = ()    # commands for the card's "Use" block beyond `gan sample`, with {where}

    # ------------------------------------------------------------------ options
    def declared(self) -> list[Option]:
        return list(LOOP) + list(self.options)

    def train_command(self, values: dict) -> str:
        """One ``gan train`` command that sets a run up as ``values`` (its options.json) say: every setting that
        differs from its default, spelled as the CLI takes it. A resumed run's cards show this, not the last
        session's ``--resume`` line, which alone would not reproduce the model."""
        import shlex

        words = ["gan", "train", *(str(values[k]) for k in ("data", "data_b") if values.get(k))]
        words += ["--arch", self.name]
        for o in self.declared():
            if not o.cli or o.name in ("data", "data_b", "arch", "resume", "command") or o.name not in values:
                continue
            value = values[o.name]
            if value is None or value == self.defaults.get(o.name, o.default):
                continue
            if o.type is bool:
                words.append(o.spelling if value else "--no-" + o.spelling[2:])
            else:
                words += [o.spelling, str(value)]
        return shlex.join(words)

    def resolve_options(self, given: dict, spellings: dict[str, str] | None = None) -> Options:
        opts = resolve(self.declared(), self.defaults, given, self.name, spellings)
        opts.values["arch"] = self.name
        self.check_options(opts)
        return opts

    def check_options(self, opts: Options):
        """Checks that involve several options. Raise OptionError."""

    # ------------------------------------------------------------------ networks
    # builder argument -> the option that sets it, where the two are spelled differently (vae's width: --vae-width)
    arch_options: dict[str, str] = {}
    # What a config.json that lacks an option's key means, where that is not the option's default: models exported
    # before the option existed (ssgan's first ones were all conv). arch_args writes such a key always.
    legacy_defaults: dict[str, Any] = {}
    set_by_options: dict[str, str] = {}  # build's OPTION arguments -> their options (filled in with the defaults)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            _defaults_from_options(cls)

    def build(self, **arch_args) -> dict[str, nn.Module]:
        """The networks, from config.json's ``arch_args``. An argument a run's option sets defaults to ``OPTION``:
        the option's default, filled in when the class is made, so that a config.json without the key (an older
        model) and a run that keeps the default build the same network. The signature is the schema the loader
        checks untrusted configs against (``gancli.store.weights.check_arguments``)."""
        raise NotImplementedError

    def built_with(self, arch_args: dict) -> dict:
        """``arch_args`` with every builder argument it lacks at its default: what the networks were built with. A
        config or checkpoint written before an option existed lacks its key, and means the default."""
        import inspect

        return {n: p.default for n, p in inspect.signature(self.build).parameters.items()
                if p.default is not p.empty} | arch_args

    def option_args(self, opts: Options, **others) -> dict:
        """``arch_args`` for a run: build's ``OPTION`` arguments from ``opts``, and ``others`` (what the data
        decides), in the order of build's signature."""
        import inspect

        unknown = set(others) - set(inspect.signature(self.build).parameters)
        if unknown:
            raise TypeError(f"{self.name}.build takes no {', '.join(sorted(unknown))}")
        return {name: others[name] if name in others else opts.get(self.set_by_options[name])
                for name in inspect.signature(self.build).parameters
                if name in others or name in self.set_by_options}

    def arch_args(self, opts: Options, data: "TrainingData") -> dict:
        """The JSON-serialisable builder arguments for a run, written to config.json as ``arch_args``."""
        raise NotImplementedError

    def is_conditional(self, arch_args: dict) -> bool:
        return bool(arch_args.get("num_classes"))

    # ------------------------------------------------------------------ training
    def load_data(self, opts: Options) -> "TrainingData":
        """One folder (or .zip, or IDX folder) of images; optional random crops; Stacked-MNIST with --stack."""
        if opts.random_crop and not opts.size:
            raise DataError("--random-crop needs --size (images are loaded 12.5% larger and cropped to --size)")
        # a size the family does well at, only for a new run: a resumed one keeps the size it was built for
        at_most = None if opts.size or opts.resume else self.photo_size
        data = load_data(opts.data, math.ceil(opts.size * 1.125) if opts.random_crop else opts.size, opts.channels,
                         at_most, self.size_rule)
        if opts.size is None and not opts.resume:
            opts.values["size"] = data.image_size  # written to options.json: a resume finds the size it chose
        if opts.get("stack"):
            if data.labels is None or data.channels != 1:
                raise DataError("--stack needs labelled single-channel digits (an MNIST-style IDX folder)")
            from gancli.data.datasets import stack_digits

            data = stack_digits(data, len(data), seed=opts.seed, k=opts.stack)
        return TrainingData([data], opts.size or data.image_size, dataset=_dataset_name(opts),
                            stack=opts.get("stack") or 1)

    def objective(self, ctx) -> "Objective":
        raise NotImplementedError

    # ------------------------------------------------------------------ cards and conversion
    def card_summary(self, config: dict) -> str:
        """The card's first sentence."""
        if self.summary:
            return self.summary.format(**config, images=images_phrase(config))
        cond = self.is_conditional(config.get("arch_args", {}))
        return (f"A {'class-conditional ' if cond else ''}`{config['architecture']}` GAN generating "
                f"{images_phrase(config)}, trained on {config['dataset']} with gan {config['gan_version']}." + (f" Classes: {', '.join(config['class_names'])}." if cond else ""))

    def card_use(self, config: dict, where: str) -> list[str]:
        """Commands for the card's "Use" block; ``where`` is the name or folder that loads the model."""
        import shlex

        lines = [f"gan sample {where} -n 64 -o grid.png"]
        if self.is_conditional(config.get("arch_args", {})):
            lines.append(f"gan sample {where} --label {shlex.quote(config['class_names'][-1])} -n 16")
        return lines + [e.format(where=where, **config) for e in self.examples]

    def pipeline_tag(self, config: dict) -> str:
        return "image-generation" if self.is_conditional(config.get("arch_args", {})) \
            else "unconditional-image-generation"

    convert = None  # a family that reads published checkpoints defines convert(files, **kw) -> (config, state)

    def evaluate_extra(self, model, real: ImageData, judge=None) -> dict:
        """Measures only this family has, for ``gan eval`` (the VAE's test ELBO). ``judge``: the classifier
        ``gan eval`` judges with (gancli.quality.judges.Judge)."""
        return {}

    def eval_tables(self, result: dict) -> list[Table]:
        """Tables of ``gan eval``'s report beyond the measures (gancli.quality.measures.Table): by default one per
        swept use-time option (``by_<option>``), titled by ``sweep_title``."""
        swept = [k[3:] for k in result if k.startswith("by_") and isinstance(result[k], list)]
        return [t for option in swept if (t := sweep_table(result, option, self.sweep_title(option)))]

    def sweep_title(self, option: str) -> str:
        return f"--{option.replace('_', '-')} swept: one set of measures per value, on the same latents"

    def check_config(self, config: dict, where) -> str | None:
        """What is wrong with the keys of an (untrusted) config.json only this family reads, or None."""
        return None

    # ------------------------------------------------------------------ export (gan export)
    def export_graphs(self, model) -> list[ExportGraph]:
        """What ``gan export`` writes for a loaded model (gancli.use.model.GANModel, fp32 on the CPU): one graph
        per file. A sampler: z (and, if conditional, its class labels) -> images. Families whose generator takes
        something else (images, captions) say so here."""
        return [sampler_graph(model, "label" if model.is_conditional else None)]

    # ------------------------------------------------------------------ text models (capability "text")
    def text_tokens(self, config: dict, texts: list[str]):
        """Captions -> what the generator takes as its ``labels``."""
        raise NotImplementedError

    def default_texts(self, config: dict) -> list[str]:
        """The captions a text model draws from when none is given (``gan eval``), cycled through."""
        raise NotImplementedError


def images_phrase(config: dict) -> str:
    """"28x28 grayscale images", for cards."""
    return (f"{config['image_size']}x{config['image_size']} {'grayscale' if config['channels'] == 1 else 'RGB'} "
            "images")


UPSAMPLINGS = ("transpose", "shuffle", "resize")
UPSAMPLE = group(
    "Network widths",
    Option("upsample", str, None, "Generator upsampling: the family's paper's (transpose: stride-2 transposed "
                                  "convolutions; shuffle: sub-pixel convolutions) or resize (nearest doubling, "
                                  "then a convolution: no grid or checkerboard by construction).",
           check=one_of(*UPSAMPLINGS), resume=True),
)
INIT_FROM = group(
    "Starting point",
    Option("init_from", str, None, "Start the generator from this model of the same family and shape (a zoo name, "
                                   "model folder or training run): a super-resolution GAN from its MSE-trained "
                                   "model, as in the paper; a translator trained on crops, fine-tuned on whole "
                                   "photos.", resume=True),
)


def init_generator(G: nn.Module, name: str, family: "Family", arch_args: dict, compared: tuple[str, ...]):
    """Copy a model's generator into G, after checking (through the safe loader) that it is of ``family`` and has
    G's shape in every ``compared`` builder argument."""
    from pathlib import Path

    from gancli.store import hub
    from gancli.store.weights import load_networks

    path = Path(name).expanduser()
    if (path / "export" / "config.json").is_file():  # a training run's folder stands for its export/
        name = str(path / "export")
    folder = hub.resolve(name).path
    config = hub.read_config(folder)
    if config.get("architecture") != family.name:
        raise ValueError(f"--init-from takes {family.name} models; {name} is "
                         f"{config.get('architecture', 'a classifier')}")
    built = family.built_with(config.get("arch_args", {}))
    theirs = {k: built.get(k) for k in compared}
    ours = {k: arch_args.get(k) for k in compared}
    if theirs != ours:
        differ = ", ".join(f"{k} {theirs[k]} (here {ours[k]})" for k in theirs if theirs[k] != ours[k])
        raise ValueError(f"--init-from {name} has another generator shape: {differ}")
    source = load_networks(folder, config, family.build, {"generator"})["generator"]
    try:
        G.load_state_dict({k: v.float() for k, v in source.state_dict().items()})
    except RuntimeError as e:  # e.g. a one-direction translator into a two-direction run
        raise ValueError(f"--init-from {name} does not fit this generator: {str(e).splitlines()[0]}") from None


class TrainingData:
    """A family's training images: one domain, or several (CycleGAN's A and B), and the crop size it trains at."""

    def __init__(self, domains: list[ImageData], crop: int, names: list[str] | None = None, dataset: str = "",
                 stack: int = 1):
        self.domains, self.crop, self.names, self.dataset = domains, crop, names, dataset
        self.stack = stack  # digits per image: 3 for Stacked-MNIST
        self.source = " + ".join(d.source for d in domains)
        self.skipped = [s for d in domains for s in d.skipped]

    @property
    def first(self) -> ImageData:
        return self.domains[0]

    @property
    def channels(self) -> int:
        return self.first.channels

    @property
    def labels(self):
        return self.first.labels

    @property
    def class_names(self):
        return self.first.class_names

    def __len__(self):
        return max(len(d) for d in self.domains)


def _dataset_name(opts: Options) -> str:
    from pathlib import Path

    return "stacked-mnist" if opts.get("stack") else Path(Path(opts.data).resolve().name).stem


class Objective:
    """What one training step does, for one family: owns the networks' roles, its optimisers and loss terms.

    The loop calls ``optimizers()`` once, then ``step(step)`` per step; it checkpoints ``state()`` with the
    networks, and asks for ``grid()`` pictures and ``export_config()`` at the end. ``self.ctx`` is the run's
    ``gancli.training.context.TrainingContext``: the data, the networks, ``take()``, ``noise()``, ``optimize()``,
    ``autocast()`` and the rest of what a step may use, and nothing else of the loop."""

    batches_per_step: int = 1     # data batches one step consumes (a GAN with --d-steps k: k)
    measurable: bool = True       # --eval-every can measure its sampler (a generator of images from noise)
    shown: tuple[str, ...] = ()   # the stats the progress line shows (and losses.png plots), in order
    guides: dict[str, tuple[float, str]] = {}  # stat -> (where theory puts it at p_g = p_data, why): losses.png's
    #                                            dashed lines; a stat with a guide is plotted even when not shown
    latent_dim: int = 0           # the sampler's z (0: it takes images, not noise)
    num_classes: int = 0          # the sampler's labels (0: unconditional)
    divergence_hint: str = "try a lower learning rate"  # said when the loss keeps becoming NaN/inf

    def __init__(self, ctx):
        self.ctx = ctx
        self.opts = ctx.opts

    @property
    def title(self) -> str:
        """losses.png's title."""
        return self.opts.arch

    def record(self) -> dict:
        """What the model card's training record says of this objective (the loss, say)."""
        return {}

    def optimizers(self) -> dict[str, tuple[list[nn.Parameter], float, tuple[float, float]]]:
        """name -> (parameters, base learning rate, Adam betas). Metrics log ``lr_<name>``."""
        raise NotImplementedError

    def step(self, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def lr_factor(self, step: int) -> float:
        return 1.0

    def decay_in_second_half(self, step: int) -> float:
        """The learning-rate factor of CycleGAN and Salimans et al.: constant, then linear to 0 over the second half."""
        half = self.ctx.total_steps // 2
        return 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(1, self.ctx.total_steps - half))

    def state(self) -> dict:
        """Extra checkpoint state (tensors and plain containers only)."""
        return {}

    def load_state(self, state: dict):
        pass

    def grid(self, sampler: nn.Module) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def evaluate(self, sampler: nn.Module) -> dict | None:
        """``--eval-every``'s measures of ``sampler``, for an objective that measures itself (translators); None:
        the loop's own, a generator of images from noise judged against the training data."""
        return None

    def export_config(self) -> dict:
        """Keys of config.json beyond the common ones."""
        return {}

    export_dtype: torch.dtype | None = None
    export_shard_bytes: int | None = None


class NoiseObjective(Objective):
    """An objective whose sampler draws images from z (and, if conditional, a label): the training grid from fixed
    latents (one column per class), and the export config that says so."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.latent_dim = ctx.arch_args["latent_dim"]
        self.num_classes = ctx.arch_args.get("num_classes") or 0
        self.images = ctx.images[0]
        self.fixed_z, self.fixed_labels, self.grid_nrow = noise_grid(ctx, self.latent_dim, self.num_classes)

    @torch.no_grad()
    def grid(self, sampler: nn.Module) -> tuple[torch.Tensor, int]:
        labels = self.fixed_labels.split(32) if self.num_classes else [None] * math.ceil(len(self.fixed_z) / 32)
        return torch.cat([sampler(z, y) for z, y in zip(self.fixed_z.split(32), labels)]).float().cpu(), self.grid_nrow

    def export_config(self) -> dict:
        return {"task": "conditional" if self.num_classes else "unconditional", "latent_dim": self.latent_dim,
                "class_names": self.ctx.data.class_names if self.num_classes else None}
