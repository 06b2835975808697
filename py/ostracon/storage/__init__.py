"""Storage adapters: memory, file (native), indexeddb (Pyodide). See base.Storage."""

from .base import OpenReport, Storage
from .memory import MemoryStorage

__all__ = ["OpenReport", "Storage", "MemoryStorage"]
