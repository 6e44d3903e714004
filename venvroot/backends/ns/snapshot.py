"""Snapshots of an ``ns`` environment's root: its writable layers, copied file by file.

The pristine lower layers (the host, a directory, an unpacked tarball or image) never change and
are never copied. What a snapshot keeps, under ``<snapshot>/root/``, relative to the state
directory ``<env>/.venvroot/ns``:

* a directory, tarball or image root: ``upper/``, the overlay's writable layer;
* the host view: ``root/`` (the skeleton, with the writable part of directories that could not be
  overlaid), ``tmp/`` (the env's private /tmp, if any), ``layers/NAME/upper/`` (the writable layer of each
  overlaid host directory) and the generated ``passwd``/``group`` where /etc has no layer.

Overlay work directories are the kernel's scratch space and are left alone. Whiteouts, opaque
directories (``user.overlay.*`` rootless, ``trusted.overlay.*`` as root) and hard links survive
the copies (see :mod:`venvroot.util.filetree`). Rootless without subordinate ids every file of the
layers belongs to the caller, so the copies are made from the host side; with them, as root of a
user namespace mapping them (mappedroot.py), so that system users' files keep their owners.

Restoring, and discarding a frozen env's changes, happen with the namespaces stopped (an
overlay's layers must not change under it), holding the env's lock exclusively.
"""

from __future__ import annotations

import os

from ...util import filetree
from .. import envstate
from . import holder, mappedroot
from .layout import CFG_SOURCE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar, Protocol

    from ..settings import Settings
    from .layout import State

    class Backend(Protocol):
        """What this module uses of backend.py's class (which imports this module)."""

        settings: Settings
        own_paths: ClassVar[tuple[str, ...]]
        python_extra_paths: ClassVar[tuple[str, ...]]

        @property
        def env_dir(self) -> str: ...

        @property
        def state(self) -> State: ...

        def prepare_root(self) -> None: ...


def root_parts(backend: Backend, snapshot_dir: str | None = None) -> list[str]:
    """The writable parts of the root (relative to the state directory) now, and in the snapshot."""
    state = backend.state
    if (backend.settings.extra.get(CFG_SOURCE) or "host") != "host":
        return ["upper"]
    names: set[str] = set()
    for top in (state.base, os.path.join(snapshot_dir, "root") if snapshot_dir else None):
        if top is not None and os.path.isdir(os.path.join(top, "layers")):
            names.update(os.listdir(os.path.join(top, "layers")))
    return ["root", "tmp", "passwd", "group", *(f"layers/{name}/upper" for name in sorted(names))]


def take(backend: Backend, dest: str, previous: str | None) -> dict[str, str]:
    """Copy the writable parts into ``dest/root``, hard-linking what ``previous`` has unchanged."""
    base = backend.state.base

    def work() -> None:
        for rel in root_parts(backend):
            src = os.path.join(base, rel)
            if not os.path.lexists(src):
                continue
            dst = os.path.join(dest, "root", rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            filetree.copy(src, dst, os.path.join(previous, "root", rel) if previous else None)

    mappedroot.run(work)
    return {}


def put_back(backend: Backend, src: str, lock: holder.Lock, prepare: bool = False) -> None:
    """Stop the namespaces and make the writable parts exactly the snapshot's; with ``prepare``,
    make the root ready to enter again as after ``reset`` (the host's mounts may have changed;
    otherwise the next start of the namespaces re-plans the host view if it must)."""
    state = backend.state
    holder.stop(state, lock)

    def work() -> None:
        for rel in root_parts(backend, src):
            saved = os.path.join(src, "root", rel)
            target = os.path.join(state.base, rel)
            if os.path.lexists(saved):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                filetree.sync(saved, target)
            elif os.path.isdir(target) and not os.path.islink(target):
                for name in os.listdir(target):  # a layer the snapshot did not have yet: empty
                    filetree.remove(os.path.join(target, name))
            else:
                filetree.remove(target)

    mappedroot.run(work)
    if prepare:
        backend.prepare_root()


def discard_frozen_changes(backend: Backend, lock: holder.Lock, prepare: bool = False) -> bool:
    """A frozen env's session begins or ends (or it is reset): the root and the Python packages go
    back to the frozen base. False when the env is not frozen."""
    base = envstate.frozen_dir(backend.env_dir)
    if base is None or not os.path.isdir(base):
        return False
    put_back(backend, base, lock, prepare)
    envstate.discard_python_changes(backend.env_dir, backend.own_paths, backend.python_extra_paths)
    return True
