"""Errors a user can fix, and the suggestions that come with unknown names. The bottom of the import graph."""
from __future__ import annotations

import difflib


class UnknownNameError(LookupError):
    """A name that is not known, with the closest known names as suggestions."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.suggestions = suggest(name, known)
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        known_txt = f" Known: {', '.join(known)}." if known and not self.suggestions else ""
        super().__init__(f"unknown {kind} {name!r}.{hint}{known_txt}")


class OptionError(ValueError):
    """A training option that is unknown to the family, or has a bad value."""


def suggest(name: str, known: list[str], n: int = 3, most: int = 5) -> list[str]:
    """The ``n`` closest known names, then (up to ``most`` in all) those that contain the name or are contained in
    it: "mnist" should find "dcgan-mnist" even though the whole strings are far apart."""
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    contains = [k for k in known if name and (name in k or k in name) and k not in close]
    return (close + contains)[:most]
