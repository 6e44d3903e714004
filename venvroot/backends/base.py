"""The backend interface. ``ns`` and ``docker`` implement it.

A backend lives in ``venvroot/backends/<name>/``:

* ``backend.py`` defines ``Backend``, a subclass of :class:`Backend` below, used for management
  (create, session start/stop, reset, destroy, info). It may import heavy libraries.
* ``run.py`` defines ``run(cfg, program, args) -> int``: the shim's hot path. ``cfg`` is the raw
  ``venvroot.cfg`` as an :class:`venvroot.envconfig.EnvConfig`. It imports only the standard
  library and venvroot's light modules (envconfig, errors) - never ``typing``, ``dataclasses`` or
  an SDK; it normally replaces the process (``os.execv*``) or returns the program's exit status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from pathlib import Path

    from ..settings import Settings


class Backend:
    """Management side of a backend. One instance per environment."""

    name: ClassVar[str]
    # True when activate/deactivate must call the session program (bin/.venvroot-session).
    uses_session: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def state_dir(self) -> Path:
        """``<env>/.venvroot``: where the backend keeps its state."""
        return self.settings.path / ".venvroot"

    def preflight(self) -> None:
        """Check everything the backend needs (root exists, daemon answers...) before any file
        is written. Raise VenvrootError/UsageError with one clear line."""

    def create(self) -> None:
        """Build the backend's state under ``state_dir`` (the env layout is already written).
        On failure the caller removes the whole environment directory; clean up anything
        outside it (containers, images) before raising."""

    def has_program(self, program: str) -> bool:
        """Whether ``program`` (a name on the root's PATH or an absolute path) exists inside."""
        raise NotImplementedError

    def programs_to_link(self) -> list[str]:
        """Programs that should have shims besides ``--link`` ones (e.g. python, pip, console
        scripts of the env's Python). ``venvroot sync`` re-reads this."""
        return []

    def session_start(self, shell_pid: int) -> None:
        """Called by ``source bin/activate`` (when ``uses_session``)."""

    def session_stop(self, shell_pid: int) -> None:
        """Called by ``deactivate`` (when ``uses_session``)."""

    def reset(self) -> None:
        """Throw away the root's changes, keep settings and Python packages."""

    def destroy(self) -> None:
        """Stop everything and remove everything the backend made outside the env directory
        (the caller removes the directory afterwards)."""

    def info(self) -> dict[str, str]:
        """Extra ``key: value`` facts for ``venvroot info``."""
        return {}
