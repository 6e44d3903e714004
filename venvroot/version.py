"""The version of venvroot, read by setup.py and ``venvroot --version``."""

__version__ = "0.1.0"
