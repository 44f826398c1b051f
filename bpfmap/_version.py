"""The version, read by pyproject.toml (setuptools' attr, statically) and bpfmap.__version__."""

__version__ = "0.1.0"
