"""Every family, one module each; importing this package registers them all. Adding a family = a module + a line."""
from __future__ import annotations

from gancli.families import acgan, began, cyclegan, dcgan, design, discogan, mlp, ssgan, stylegan, vae  # noqa: F401  (each registers itself)
from gancli.registry import lookup as get
from gancli.registry import registered as all_families

__all__ = ["get", "all_families"]
