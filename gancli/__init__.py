"""gan: generative adversarial networks from the command line and from Python.

    >>> import gancli
    >>> model = gancli.load("dcgan-mnist")
    >>> images = model.sample(16, seed=0)            # float tensor in [-1, 1], shape (16, C, H, W)
    >>> pil_images = model.sample_images(16, seed=0)  # list of PIL images
"""
from gancli.version import __version__

# `evaluate` stays in gancli.evaluation.evaluate: a function named like its module would be replaced by the module as soon as
# anything imports that
__all__ = ["GANModel", "load", "Trainer", "TrainOptions", "__version__"]
_LAZY = {"GANModel": "use.model", "load": "use.model", "Trainer": "training.trainer", "TrainOptions": "training.trainer"}


def __getattr__(name):
    # Imported on first use, so that `gan --version` and `gan --help` do not wait for torch
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"gancli.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gancli' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
