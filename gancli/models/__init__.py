"""One module per architecture family; importing them registers them."""
from gancli.models import cyclegan, dcgan, mlp  # noqa: F401
