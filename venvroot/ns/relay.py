"""Entering a running PID namespace: fork the program into it and stay outside as its relay.

``setns(CLONE_NEWPID)`` moves only the children of the caller into the namespace, so whoever joins
one must fork. The process that stays behind (the relay) keeps the caller's view of one process:
signals sent to it go to the program, a stop by the terminal stops both, and its own end mirrors
the program's (the same death by signal, or the same exit status). Signals the terminal sends
(``si_code`` SI_KERNEL) already reach the program, which shares the relay's process group, and are
not sent twice. The program is killed if the relay dies (SIGKILL included). Hot path: builtins,
``_signal`` and the ns library's syscalls only. The compiled starter's ``--join`` does the same.
"""

from __future__ import annotations

import os
import sys

from . import syscalls

try:  # the C half of the signal module (``signal`` imports enum)
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

SI_KERNEL = 0x80
_STOPS = (_sig.SIGTSTP, _sig.SIGTTIN, _sig.SIGTTOU)
RELAYED = (
    _sig.SIGHUP, _sig.SIGINT, _sig.SIGQUIT, _sig.SIGTERM, _sig.SIGUSR1, _sig.SIGUSR2,
    _sig.SIGWINCH, _sig.SIGALRM, _sig.SIGCONT, *_STOPS,
)  # fmt: skip


def other_pid_namespace(pid: int) -> bool:
    """Whether process ``pid`` lives in another PID namespace than this process's children."""
    return os.stat(f"/proc/{pid}/ns/pid").st_ino != os.stat("/proc/self/ns/pid_for_children").st_ino


def fork_in(then: Callable[[int], object] | None = None) -> None:
    """After ``setns(CLONE_NEWPID)``: return in the child, inside the namespace; this process
    becomes the relay and never returns. Call :func:`die_with_relay` in the child once its ids
    are final (a change of ids clears what it sets). With ``then``, the relay keeps its stderr
    and calls ``then(status)`` with the program's wait status before it ends as the program did
    (a watcher with the last word: used outside PID namespaces too)."""
    watched = {*RELAYED, _sig.SIGCHLD}
    before = _sig.pthread_sigmask(_sig.SIG_BLOCK, watched)
    for stream in ("stdout", "stderr"):  # nothing buffered may be written twice
        _flush(stream)
    child = os.fork()
    if child == 0:
        _sig.pthread_sigmask(_sig.SIG_SETMASK, before)
        return
    _relay(child, watched, then)


def die_with_relay() -> None:
    """In the program's process: be killed when the relay ends; end now if it has already."""
    syscalls.set_parent_death_signal(_sig.SIGKILL)
    if os.getppid() != 0:  # the relay is outside (pid 0 from here): it died, this was adopted
        os._exit(128 + _sig.SIGKILL)


def _relay(child: int, watched: set[int], then: Callable[[int], object] | None = None) -> NoReturn:
    try:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1) if then else (0, 1, 2):  # a reader waiting for EOF must not wait for the relay
            os.dup2(null, fd)
    except OSError:
        pass
    os.closerange(3, 65536)  # the env's lock above all: a flock lives as long as any copy
    while True:
        info = _sig.sigwaitinfo(watched)
        signum = info.si_signo
        if signum == _sig.SIGCHLD:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                if then is not None:
                    try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
                        then(status)
                    except Exception:  # the program's status comes first
                        pass
                _mirror(status)
            continue
        if info.si_code != SI_KERNEL:  # sent to the relay alone: pass it on
            _kill(child, signum)
        if signum in _STOPS:  # the job stops as a whole; SIGCONT resumes both
            os.kill(os.getpid(), _sig.SIGSTOP)


def _mirror(status: int) -> NoReturn:
    """End as the program did."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            syscalls.set_dumpable(False)  # its core, not the relay's
            if signum != _sig.SIGKILL:
                _sig.signal(signum, _sig.SIG_DFL)
                _sig.pthread_sigmask(_sig.SIG_UNBLOCK, {signum})
            os.kill(os.getpid(), signum)
        except (OSError, ValueError):
            pass
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status))


def _kill(pid: int, signum: int) -> None:
    try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _flush(name: str) -> None:
    stream = getattr(sys, name, None)
    if stream is not None:
        try:  # noqa: SIM105 - as above
            stream.flush()
        except (OSError, ValueError):
            pass
