"""The version, in a leaf module, so that any module can say which gan wrote a file without importing the package
facade (``gancli.load`` and friends)."""
__version__ = "0.1.0"
