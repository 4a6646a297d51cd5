"""The catalogue of families: importing it imports every family module, each of which registers itself. Adding a
family = its module + one name on the import line below. (Kept out of ``gancli/families/__init__.py`` so that a
family module may import a sibling's networks without importing every family.)"""
from __future__ import annotations

from gancli.families import acgan, began, cyclegan, dcgan, design, discogan, mlp, r3gan, srgan, ssgan, stackgan, stylegan, vae  # noqa: F401,E501
from gancli.options import Option
from gancli.registry import lookup as get
from gancli.registry import registered as all_families

DEFAULT = "dcgan"  # the family `gan train` trains when --arch is not given


def use_options(operation: str) -> dict[str, tuple[Option, list[str]]]:
    """Every family's use-time options of ``operation`` (gancli.families.abilities), one per name, with the
    families that take it: what `gan sample`'s --help, the demo's controls and `gan eval` offer, so that a new
    family's option appears everywhere its operation is asked for."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for family in all_families().values():
        for ability in family.model_class.abilities:
            for option in ability.options_of(operation):
                found.setdefault(option.name, (option, []))[1].append(family.name)
    return found


__all__ = ["DEFAULT", "get", "all_families", "use_options"]
