"""gan: generative adversarial networks from the command line and from Python.

    >>> import gancli
    >>> model = gancli.load("dcgan-mnist")
    >>> images = model.sample(16, seed=0)            # float tensor in [-1, 1], shape (16, C, H, W)
    >>> pil_images = model.sample_images(16, seed=0)  # list of PIL images
"""
__version__ = "0.1.0"

from gancli.pretrained import GANModel, load  # noqa: E402

__all__ = ["GANModel", "load", "__version__"]
