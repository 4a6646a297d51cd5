"""gan: generative adversarial networks from the command line and from Python.

    >>> import gancli
    >>> model = gancli.load("dcgan-mnist")
    >>> images = model.sample(16, seed=0)            # float tensor in [-1, 1], shape (16, C, H, W)
    >>> pil_images = model.sample_images(16, seed=0)  # list of PIL images
"""
from gancli.version import __version__

__all__ = ["GANModel", "load", "__version__"]


def __getattr__(name):
    # Imported on first use, so that `gan --version` and `gan --help` do not wait for torch
    if name in ("GANModel", "load"):
        from gancli import pretrained

        return getattr(pretrained, name)
    raise AttributeError(f"module 'gancli' has no attribute {name!r}")
