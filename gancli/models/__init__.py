"""One module per architecture family; importing them registers them."""
from gancli.models import dcgan, mlp  # noqa: F401
