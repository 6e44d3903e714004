"""The backend interface. ``ns`` and ``docker`` implement it.

A backend lives in ``venvroot/backends/<name>/``:

* ``backend.py`` defines ``Backend``, a subclass of :class:`Backend` below, used for management
  (create, session start/stop, reset, destroy, info). It may import heavy libraries.
* ``run.py`` defines ``run(cfg, program, args) -> int``: the shim's hot path. ``cfg`` is the raw
  ``venvroot.cfg`` as an :class:`venvroot.backends.envconfig.EnvConfig`. It imports only the standard
  library and venvroot's light modules (envconfig, errors) - never ``typing``, ``dataclasses`` or
  an SDK; it normally replaces the process (``os.execv*``) or returns the program's exit status.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a create ~2 ms to import
if TYPE_CHECKING:
    from typing import ClassVar

    from .settings import Settings


class Backend:
    """Management side of a backend. One instance per environment."""

    name: ClassVar[str]
    # True when activate/deactivate must call the session program (bin/.venvroot-session).
    uses_session: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def preflight(self) -> None:
        """Check everything the backend needs (root exists, daemon answers...) before any file
        is written. Raise VenvrootError/UsageError with one clear line."""

    def create(self) -> None:
        """Build the backend's state under ``<env>/.venvroot`` (the env layout is already written).
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

    # -- snapshots (driven by venvroot.snapshots, which also keeps the env's Python packages) -------
    #: Top-level entries of the env directory that belong to the backend, not to the env's Python
    #: (besides bin/, venvroot.cfg and .venvroot/, which never do).
    own_paths: ClassVar[tuple[str, ...]] = ()
    #: Paths inside the env's own entries that hold Python files all the same (e.g. the venv's real
    #: ``bin``, when the shims take ``<env>/bin``).
    python_extra_paths: ClassVar[tuple[str, ...]] = ()

    def snapshot_root(self, dest: str, snap_id: str, previous: str | None) -> dict[str, str]:
        """Capture the root's current state for the snapshot being written in ``dest``: keep files
        there, hard-linking those unchanged since ``previous`` (the closest earlier snapshot's
        directory), or keep it elsewhere (an image). Return facts to store with the snapshot;
        ``root-size`` counts bytes kept outside ``dest``. On failure remove what was made."""
        raise NotImplementedError

    def restore_root(self, src: str, facts: dict[str, str]) -> None:
        """Stop what runs in the env (as ``reset`` does) and make the root exactly as captured."""
        raise NotImplementedError

    def drop_root_snapshot(self, src: str, facts: dict[str, str]) -> None:
        """Free what :meth:`snapshot_root` kept outside ``src`` (the caller removes ``src``)."""

    def freeze_root(self, src: str, facts: dict[str, str]) -> None:
        """Make the captured state the base that every session starts from: changes made from now
        on last until the end of the session (the next activation starts from the base again);
        ``reset`` returns to it. ``src`` stays in place while the env is frozen."""
        raise NotImplementedError

    def unfreeze_root(self, src: str, facts: dict[str, str]) -> None:
        """Lift :meth:`freeze_root`: changes last again. ``src`` may be deleted afterwards."""
        raise NotImplementedError
