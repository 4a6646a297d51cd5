"""One module per family. The list of them is ``gancli.families.catalog``."""
