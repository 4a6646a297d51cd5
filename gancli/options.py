"""Training options, each declared once: name, type, default, help, check, and whether a resume must match it.

The loop declares the options every run has (``LOOP``); a family declares its own next to its networks, or takes a
shared group (``adversarial.GAN``). Everything else is derived from the declarations: the ``gan train`` flags and
their ``--help`` panels, the checks, which settings ``--resume`` compares, and options.json. Torch-free, so the CLI
can read them without loading a network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from gancli.errors import OptionError


@dataclass(frozen=True)
class Option:
    name: str                                    # the Python name, e.g. ``lr_g``
    type: type                                   # int, float, str or bool
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None  # returns what is wrong, or None
    resume: bool = False                         # a resumed run must keep this value
    flag: str | None = None                      # the CLI spelling, when not ``--lr-g`` from the name
    negatable: bool = False                      # bool options: ``--mirror/--no-mirror`` rather than a plain flag
    cli: bool = True                             # False: set by the command itself (DATA, the command line)
    group: str = ""                              # the --help panel; set by ``group()``
    operations: tuple[str, ...] = ()             # a model's use-time option: the operations it changes (generate...)

    @property
    def spelling(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def validate(self, value):
        if value is None:
            return
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise OptionError(f"{self.spelling} takes {self.type.__name__}, not {value!r}")
        if self.type is float and not math.isfinite(value):  # no setting of ours means inf or NaN
            raise OptionError(f"{self.spelling} must be a finite number, not {value!r}")
        if self.check is not None and (problem := self.check(value)):
            raise OptionError(f"{self.spelling} {problem}")


def group(title: str, *options: Option) -> tuple[Option, ...]:
    """Options that share a --help panel."""
    return tuple(Option(**{**o.__dict__, "group": title}) for o in options)


# ------------------------------------------------------------------------------------------------ checks
def at_least(low) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low}"


def between(low, high) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high:,}, not {v:,}"


def positive(v) -> str | None:
    return None if v > 0 and v != float("inf") else "must be a positive number"


MAX_LR = 1.0  # Adam moves every weight by about lr per step: above 1 no network trains, it only blows up


def learning_rate(v) -> str | None:
    return None if 0 < v <= MAX_LR else \
        f"must be a learning rate above 0 and at most {MAX_LR:g} (Adam's are usually 1e-4 to 1e-2), not {v:g}"


def fraction(v) -> str | None:
    return None if 0 < v < 1 else "must be between 0 and 1 (exclusive)"


def unit(v) -> str | None:
    return None if 0 <= v <= 1 else "must be between 0 and 1"


def non_negative(v) -> str | None:
    return None if v >= 0 else "must be zero or more"


def one_of(*choices) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}, not {v!r}"


# ------------------------------------------------------------------------------------------------ resolved options
@dataclass
class Options:
    """One run's settings: every option of the loop and of the family, resolved (given > family default > default).

    Reads like an object (``opts.batch_size``); ``given`` names what the user set, ``declared`` how each is
    declared."""

    values: dict[str, Any]
    given: frozenset[str] = frozenset()
    declared: dict[str, Option] = field(default_factory=dict)

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"no option {name!r}")

    def get(self, name, default=None):
        return self.values.get(name, default)

    def asdict(self) -> dict:
        return dict(self.values)

    def resume_keys(self) -> list[str]:
        return [n for n, o in self.declared.items() if o.resume]


def resolve(declared: list[Option], defaults: dict, given: dict, owner: str,
            spellings: dict[str, str] | None = None) -> Options:
    """Merge and check. ``given`` holds only what the user set; None there means "not set". ``spellings``: the
    flags of options other families declare, to name an unknown one as the user typed it."""
    by_name = {o.name: o for o in declared}
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        own = [o.spelling for o in declared if o.cli and o.group != LOOP_GROUP]
        spelled = ", ".join((spellings or {}).get(u, "--" + u.replace("_", "-")) for u in unknown)
        raise OptionError(f"{spelled} {'is not an option' if len(unknown) == 1 else 'are not options'} of {owner}"
                          + (f"; its options are {', '.join(own)}" if own else "; it has none beyond the run options")
                          + " (see gan train --help)")
    values = {o.name: o.default for o in declared} | {k: v for k, v in defaults.items() if k in by_name} | given
    for name, value in values.items():
        by_name[name].validate(value)
        if by_name[name].type is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
    return Options(values, frozenset(given), by_name)


MAX_SEED = 2 ** 63 - 1  # what every command takes: torch's generators seed from a signed 64-bit number


def seed_problem(seed: int) -> str | None:
    """Why ``seed`` is not a seed (None if it is): one range and one message for every command."""
    return None if 0 <= seed <= MAX_SEED else f"must be between 0 and {MAX_SEED} (2**63 - 1)"


# ------------------------------------------------------------------------------------------------ the loop's own
def seconds(text: str) -> float | None:
    """``45m``, ``2h``, ``1h30m``, ``90s`` or ``1.5h`` -> seconds; None if it is not a duration."""
    import re

    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip().lower())
    if not parts or not text.strip() or not any(parts.groups()):
        return None
    h, m, s = (float(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s


def clock(seconds_: float) -> str:
    """Seconds as h:mm:ss, the other way round."""
    m, s = divmod(int(seconds_), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def duration_problem(text: str) -> str | None:
    value = seconds(text)
    if value is None:
        return "takes a duration such as 45m, 2h or 1h30m"
    return None if value >= 10 else "must be at least 10s"


LOOP_GROUP = "Run options (every family)"
LOOP = group(
    LOOP_GROUP,
    Option("data", str, None, "Training data.", cli=False, resume=True),
    Option("out", str, "runs/gan", "Run directory (options, log, grids, checkpoints, export/)."),
    Option("arch", str, None, "The family (default: catalog.DEFAULT).", cli=False, resume=True),
    Option("steps", int, None, "Training steps (generator updates).", check=at_least(1)),
    Option("epochs", float, None, "Passes over the data (default 5).", check=positive),
    Option("time", str, None, "A time budget for this session, e.g. 45m or 2h: the length is planned to fit once the "
                              "first steps are timed, and the run ends with a checkpoint and an export.",
           check=duration_problem),
    Option("batch_size", int, 64, "Images per step, per process under torchrun.", check=at_least(1), resume=True),
    Option("seed", int, 0, "Seeds weights, data order and noise.", check=seed_problem, resume=True),
    Option("ema", bool, False, "Keep an exponential moving average of G; sample and export it.", resume=True),
    Option("ema_decay", float, 0.999, "Decay of the --ema average.", check=fraction, resume=True),
    # 8192: the side of the largest image gan reads (gancli.data.reading.MAX_SIDE)
    Option("size", int, None, "Resize the shorter side and centre-crop to this.", check=between(4, 8192),
           resume=True),
    Option("channels", int, None, "1 or 3 (default: from the data).", check=one_of(1, 3), resume=True),
    Option("random_crop", bool, False, "Load the images larger than --size and crop them at random.",
           negatable=True),
    Option("mirror", bool, False, "Random horizontal flips.", negatable=True),
    Option("bf16", bool, None, "bf16 autocast (default: on for CUDA; opt-in on the CPU, where it pays with "
           "avx512_bf16 or AMX).", negatable=True),
    Option("compile", bool, None, "Compile the networks' training passes with torch.compile (default: on for CUDA, "
           "where each pass is also captured as a CUDA graph; off elsewhere: on 2 CPU cores it was slower, "
           "bench/RESULTS.md). The first steps take longer while it compiles.", negatable=True),
    Option("sample_every", int, 500, "Write a sample grid every N steps.", check=at_least(1)),
    Option("eval_every", int, None, "Measure FID/KID, precision/recall and coverage every N steps (metrics.jsonl) "
                                    "and raise the mode-collapse alarm.", check=at_least(1)),
    Option("eval_samples", int, 2000, "Samples (and real images) per --eval-every.", check=at_least(100)),
    Option("checkpoint_every", int, 1000, "Write a checkpoint every N steps.", check=at_least(1)),
    Option("keep_checkpoints", int, 3, "Checkpoints to keep.", check=at_least(1), flag="--keep"),
    Option("log_every", int, 50, "Average and log metrics every N steps.", check=at_least(1)),
    Option("tensorboard", bool, False, "Also write the metrics and sample grids as TensorBoard events in "
                                       "RUN_DIR/tensorboard/ (needs: pip install tensorboard).",
           negatable=True),
    Option("name", str, None, "Model name written into the exported config and card."),
    Option("device", str, "auto", "auto, cpu, cuda, cuda:N or mps."),
    Option("resume", bool, False, "Continue the run in --out from its last checkpoint."),
    Option("command", str, "", "The command line, for the record.", cli=False),
)
