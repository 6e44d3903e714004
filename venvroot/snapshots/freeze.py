"""Freezing: a snapshot made the base every session starts from, until unfrozen."""

from __future__ import annotations

import os

from ..backends.envstate import FROZEN_FILE, Snapshot, frozen_id
from ..errors import UsageError
from ..util import progress
from ..util.atomicfile import write_text
from .names import FREEZE_NAME
from .store import Snapshots


def freeze(store: Snapshots, name: str | None = None) -> Snapshot:
    """Take a snapshot and make it the base every session starts from."""
    with store.lock():
        if frozen_id(store.env_dir):
            store.refuse_if_frozen("freezing again")
        with progress.Progress(f"freezing {os.path.basename(store.env_dir)}"):
            snap = store.take(name, None, FREEZE_NAME)
        store.call("freeze_root", snap.path, snap.facts)
        write_text(os.path.join(store.dir, FROZEN_FILE), snap.id + "\n")
        return snap


def unfreeze(store: Snapshots) -> Snapshot:
    """Changes last again; the env stays at its frozen state (the base stays as a snapshot)."""
    with store.lock():
        snap = store.frozen()
        if snap is None:
            raise UsageError(f"{store.env_dir} is not frozen")
        store.call("unfreeze_root", snap.path, snap.facts)
        os.unlink(os.path.join(store.dir, FROZEN_FILE))
        return snap
