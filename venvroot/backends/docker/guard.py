"""The shim's guard: when a docker shim dies before its program (SIGKILL included), the program dies too.

Standard library only (a shim's hot path). A local program killed with SIGKILL is gone; the
program of a killed ``docker exec`` client runs on in the container, because the Engine API has
no way to end an exec (moby#9098). So before the exec starts, the shim forks a guard, detached
from everything of the shim's (its terminal, its pipes, the exec's socket), that waits on a pipe
only the shim can write. A shim that ends in order writes one byte first and the guard leaves
quietly; end of file without it means the shim died, and the guard kills the program by its pid
(from inside the container when it runs as another user), then lets a non-persistent env's
container stop as the shim would have.
"""

from __future__ import annotations

import _signal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .process import RemoteProcess


def start(proc: RemoteProcess, after: Callable[[], None]) -> int:
    """Fork the guard of ``proc`` (its exec created, not started); return the descriptor that
    :func:`release` closes. ``after``: what the guard does once it has killed the program."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()  # out of the shim's process group: the terminal's keys are not for it
            if os.fork() == 0:
                _guard(read_fd, proc, after)
        finally:
            os._exit(0)
    os.close(read_fd)
    os.waitpid(pid, 0)  # the middle child leaves at once: the guard is nobody's child of ours
    return write_fd


def release(fd: int) -> None:
    """The shim ends in order: the guard leaves without touching the program."""
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


def _guard(read_fd: int, proc: RemoteProcess, after: Callable[[], None]) -> None:
    try:
        for signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGPIPE):
            _signal.signal(signum, _signal.SIG_IGN)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):  # a caller waiting for the shim's output to end must not wait for us
            os.dup2(null, fd)
        os.closerange(3, read_fd)
        os.closerange(read_fd + 1, 65536)  # the exec's socket above all: its end is the shim's end
        proc._conn = proc._side = None  # their sockets are closed; a new one when needed
        while True:
            try:
                said = os.read(read_fd, 1)
                break
            except InterruptedError:
                continue
        if not said:
            proc.signal(_signal.SIGKILL)
            after()
    except BaseException:
        pass
    finally:
        os._exit(0)
