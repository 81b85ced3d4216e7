"""The version of lwscale, written into every record and manifest (and ``lwscale --version``)."""

__version__ = "0.1.0"
