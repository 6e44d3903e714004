"""Backends: ``ns`` (namespaces, the default) and ``docker``. Loaded lazily by name."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~8 ms to import and run.py modules (the hot path) import this package
if TYPE_CHECKING:
    from .base import Backend
    from .settings import Settings


def load_backend(settings: Settings) -> Backend:
    # __import__, not importlib: every Python-path shim imports this package
    module = __import__(f"venvroot.backends.{settings.backend}.backend", fromlist=["Backend"])
    return module.Backend(settings)
