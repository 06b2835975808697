"""Runtimes the engine is hosted in besides native CPython: `browser` (Pyodide in a Web Worker)."""
