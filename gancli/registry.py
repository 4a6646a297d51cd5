"""Architecture registry: family name -> builder of a (generator, discriminator) pair.

A builder takes only JSON-serialisable keyword arguments, so that ``config.json`` alone is enough to rebuild the
networks of any saved model (the timm / diffusers idea: code is registered, pretrained entries are data).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., tuple["nn.Module", "nn.Module"]]
    description: str
    task: str = "unconditional"


_REGISTRY: dict[str, Architecture] = {}


def register(name: str, description: str, task: str = "unconditional"):
    """Decorator: ``@register("dcgan", "...")`` on a function ``(**kwargs) -> (G, D)``."""

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        _REGISTRY[name] = Architecture(name, fn, description, task)
        return fn

    return wrap


def architectures() -> dict[str, Architecture]:
    import gancli.models  # noqa: F401  (importing the package registers every family)

    return dict(sorted(_REGISTRY.items()))


def get_architecture(name: str) -> Architecture:
    archs = architectures()
    if name not in archs:
        raise UnknownNameError("architecture", name, list(archs))
    return archs[name]


def build(name: str, **kwargs) -> tuple["nn.Module", "nn.Module"]:
    arch = get_architecture(name)
    try:
        return arch.build(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad arguments for architecture {name!r}: {e}") from None


class UnknownNameError(LookupError):
    """A name that is not known, with the closest known names as suggestions."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.suggestions = suggest(name, known)
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        known_txt = f" Known: {', '.join(known)}." if known and not self.suggestions else ""
        super().__init__(f"unknown {kind} {name!r}.{hint}{known_txt}")


def suggest(name: str, known: list[str], n: int = 3) -> list[str]:
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    # "mnist" should find "dcgan-mnist" even though the whole strings are far apart
    contains = [k for k in known if name and (name in k or k in name) and k not in close]
    return (close + contains)[:n]
