"""The family registry: architecture name -> the family object that builds, trains and describes it.

A leaf (the timm idea): it imports no family, nor the Family class. ``gancli.families.catalog`` imports every family
module, each of which registers itself here; code that needs the full list goes through ``gancli.families.catalog``.
"""
from __future__ import annotations

from typing import Any

from gancli.errors import UnknownNameError

_FAMILIES: dict[str, Any] = {}  # name -> a gancli.families.base.Family (not imported: this module is a leaf)


def register(cls):
    """Class decorator: ``@register`` on a ``Family`` subclass registers one instance under ``cls.name``."""
    if cls.name in _FAMILIES:
        raise ValueError(f"family {cls.name!r} is registered twice")
    _FAMILIES[cls.name] = cls()
    return cls


def registered() -> dict[str, Any]:
    return dict(sorted(_FAMILIES.items()))


def lookup(name: str) -> Any:
    if name not in _FAMILIES:
        raise UnknownNameError("architecture", name, sorted(_FAMILIES))
    return _FAMILIES[name]
