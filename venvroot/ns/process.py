"""The processes of one launch: forking with signals forwarded, waiting for a child, the terminal.

Every process that stays behind only waits: it forwards INT, TERM, HUP, QUIT, USR1, USR2 and WINCH to
the next one and returns its status, 128+N for a death by signal N (hot path: no typing, no enum).
"""

from __future__ import annotations

import os
import select
import sys

from . import syscalls

try:  # the C half of the signal module: ``signal`` itself imports enum (~4 ms)
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

FORWARDED = (_sig.SIGINT, _sig.SIGTERM, _sig.SIGHUP, _sig.SIGQUIT, _sig.SIGUSR1, _sig.SIGUSR2, _sig.SIGWINCH)
# Python ignores these at startup; a program exec'd from Python must get them back as default.
PYTHON_IGNORED = (_sig.SIGPIPE, getattr(_sig, "SIGXFSZ", _sig.SIGPIPE))
STATUS_SETUP_FAILED = 125


class Launch:
    """State shared by the processes of one launch (each forked process has its own copy)."""

    __slots__ = ("handlers", "mask", "report_r", "report_w", "top_pid", "tty_fd")

    def __init__(self) -> None:
        self.top_pid = os.getpid()
        self.handlers: dict[int, object] = {s: _sig.getsignal(s) for s in FORWARDED}
        self.mask = _sig.pthread_sigmask(_sig.SIG_BLOCK, FORWARDED)
        self.report_r, self.report_w = os.pipe()
        self.tty_fd = foreground_tty()

    def close(self) -> None:
        _sig.pthread_sigmask(_sig.SIG_SETMASK, self.mask)
        for s, handler in self.handlers.items():
            if handler is not None:
                set_handler(s, handler)
        for fd in (self.report_r, self.report_w):
            close_fd(fd)


def fork(launch: Launch) -> int:
    """Fork with the forwarded signals blocked (they are, from Launch on). The parent forwards them
    to the child from now on; the child keeps them blocked until it runs the program."""
    if not syscalls._functions:
        syscalls.bind_libc()  # before forking: every process below needs it
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        syscalls.set_parent_death_signal(9)  # our parent only waits for us: if it is killed, so are we
        if os.getppid() not in (parent, 0):  # it died before that took effect (0: a new PID namespace)
            os._exit(STATUS_SETUP_FAILED)
        return 0

    def forward(signum: int, frame: object) -> None:
        try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shim path
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        if launch.handlers[s] != _sig.SIG_IGN:
            set_handler(s, forward)
    _sig.pthread_sigmask(_sig.SIG_SETMASK, launch.mask)
    return pid


def set_handler(signum: int, handler: object) -> None:
    try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shim path
        _sig.signal(signum, handler)
    except ValueError:  # not the main thread: signals go to the main thread's handlers anyway
        pass


def restore_signals(launch: Launch, for_exec: bool) -> None:
    for s, handler in launch.handlers.items():
        if handler == _sig.SIG_IGN:
            _sig.signal(s, _sig.SIG_IGN)
        elif for_exec or handler is None:
            _sig.signal(s, _sig.SIG_DFL)
        else:
            _sig.signal(s, handler)  # e.g. Python's KeyboardInterrupt for SIGINT
    if for_exec:
        for s in PYTHON_IGNORED:
            _sig.signal(s, _sig.SIG_DFL)
    _sig.pthread_sigmask(_sig.SIG_SETMASK, launch.mask)


def wait(pid: int, reap_all: bool = False) -> int:
    """Wait for ``pid`` (as an init, reap everyone else on the way); return a shell-style status.

    Not blocked in waitpid: a signal that lands just before that call starts would have its Python
    handler (the forwarder) run only once the call returns, when the program has ended. Signals
    wake a select on Python's wakeup fd instead, SIGCHLD included, so none waits."""
    waker = _Waker.install()
    try:
        while True:
            try:
                done, status = os.waitpid(-1 if reap_all else pid, 0 if waker is None else os.WNOHANG)
            except ChildProcessError:
                return STATUS_SETUP_FAILED
            if done == pid:
                if os.WIFSIGNALED(status):
                    return 128 + os.WTERMSIG(status)
                return os.WEXITSTATUS(status)
            if done == 0 and waker is not None:
                waker.wait()  # (the forwarders run as it returns)
    finally:
        if waker is not None:
            waker.remove()


class _Waker:
    """Python's signal wakeup fd, with a handler for SIGCHLD so that a child's end writes it too."""

    __slots__ = ("old_chld", "old_fd", "r", "w")
    r: int
    w: int
    old_fd: int
    old_chld: object

    @classmethod
    def install(cls) -> _Waker | None:
        """None outside the main thread, where neither can be set: waitpid blocks there."""
        self = cls()
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.old_fd = _sig.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        except ValueError:
            os.close(self.r)
            os.close(self.w)
            return None
        self.old_chld = _sig.signal(_sig.SIGCHLD, _nothing)
        return self

    def wait(self) -> None:
        select.select([self.r], [], [])
        try:
            while os.read(self.r, 512):
                pass
        except BlockingIOError:
            pass

    def remove(self) -> None:
        # (None: a handler not set from Python, which Python cannot put back; the default then)
        _sig.signal(_sig.SIGCHLD, _sig.SIG_DFL if self.old_chld is None else self.old_chld)
        _sig.set_wakeup_fd(self.old_fd)
        os.close(self.r)
        os.close(self.w)


def _nothing(signum: int, frame: object) -> None:
    """SIGCHLD's handler while waiting: only there for the wakeup fd to be written."""


def foreground_tty() -> int | None:
    """The terminal this process group holds in the foreground, if any (to hand it to the program)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return fd
        except OSError:
            continue
    return None


def take_terminal(fd: int) -> None:
    """In the program's process: its own process group, in the terminal's foreground, so that ^C
    and ^Z reach it and its job control (an interactive shell's) works."""
    try:
        os.setpgid(0, 0)
        old = _sig.pthread_sigmask(_sig.SIG_BLOCK, (_sig.SIGTTOU,))
        try:
            os.tcsetpgrp(fd, os.getpgrp())
        finally:
            _sig.pthread_sigmask(_sig.SIG_SETMASK, old)
    except OSError:
        pass


def restore_tty(launch: Launch) -> None:
    if launch.tty_fd is None:
        return
    old = _sig.pthread_sigmask(_sig.SIG_BLOCK, (_sig.SIGTTOU,))
    try:
        os.tcsetpgrp(launch.tty_fd, os.getpgrp())
    except OSError:
        pass
    finally:
        _sig.pthread_sigmask(_sig.SIG_SETMASK, old)


def flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def close_fd(fd: int) -> None:
    if fd >= 0:
        try:  # noqa: SIM105 - see above
            os.close(fd)
        except OSError:
            pass
