"""The brain of a compiled start: the holder's watch, from outside the namespaces.

When the compiled starter (starter.c) starts an environment, the process in its namespaces is K, a
small C process that only keeps them alive; this Python process, K's parent, does what the holder
does (holder.watch): it watches the activated shells and what runs inside, runs the on-deactivate
commands (joining K's namespaces, as management does), and when the env may end, forgets the
record and lets K go by closing the pipe K waits on. It runs beside the first program, off the
shim's path, so its start costs the shim nothing.

    shimentry.py --brain ENV K_PID TOKEN FD
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select

from .. import envconfig
from .coldstart import holder_facts
from .enter import run_inside
from .holder import Lock
from .layout import State
from .record import recorded
from .watch import Place, give_up, watch

try:
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig


class Outside(Place):
    """Where the brain watches from (see holder.Inside): the host's side, through K."""

    def __init__(self, anchor: int, facts: dict) -> None:
        self.anchor = anchor
        self.spare = anchor  # K: not a program of the env
        self.ns = os.stat(f"/proc/{anchor}/ns/mnt").st_ino
        self.pidfd = os.pidfd_open(anchor)
        self.wake = [self.pidfd]  # readable once K has ended: the namespaces are gone
        self.hidden_fd = os.open(
            f"/proc/{anchor}/root{facts['hidden']}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        )

    def gone(self) -> bool:
        return bool(select.select([self.pidfd], [], [], 0)[0])

    def run(self, command: str, facts: dict) -> int:
        return run_inside(
            self.anchor, ["/bin/sh", "-c", command], facts["cwd"], facts["environ"], facts["ids"]
        )


def main(env_dir: str, anchor_pid: str, token: str, hold: str) -> int:
    """Serve as the brain of K (``anchor_pid``), whose pipe's write end is the descriptor ``hold``."""
    anchor, hold_fd = int(anchor_pid), int(hold)
    os.set_inheritable(hold_fd, False)  # hooks must not keep K alive
    for signum in (_sig.SIGTERM, _sig.SIGINT):
        _sig.signal(signum, lambda *_: os._exit(0))  # closing the pipe lets K go
    state = State(env_dir)
    try:
        with Lock(state) as lock:
            lock.shared()  # the starter holds it until K is recorded, or given up
            state_fd = os.open(state.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            mine = recorded(state_fd, token) == anchor
            fcntl.flock(lock.fd, fcntl.LOCK_UN)
            if mine:
                facts = holder_facts(envconfig.read(env_dir))
                shells_fd = os.open("shells", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=state_fd)
                try:
                    place = Outside(anchor, facts)
                except OSError:  # K has ended already (the env was stopped): nothing to watch
                    return 0
                try:
                    watch(state_fd, lock.fd, shells_fd, token, facts, place)
                except BaseException as exc:
                    give_up(state_fd, lock.fd, token, place, exc)
    finally:
        os.close(hold_fd)
        with contextlib.suppress(ChildProcessError):  # or reaped on the way (holder.terminate)
            os.waitpid(anchor, 0)
    return 0
