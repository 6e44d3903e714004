"""Backends: ``ns`` (namespaces, the default) and ``docker``. Loaded lazily by name."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing costs ~8 ms to import and run.py modules (the hot path) import this package
if TYPE_CHECKING:
    from ..settings import Settings
    from .base import Backend


def load_backend(settings: Settings) -> Backend:
    module = importlib.import_module(f"venvroot.backends.{settings.backend}.backend")
    return module.Backend(settings)
