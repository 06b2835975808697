"""Storage adapters: memory, file (native), indexeddb (Pyodide). See base.Storage."""

from .base import OpenReport, Storage
from .memory import MemoryStorage

__all__ = ["OpenReport", "Storage", "MemoryStorage", "FileStorage"]


def __getattr__(name: str) -> type[Storage]:  # FileStorage needs os-level file access: not in the browser
    if name == "FileStorage":
        from .file import FileStorage
        return FileStorage
    raise AttributeError(name)
