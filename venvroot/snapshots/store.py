"""One environment's snapshots: listing, taking, restoring and deleting them, under one lock.

The backend does its part through the snapshot interface of :class:`venvroot.backends.base.Backend`
(``snapshot_root``, ``restore_root``, ``drop_root_snapshot``, ``freeze_root``, ``unfreeze_root``);
the store itself copies the env's Python packages.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import time

from ..backends.envstate import Snapshot, frozen_id, python_paths, restore_python, store_dir
from ..errors import UsageError, VenvrootError
from ..util import filetree, progress
from ..util.atomicfile import write_text
from .names import DEFAULT_NAME, check_name, new_id, render_name, unique

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from typing import Protocol

    from ..backends.base import Backend
    from ..backends.settings import Settings

    class EnvLike(Protocol):
        """What the store needs of an environment (``venvroot.env.Environment`` is one)."""

        settings: Settings

        @property
        def dir(self) -> str: ...
        @property
        def backend(self) -> Backend: ...
        def reset(self) -> None: ...
        def resync_shims(self, before: set[str]) -> None: ...


class Snapshots:
    """The snapshots of one environment."""

    def __init__(self, env: EnvLike) -> None:
        self.env = env
        self.env_dir = env.dir
        self.dir = store_dir(self.env_dir)

    def _paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        backend = self.env.backend
        return tuple(getattr(backend, "own_paths", ())), tuple(getattr(backend, "python_extra_paths", ()))

    # -- reading ---------------------------------------------------------------------------------
    def all(self) -> list[Snapshot]:
        """Oldest first."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = [Snapshot.load(os.path.join(self.dir, n)) for n in names if not n.startswith(".")]
        snaps = [s for s in found if s is not None]
        return sorted(snaps, key=lambda s: (s.created, s.id))

    def find(self, ref: str) -> Snapshot:
        """By name, else by id, else by a unique id prefix (4 characters at least)."""
        snaps = self.all()
        for snap in snaps:
            if snap.name == ref:
                return snap
        for snap in snaps:
            if snap.id == ref:
                return snap
        matches = [s for s in snaps if len(ref) >= 4 and s.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise UsageError(
            f"no snapshot named {ref!r} (or with that id) in {self.env_dir}; "
            f"`venvroot snapshot list {self.env_dir}` shows them"
        )

    def state(self) -> dict:
        """``state.json``: which snapshot the env is at, a counter for generated names."""
        try:
            with open(os.path.join(self.dir, "state.json"), encoding="utf-8") as handle:
                state = json.load(handle)
            return state if isinstance(state, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        write_text(os.path.join(self.dir, "state.json"), json.dumps(state, indent=1) + "\n")

    def _set_current(self, sid: str | None) -> None:
        state = self.state()
        state["current"] = sid
        self.save_state(state)

    def current(self) -> Snapshot | None:
        """The snapshot the env was last taken as or restored from (None after changes were reset)."""
        sid = self.state().get("current")
        return next((s for s in self.all() if s.id == sid), None)

    def frozen(self) -> Snapshot | None:
        sid = frozen_id(self.env_dir)
        return next((s for s in self.all() if s.id == sid), None) if sid else None

    def sizes(self) -> dict[str, int]:
        """Bytes each snapshot adds on disk: its files not shared with an older snapshot, plus what
        the backend keeps outside (e.g. an image layer)."""
        seen: set[tuple[int, int]] = set()
        return {
            s.id: filetree.usage(s.path, seen) + int(s.facts.get("root-size", "0") or 0) for s in self.all()
        }

    def info(self) -> list[tuple[str, str]]:
        snaps, frozen, current = self.all(), self.frozen(), self.current()
        rows = [("frozen", f"yes (base: snapshot {frozen.name})" if frozen else "no")]
        if snaps:
            rows.append(("snapshots", f"{len(snaps)}" + (f" (current: {current.name})" if current else "")))
        return rows

    # -- changing ----------------------------------------------------------------------------------
    def lock(self) -> AbstractContextManager[None]:
        """Serialises every change of the store (and of the root through it)."""

        @contextlib.contextmanager
        def locked() -> Iterator[None]:
            os.makedirs(self.dir, exist_ok=True)
            fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

        return locked()

    def call(self, method: str, *args: object) -> object:
        """The backend's part of the snapshot interface."""
        try:
            return getattr(self.env.backend, method)(*args)
        except NotImplementedError:
            raise VenvrootError(
                f"snapshots are not available with the {self.env.settings.backend} backend yet"
            ) from None

    def refuse_if_frozen(self, doing: str) -> None:
        sid = frozen_id(self.env_dir)
        if sid:
            base = next((s.name for s in self.all() if s.id == sid), sid)
            raise VenvrootError(
                f"{self.env_dir} is frozen (at snapshot {base}): {doing} is refused; "
                f"`venvroot unfreeze {self.env_dir}` first"
            )

    def create(
        self, name: str | None = None, *, program: str | None = None, template: str | None = None
    ) -> Snapshot:
        """Take a snapshot. ``name`` must be new; without one, ``template`` (or ``snap-{n}``) makes one,
        made unique with a ``.2``, ``.3``... suffix."""
        with self.lock():
            self.refuse_if_frozen("taking a snapshot")
            with progress.Progress(f"snapshot of {os.path.basename(self.env_dir)}"):
                return self.take(name, program, template or DEFAULT_NAME)

    def take(self, name: str | None, program: str | None, template: str) -> Snapshot:
        """``create`` with the lock held."""
        snaps = self.all()
        names = {s.name for s in snaps}
        state = self.state()
        n = int(state.get("counter", 0)) + 1
        sid = new_id({s.id for s in snaps})
        now = time.time()
        if name is not None:
            if check_name(name) in names:
                raise UsageError(
                    f"a snapshot named {name!r} exists in {self.env_dir}; "
                    "choose another name or delete that snapshot first"
                )
        else:
            base = check_name(render_name(template, sid=sid, n=n, program=program or "", when=now))
            name = unique(base, names)
        current = next((s for s in snaps if s.id == state.get("current")), None)
        previous = current or (snaps[-1] if snaps else None)
        tmp = os.path.join(self.dir, f".new-{sid}")
        final = os.path.join(self.dir, sid)
        facts: dict[str, str] | None = None
        own, extra = self._paths()
        try:
            os.makedirs(os.path.join(tmp, "python"))
            for rel in python_paths(self.env_dir, None, own, extra):
                src = os.path.join(self.env_dir, rel)
                if not os.path.lexists(src):
                    continue
                dst = os.path.join(tmp, "python", rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                filetree.copy(src, dst, os.path.join(previous.path, "python", rel) if previous else None)
            # The root last: the docker backend may re-base an idle container on the new image,
            # which a failure after it could not take back.
            found = self.call("snapshot_root", tmp, sid, previous.path if previous else None)
            facts = dict(found or {})  # type: ignore[call-overload]
            snap = Snapshot(sid, name, now, program, facts, final)
            write_text(os.path.join(tmp, "meta.json"), json.dumps(snap.meta(), indent=1) + "\n")
            state.update(counter=n, current=sid)
            self.save_state(state)
            os.rename(tmp, final)
        except BaseException as exc:
            self._undo_partial(tmp, facts)
            if isinstance(exc, OSError):
                raise _told(exc, self.env_dir, self.dir) from None
            raise
        return snap

    def _undo_partial(self, tmp: str, facts: dict[str, str] | None) -> None:
        if facts is not None:
            try:
                self.env.backend.drop_root_snapshot(tmp, facts)
            except Exception as drop_exc:  # the first error matters more; still say what is left
                print(
                    f"venvroot: removing the partial snapshot's root also failed: {drop_exc}", file=sys.stderr
                )
        filetree.remove(tmp)

    def restore(self, ref: str) -> Snapshot:
        """Bring back the root and the Python packages exactly as ``ref`` captured them. What runs in
        the env is stopped first, as by ``reset``."""
        with self.lock():
            snap = self.find(ref)
            self.refuse_if_frozen(f"restoring {snap.name}")
            before = self.offered()
            with progress.Progress(f"restoring {snap.name}"):
                self._put_back(snap)
            self._set_current(snap.id)
            self.env.resync_shims(before)
            return snap

    def _put_back(self, snap: Snapshot) -> None:
        self.call("restore_root", snap.path, snap.facts)
        own, extra = self._paths()
        try:
            restore_python(self.env_dir, snap.path, own, extra)
        except OSError as exc:
            why = "no space left on the disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
            raise VenvrootError(
                f"restoring the Python packages of {snap.name} failed ({why}: {exc.filename}); "
                f"they are partly restored: fix that and restore {snap.name} again"
            ) from None

    def delete(self, ref: str) -> Snapshot:
        with self.lock():
            snap = self.find(ref)
            if frozen_id(self.env_dir) == snap.id:
                raise VenvrootError(
                    f"{snap.name} is the frozen base of {self.env_dir} and cannot be deleted; "
                    f"`venvroot unfreeze {self.env_dir}` first"
                )
            self.call("drop_root_snapshot", snap.path, snap.facts)
            trash = os.path.join(self.dir, f".delete-{snap.id}")
            os.rename(snap.path, trash)  # gone from the list at once, even if removal is cut short
            filetree.remove(trash)
            if self.state().get("current") == snap.id:
                self._set_current(None)
            return snap

    def reset(self) -> None:
        """``venvroot reset``: the root back to its state right after creation; when frozen, the
        root and the Python packages back to the frozen base."""
        if not os.path.isdir(self.dir):
            self.env.reset()
            return
        with self.lock():
            before = self.offered()
            base = self.frozen()
            if base is None:
                self.env.reset()
            else:
                self._put_back(base)
            self._set_current(base.id if base else None)
            self.env.resync_shims(before)

    def offered(self) -> set[str]:
        return set(self.env.backend.programs_to_link())


def _told(exc: OSError, env_dir: str, store: str) -> VenvrootError:
    """A failed snapshot's error as the user reads it (the partial snapshot is already removed)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return VenvrootError(
            f"no space left on the disk for a snapshot of {env_dir} ({exc.filename or store}): "
            "the partial snapshot was removed and the env is unchanged; free some space "
            "(`venvroot snapshot delete` old snapshots) and try again"
        )
    return VenvrootError(
        f"cannot take a snapshot of {env_dir}: {exc.strerror or exc} ({exc.filename}); "
        "the partial snapshot was removed"
    )
