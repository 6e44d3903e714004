"""venvroot: virtualenv for whole systems.

The library API (the CLI is a thin layer over it)::

    from venvroot import Settings, create, Environment
    env = create(Settings(path="proj/.venv"))  # or any path-like
    env.path  # a pathlib.Path (env.dir: the same, a str)
    env = Environment.open("proj/.venv")
    env.settings

Heavy modules load on first use so that shims, which import this package, stay fast.
"""

from __future__ import annotations

from .version import __version__

TYPE_CHECKING = False  # importing typing costs ~8 ms, and every shim imports this package
if TYPE_CHECKING:
    from typing import Any

    from .backends.settings import Settings
    from .env.environment import Environment, create

__all__ = ["Environment", "Settings", "__version__", "create"]


def __getattr__(name: str) -> Any:
    if name in ("Environment", "create"):
        # the management side: `import venvroot` (every shim's first step) loads none of it
        from .env import environment as env

        return getattr(env, name)
    if name == "Settings":
        # the management side: `import venvroot` (every shim's first step) loads none of it
        from .backends.settings import Settings

        return Settings
    raise AttributeError(name)
