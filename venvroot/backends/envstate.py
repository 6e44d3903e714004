"""An environment's saved state on disk, as the snapshot store and the backends share it.

The snapshot store is ``<env>/.venvroot/snapshots/`` (its format: :mod:`venvroot.snapshots`). The
backends read from it only what this module tells: the frozen base, a snapshot's record
(``meta.json``), and which of the env directory's entries are its Python packages. Builtins only at
the top: sessions and shims import it.
"""

from __future__ import annotations

import os

STORE = os.path.join(".venvroot", "snapshots")
FROZEN_FILE = "frozen"
# The env directory's own entries: never part of a snapshot's Python state.
OWN_PATHS = ("bin", ".venvroot", "venvroot.cfg", ".gitignore")
# venvroot.cfg keys of automatic snapshots: ``auto-snapshot.PROGRAM = REGEX`` and
# ``auto-snapshot-name.PROGRAM = TEMPLATE``.
AUTO_KEY = "auto-snapshot."
AUTO_NAME_KEY = "auto-snapshot-name."
# <store>/auto/PROGRAM exists while PROGRAM has an automatic-snapshot rule, <store>/auto while any
# program has one: a backend's fast way into the env that skips Python (and so the rules) must not
# be taken then.
AUTO_DIR = "auto"


def store_dir(env_dir: str) -> str:
    return os.path.join(env_dir, STORE)


def auto_dir(env_dir: str) -> str:
    return os.path.join(env_dir, STORE, AUTO_DIR)


def frozen_id(env_dir: str) -> str | None:
    """The frozen base's id, None when the env is not frozen (one ``open``: sessions ask it)."""
    try:
        with open(os.path.join(store_dir(env_dir), FROZEN_FILE), encoding="ascii") as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def frozen_dir(env_dir: str) -> str | None:
    """The frozen base's directory (``root/`` in it is the ns backend's frozen layer)."""
    sid = frozen_id(env_dir)
    return os.path.join(store_dir(env_dir), sid) if sid else None


class Snapshot:
    """One snapshot's record: ``meta.json`` in its directory."""

    __slots__ = ("created", "facts", "id", "name", "path", "program")

    def __init__(
        self, sid: str, name: str, created: float, program: str | None, facts: dict[str, str], path: str
    ) -> None:
        self.id = sid
        self.name = name
        self.created = created
        self.program = program
        self.facts = facts  # what the backend keeps of the root (the docker backend's image...)
        self.path = path

    @classmethod
    def load(cls, path: str) -> Snapshot | None:
        # json (and re): builtins only at the top, for the shims' path
        import json

        try:
            with open(os.path.join(path, "meta.json"), encoding="utf-8") as handle:
                meta = json.load(handle)
            return cls(
                meta["id"],
                meta["name"],
                float(meta["created"]),
                meta.get("program"),
                dict(meta.get("facts") or {}),
                path,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # incomplete or foreign: not a snapshot

    def meta(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "program": self.program,
            "facts": self.facts,
        }


def python_paths(
    env_dir: str, snapshot_dir: str | None, own: tuple[str, ...], extra: tuple[str, ...]
) -> list[str]:
    """The env's Python state, as paths relative to the env: the env's top-level entries (and the
    snapshot's, when restoring one) minus the env's own, the entries of ``bin/`` that are not
    venvroot's (a venv's console scripts, where the backend keeps them beside the shims), plus the
    backend's ``extra``."""
    # builtins only at the top, for the shims' path
    from ..shims.marker import is_venvroot_file

    tops = [env_dir] + ([os.path.join(snapshot_dir, "python")] if snapshot_dir else [])
    names: set[str] = set()
    programs: set[str] = set()
    for top in tops:
        if os.path.isdir(top):
            names.update(os.listdir(top))
        if os.path.isdir(os.path.join(top, "bin")):
            programs.update(os.listdir(os.path.join(top, "bin")))
    skip = set(OWN_PATHS) | set(own)
    found = sorted(n for n in names if n not in skip)
    found += [f"bin/{n}" for n in sorted(programs) if not is_venvroot_file(os.path.join(env_dir, "bin", n))]
    return found + [p for p in extra if p not in names]


def restore_python(env_dir: str, snapshot_dir: str, own: tuple[str, ...], extra: tuple[str, ...]) -> int:
    """Make the env's Python state exactly the snapshot's; return how many entries changed."""
    # filetree (contextlib): builtins only at the top, for the shims' path
    from ..util import filetree

    changed = 0
    for rel in python_paths(env_dir, snapshot_dir, own, extra):
        changed += filetree.sync(os.path.join(snapshot_dir, "python", rel), os.path.join(env_dir, rel))
    return changed


def discard_python_changes(env_dir: str, own: tuple[str, ...], extra: tuple[str, ...]) -> int:
    """A frozen env's session starts or ends: its Python packages go back to the frozen base."""
    base = frozen_dir(env_dir)
    if base is None or not os.path.isdir(base):
        return 0
    return restore_python(env_dir, base, own, extra)


def remove_all(env_dir: str) -> None:
    """``destroy``: the snapshots go (copies of a root may hold directories their mode closes)."""
    # filetree (contextlib): builtins only at the top, for the shims' path
    from ..util import filetree

    filetree.remove(store_dir(env_dir))
