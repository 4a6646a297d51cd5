"""Loading a model for use: ``load`` by zoo name, folder or Hub repository, into its family's model class.

``GANModel`` itself lives with the families (gancli.families.model), which declare their model classes as its
subclasses; this module imports the catalogue first, so every family is registered before a config.json names one.
"""
from __future__ import annotations

from pathlib import Path

import torch

from gancli.families import catalog  # noqa: F401  (registers every family)
from gancli.families.model import GANModel, NotAbleError, find_class
from gancli.store.weights import WeightsError, load_strict


def load(name: str | Path, device: str | torch.device = "auto") -> GANModel:
    """Load a model by zoo name, local folder or ``owner/repo[@revision]`` on the Hugging Face Hub."""
    return GANModel.from_pretrained(name, device=device)


__all__ = ["GANModel", "NotAbleError", "WeightsError", "find_class", "load", "load_strict"]
