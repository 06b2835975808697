"""Ostracon: a local-first, verifiable document store."""
from .core.errors import *  # noqa: F401,F403 (filled in as the API lands)
__version__ = "0.1.0"
