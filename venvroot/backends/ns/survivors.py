"""Taking over what a dead holder left running before anything mounts: one session adopted, the rest ended.

A holder killed from outside (SIGKILL, the OOM killer) leaves its record naming a dead pid while
the programs of its session still run in its namespaces, the env's writable overlays mounted
there. Mounting those layers again for a new session would put two overlays on one upper
directory (undefined behaviour: files written through either can be lost), so every start first
comes here when a record is left (holders forget theirs when they end, so a record without a live
holder is the sign). The survivors keep their session: a new holder is forked into their
namespaces, is recorded with the token of the marker they still see, and the caller joins it as
if nothing had happened. Namespaces that cannot be adopted (never finished, closed, or a second
one) are ended.

The compiled starter never replays a start while a stale record is there: it leaves the case to
this Python path.
"""

from __future__ import annotations

import os

from ...errors import VenvrootError
from ...ns import syscalls
from . import processes
from .coldstart import from_a_child, holder_facts, leave_holder
from .layout import State
from .record import read_holder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig


def take_over(cfg: EnvConfig, state: State) -> tuple[int, str] | None:
    """With the env's lock held exclusively and no live holder: adopt the namespaces a dead
    holder left running and return their new holder (pid, token), or end what cannot be adopted
    and return None (the caller starts afresh; the stale record is gone)."""
    if not os.path.lexists(state.holder):
        return None  # every holder that ended forgot its record: nothing can survive it
    adopted = None
    for ns, pids in processes.holding(state).items():
        if adopted is None and (seen := processes.marker_token(state, pids)) is not None:
            try:
                adopted = _adopt(cfg, state, *seen)
                continue
            except VenvrootError:
                pass  # ended with the others below: a second mount is worse than a lost session
        processes.terminate(ns)
    if adopted is None:
        try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
            os.unlink(state.holder)
        except FileNotFoundError:
            pass
    return adopted


def _adopt(cfg: EnvConfig, state: State, member: int, token: str) -> tuple[int, str]:
    """Fork a holder into the namespaces of ``member`` and record it with ``token``."""
    facts = holder_facts(cfg)
    state_fd = os.open(state.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def adopt() -> tuple[int, str]:
        _enter(member)
        return leave_holder(state_fd, token, facts), token

    try:
        found = from_a_child(adopt, f"cannot adopt the namespaces of process {member}")
    finally:
        os.close(state_fd)
    if read_holder(state) != found:
        raise VenvrootError(f"cannot adopt the namespaces of process {member}: its holder ended at once")
    return found


def _enter(pid: int) -> None:
    """Join the user (when another), mount, UTS and IPC namespaces of ``pid``; the mount namespace
    moves this process's root and cwd to that namespace's root, the env's."""
    order = (
        ("user", syscalls.CLONE_NEWUSER),
        ("mnt", syscalls.CLONE_NEWNS),
        ("uts", syscalls.CLONE_NEWUTS),
        ("ipc", syscalls.CLONE_NEWIPC),
    )
    fds = []
    try:  # all opened first: joining the mount namespace hides /proc/PID
        for name, flag in order:
            if os.stat(f"/proc/{pid}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                fds.append((flag, os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        for flag, fd in fds:
            syscalls.setns(fd, flag)
    finally:
        for _, fd in fds:
            os.close(fd)
