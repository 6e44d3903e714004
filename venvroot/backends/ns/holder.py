"""The holder: one process that keeps an environment's namespaces (and so its mounts) alive.

Every program of an environment runs in the holder's namespaces: shims join them (``nsenter`` from
the shim's sh fragment, or ``enter.join`` from Python), nothing mounts the env's writable layers a
second time. Two mounts of one overlay upper directory at once are undefined behaviour (the kernel
says so, and a mount cleans the work directory the other is using), and building the
host view costs one overlay per host directory (about half a millisecond each, to mount and to
tear down), so the namespaces are built once and shared.

Processes (coldstart.py)::

    starter (a shim, `venvroot run`) ── builds the namespaces ─ A ─ R ─ holder (inside)
       └── becomes the program, inside          A leaves at once; R records the holder and waits
                                                only to reap it

The starter builds the namespaces in its own process, leaves the holder in them (in a session of
its own, neither the program's child nor its parent) and becomes the program. Management (hooks)
starts them through ``backend._start``: a child of its own does the same and exits once the holder is
recorded. The starter creates the liveness marker ``<env>/.venvroot/live-TOKEN`` inside (a shim
checks it through ``/proc/PID/root``, so a reused pid is never mistaken for the holder). The holder
ends itself, when the env is not persistent, once no activated shell is left and nothing runs
inside for ``LINGER`` seconds; when every activated shell died without deactivating (a closed
terminal) it runs the on-deactivate commands and, unless the env is persistent, ends everything
inside. Either way it forgets its own record through a descriptor of the state directory (covered
inside the root) taken before the root was built; anything else it has to say goes to
``holder.log``. ``stop`` ends it from outside (deactivate, reset, destroy): every process whose
mount namespace is the holder's is terminated, then killed.

A compiled start (starter.c) leaves K, a C process that only anchors the namespaces, as the recorded
holder, and its parent, the brain (brain.py), runs the watch from outside them.

Here: the lock, the activated shells, finding the running holder and stopping it. By job beside it:
record.py (the record and marker), watch.py (what the holder does while it runs), enter.py
(joining it).

Locking (``state/lock``): shims hold it shared while they join; starting and stopping take it
exclusively, and so does the holder before it ends itself.
"""

from __future__ import annotations

import fcntl
import os

from ...errors import VenvrootError
from ..activations import live
from .layout import State
from .processes import holding, kill, terminate
from .record import marker, read_holder, remove

try:  # the C half of the signal module (``signal`` imports enum); the holder needs it inside
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig


class Lock:
    """flock on ``state/lock``; released when the process execs (close-on-exec) or on ``close``."""

    def __init__(self, state: State) -> None:
        try:
            self.fd = os.open(state.lock, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise VenvrootError(
                f"{state.env_dir} is not a complete ns environment ({state.lock} is missing); recreate it"
            ) from None

    def shared(self) -> Lock:
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        return self

    def exclusive(self) -> Lock:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def live_shells(state: State) -> list[int]:
    """Pids of the activated shells still alive (a pid reused by another process does not count)."""
    return live(state.shells)


def forget_dead_shells(state: State) -> None:
    """Remove the registrations of shells that are gone (or were deactivated)."""
    alive = set(live_shells(state))
    for name in os.listdir(state.shells):
        if name.isdigit() and int(name) not in alive:
            remove(os.path.join(state.shells, name))


def running(state: State, lock: Lock) -> tuple[int, str] | None:
    """The live holder of the env (``lock`` then held shared, so it cannot end before the caller
    has joined), or None with ``lock`` held exclusively: the caller starts the namespaces."""
    lock.shared()
    found = read_holder(state)
    if found is not None:
        return found
    lock.exclusive()  # drops the shared lock first, so two starters cannot deadlock
    return read_holder(state)


def stop(state: State, lock: Lock | None = None) -> bool:
    """End the env's namespaces and everything in them. Returns whether a holder was running.
    Takes the lock exclusively unless the caller passes one it holds."""
    own = lock is None
    lock = lock or Lock(state).exclusive()
    try:
        found = read_holder(state)
        stopped = False
        # Each namespace held open by a descriptor until its processes are gone: a mount namespace's
        # inode number, which identifies it here, is given to a new one once it is freed.
        held: dict[int, int] = {}
        if found is not None:
            pid, token = found
            _hold(held, pid)
            remove(f"/proc/{pid}/root{state.hidden}/{marker(token)}")
            stopped = True
        for ns, pids in holding(state).items():  # with a holder that died (survivors.py)
            for member in pids:
                if _hold(held, member, ns):
                    break
        try:
            if found is not None:
                kill(found[0], _sig.SIGTERM)
            for ns in held:
                terminate(ns)
        finally:
            for fd in held.values():
                os.close(fd)
        remove(state.holder)  # last: a stop killed on the way leaves the record for the next start
        return stopped
    finally:
        if own:
            lock.close()


def _hold(held: dict[int, int], pid: int, expected: int | None = None) -> bool:
    """Open the mount namespace of ``pid`` into ``held`` (inode -> descriptor), if it is still the
    ``expected`` one; whether it was."""
    try:
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    ns = os.fstat(fd).st_ino
    if ns in held or (expected is not None and ns != expected):
        os.close(fd)
        return ns in held
    held[ns] = fd
    return True
