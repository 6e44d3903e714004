"""The processes of an environment's namespaces: finding each namespace that holds its layers; ending them.

Standard library only (the holder runs this inside the root). A mount namespace lives as long as
one process is in it, and with it every mount made there, the env's writable overlays among them.
A holder that is killed leaves the programs of its session running in such a namespace, unseen
by a record that names a dead pid: :func:`holding` finds them from their mount table, whatever
left them behind, so that a start adopts or ends them before it mounts anything again
(survivors.py), and stop, reset and destroy end them.
"""

from __future__ import annotations

import os
import time

from .layout import MARKER_PREFIX, State

try:  # the C half of the signal module (``signal`` imports enum); the holder needs it inside
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL when stopping


def members(ns: int, first_only: bool = False, spare: int = 0) -> list[int]:
    """Processes (but this one, and ``spare``) in the mount namespace ``ns``; zombies have none."""
    skip = {os.getpid(), spare}
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in skip:
            try:
                if os.stat(f"/proc/{name}/ns/mnt").st_ino == ns:
                    out.append(int(name))
                    if first_only:
                        break
            except OSError:
                continue
    return out


def _escaped(text: str, special: str) -> str:
    """``text`` as /proc/PID/mountinfo shows it: each of ``special`` as a backslash and 3 octal digits."""
    return "".join(f"\\{ord(c):03o}" if c in special else c for c in text)


def holding(state: State) -> dict[int, list[int]]:
    """Mount namespaces other than this process's in which the env's writable layers are mounted
    (or its hidden state is covered): inode -> the pids in it. One mount table per namespace is read."""
    by_ns: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                by_ns.setdefault(os.stat(f"/proc/{name}/ns/mnt").st_ino, []).append(int(name))
            except OSError:
                continue
    try:
        own = os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        own = 0
    # The kernel escapes option values (upperdir=...) and mount points differently.
    upper = "upperdir=" + _escaped(state.base + "/", ",= \t\n\\")
    point = " " + _escaped(state.hidden, " \t\n\\") + " "
    found = {}
    for ns, pids in by_ns.items():
        if ns == own:
            continue
        for pid in pids:  # the first whose table can be read speaks for the namespace
            try:
                with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as handle:
                    table = handle.read()
            except OSError:
                continue
            if upper in table or point in table:
                found[ns] = pids
            break
    return found


def marker_token(state: State, pids: list[int]) -> tuple[int, str] | None:
    """(pid, token) of a live-TOKEN marker that one of ``pids`` (a namespace's processes) sees
    in the env's hidden state; None when none does (the namespace was never finished, or closed)."""
    for pid in pids:
        try:
            entries = os.listdir(f"/proc/{pid}/root{state.hidden}")
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(MARKER_PREFIX):
                return pid, entry[len(MARKER_PREFIX) :]
        return None
    return None


def terminate(ns: int, own: bool = False, spare: int = 0) -> None:
    """End every process in the mount namespace ``ns`` (but ``spare``): SIGTERM, then SIGKILL
    after a grace. ``own``: called by the holder itself (its children are reaped on the way)."""
    deadline = time.monotonic() + TERM_GRACE
    signum = _sig.SIGTERM
    sent: set[int] = set()
    while True:
        found = members(ns, spare=spare)
        if not found:
            return
        for pid in found:
            if signum == _sig.SIGKILL or pid not in sent:
                kill(pid, signum)
                sent.add(pid)
        if signum == _sig.SIGTERM and time.monotonic() > deadline:
            signum = _sig.SIGKILL
        time.sleep(0.01)
        if own:
            _reap()


def kill(pid: int, signum: int) -> None:
    try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
