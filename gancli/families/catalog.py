"""The catalogue of families: importing it imports every family module, each of which registers itself. Adding a
family = its module + one name on the import line below. (Kept out of ``gancli/families/__init__.py`` so that a
family module may import a sibling's networks without importing every family.)"""
from __future__ import annotations

from gancli.families import acgan, began, cyclegan, dcgan, design, discogan, mlp, srgan, ssgan, stackgan, stylegan, vae  # noqa: F401
from gancli.registry import lookup as get
from gancli.registry import registered as all_families

DEFAULT = "dcgan"  # the family `gan train` trains when --arch is not given

__all__ = ["DEFAULT", "get", "all_families"]
