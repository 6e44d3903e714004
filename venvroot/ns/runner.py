"""Running something inside a root: the process layout around sandbox.py's steps.

``exec_command`` is the shim's path. Without a PID namespace and with every mount point present it
replaces the calling process outright (unshare, mount, pivot_root, execve: no fork, so signals, the
terminal and the exit status need no help). Otherwise the fewest processes that are needed::

    caller ─ [namespace process] ─ [init, PID 1 of a new PID namespace] ─ program

A process stays behind only to wait: it forwards INT, TERM, HUP, QUIT, USR1, USR2 and WINCH to the
next one (an init ignores signals it has no handler for, so a program must never be PID 1), removes
the mount points it created once the program is gone, and exits with the program's status, 128+N
for a death by signal N. Failures before the program starts travel back on a pipe and are raised in
the caller as one-line errors. Every forked process leaves through ``os._exit``: nothing of the
caller's stack (``except``, ``finally``, ``atexit``) ever runs twice.
"""

from __future__ import annotations

import os
import sys

from . import relay, sandbox, seccomp, syscalls
from .errors import KINDS, ChrootError
from .frames import receive, send
from .mounts import Mount, check_sources, default_mounts

try:  # the C half of the signal module: ``signal`` itself imports enum (~4 ms)
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig  # type: ignore[no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, NoReturn

FORWARDED = (_sig.SIGINT, _sig.SIGTERM, _sig.SIGHUP, _sig.SIGQUIT, _sig.SIGUSR1, _sig.SIGUSR2, _sig.SIGWINCH)
# Python ignores these at startup; a program exec'd from Python must get them back as default.
_PYTHON_IGNORED = (_sig.SIGPIPE, getattr(_sig, "SIGXFSZ", _sig.SIGPIPE))
STATUS_SETUP_FAILED = 125
STATUS_NOT_EXECUTABLE = 126
STATUS_NOT_FOUND = 127

PROGRAM = "venvroot"  # prefix of messages printed by processes inside; the CLI sets "venvroot chroot"
DEFAULT = object()  # the default mounts (pychroot's): /dev, /proc, /sys, /dev/shm, /etc/resolv.conf
IN_ROOT = object()  # returned by the launch functions in the process that continues inside the root


class _Launch:
    """State shared by the processes of one launch (each forked process has its own copy)."""

    __slots__ = ("handlers", "mask", "report_r", "report_w", "top_pid", "tty_fd")

    def __init__(self) -> None:
        self.top_pid = os.getpid()
        self.handlers: dict[int, object] = {s: _sig.getsignal(s) for s in FORWARDED}
        self.mask = _sig.pthread_sigmask(_sig.SIG_BLOCK, FORWARDED)
        self.report_r, self.report_w = os.pipe()
        self.tty_fd = _foreground_tty()

    def close(self) -> None:
        _sig.pthread_sigmask(_sig.SIG_SETMASK, self.mask)
        for s, handler in self.handlers.items():
            if handler is not None:
                _set_handler(s, handler)
        for fd in (self.report_r, self.report_w):
            _close(fd)


# -- the public API ------------------------------------------------------------------------------------


def make_spec(
    root: str | os.PathLike[str],
    *,
    mounts: Iterable[Mount] | object | None = DEFAULT,
    uid: int | None = 0,
    gid: int | None = 0,
    hostname: str | None = None,
    pid: bool = False,
    net: bool = False,
    cwd: str | None = None,
    skip_chdir: bool = False,
) -> sandbox.Spec:
    """Check the arguments and build the description of one entry into ``root``.

    mounts     Mount values in order; ``DEFAULT`` for pychroot's defaults, None or () for none.
    uid, gid   who the caller is inside: 0 (root, the default) or any id; None for its own ids.
               Rootless, a user namespace maps the caller to them; as root they are switched to.
    hostname   the UTS namespace's hostname; an FQDN sets the domain name too.
    pid, net   new PID namespace (the program runs under a small init) / network namespace
               (only loopback, up).
    cwd        directory inside the root to start in (default ``/``); ``skip_chdir`` keeps the
               caller's directory instead, as pychroot's skip_chdir did.
    """
    root = os.fspath(root)
    if not os.path.exists(root):
        raise ChrootError(f"cannot change root to {root}: no such directory (check the path)", 2)
    if not os.path.isdir(root):
        raise ChrootError(f"cannot change root to {root}: not a directory (give the root directory)", 20)
    mount_list = default_mounts() if mounts is DEFAULT else list(mounts or ())  # type: ignore[call-overload]
    for i, m in enumerate(mount_list):
        if not isinstance(m, Mount):
            raise ChrootError(f"mounts[{i}] is {m!r}, not a Mount")
        if m.dest == "/" and i:
            raise ChrootError("a mount on / must be the first mount")
    if hostname is not None and (not hostname or len(hostname) > 253 or "/" in hostname or "\0" in hostname):
        raise ChrootError(f"bad hostname {hostname!r}: use letters, digits, '-' and dots")
    for name, value in (("uid", uid), ("gid", gid)):
        if value is not None and not (isinstance(value, int) and 0 <= value < 2**32 - 1):
            raise ChrootError(f"bad {name} {value!r}: expected a number from 0 to 4294967294, or None")
    if cwd is not None and not cwd.startswith("/"):
        raise ChrootError(f"bad cwd {cwd!r}: give an absolute path inside the root")
    return sandbox.Spec(
        os.path.realpath(root),
        check_sources(mount_list),
        uid=uid,
        gid=gid,
        hostname=hostname,
        pid=pid,
        net=net,
        cwd=cwd,
        skip_chdir=skip_chdir,
    )


def exec_command(
    root: str | os.PathLike[str], argv: Sequence[str], *, env: Mapping[str, str] | None = None, **options: Any
) -> NoReturn:
    """Replace this process with ``argv`` run inside ``root`` (options: see :func:`make_spec`).

    Without a PID namespace and with every mount point present this is a plain execve inside the
    namespaces. Otherwise this process stays as the waiting parent and exits with the program's
    status. Raises ChrootError (this process may by then be inside new namespaces) when the root
    cannot be set up; a missing or non-executable program exits 127 or 126 with a message.
    """
    spec = make_spec(root, **options)
    command = _command(argv, env)
    launch = _Launch()
    try:
        status = _enter(spec, launch, command)
    except BaseException:
        launch.close()
        raise
    _restore_tty(launch)
    _exit(status)


def run_command(
    root: str | os.PathLike[str], argv: Sequence[str], *, env: Mapping[str, str] | None = None, **options: Any
) -> int:
    """Run ``argv`` inside ``root`` in a child process and return its exit status (128+N for
    signal N; 127/126 when it cannot be found/executed). Raises ChrootError on setup failures."""
    spec = make_spec(root, **options)
    status, _ = _spawn(spec, _command(argv, env))
    return status


def run_function(
    root: str | os.PathLike[str],
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Any:
    """Call ``fn(*args, **kwargs)`` inside ``root`` in a child process and return its result, or
    raise its exception (with the inner traceback as ``__cause__``). Result and exception must be
    picklable; modules the function needs must be imported before the call (the root may not have
    them)."""
    from . import remote

    spec = make_spec(root, **options)
    remote.preload(fn)
    status, result = _spawn(spec, None)
    if result is IN_ROOT:  # the child, inside the root
        remote.run_and_exit(_report_fd(), fn, tuple(args), dict(kwargs or {}))
    return remote.unpack(result, status)


def join_command(
    holder: int,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> NoReturn:
    """Replace this process with ``argv`` inside the namespaces and root of the running process
    ``holder`` (a program started inside a root, e.g. a session's holder): what ``nsenter -U -m -u
    -i -n -p`` does. A PID namespace of the holder's needs a fork: the program runs in it as a
    child, this process stays outside as its relay (relay.py). The caller must be allowed to join
    (its own user's namespaces, or root)."""
    command = _command(argv, env)
    where = f"the namespaces of process {holder}"
    order = (
        ("user", syscalls.CLONE_NEWUSER),
        ("mnt", syscalls.CLONE_NEWNS),
        ("uts", syscalls.CLONE_NEWUTS),
        ("ipc", syscalls.CLONE_NEWIPC),
        ("net", syscalls.CLONE_NEWNET),
        ("pid", syscalls.CLONE_NEWPID),
    )
    fds: list[tuple[str, int, int]] = []
    try:
        for name, flag in order:  # all opened first: joining the mount namespace hides /proc/<holder>
            if os.stat(f"/proc/{holder}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                fds.append((name, flag, os.open(f"/proc/{holder}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        joined_user = bool(fds) and fds[0][0] == "user"
        for _name, flag, fd in fds:
            syscalls.setns(fd, flag)
    except OSError as exc:
        raise ChrootError(
            f"cannot join {where}: {exc.strerror} (is it running, and yours?)", exc.errno
        ) from None
    finally:
        for _, _, fd in fds:
            _close(fd)
    joined_pid = bool(fds) and fds[-1][0] == "pid"
    if joined_pid:
        relay.fork_in()
    # Joining a mount namespace moves the root and cwd to that namespace's root (the pivoted root).
    try:
        os.chdir(cwd or "/")
    except OSError as exc:
        raise ChrootError(f"cannot change directory to {cwd} in {where}: {exc.strerror}", exc.errno) from None
    if joined_user:
        syscalls.set_no_new_privs()
    seccomp.deny_tty_injection()
    if joined_pid:
        relay.die_with_relay()
    for s in _PYTHON_IGNORED:
        _sig.signal(s, _sig.SIG_DFL)
    _execute(command, where)


# -- launching ------------------------------------------------------------------------------------------

_current: _Launch | None = None


def _report_fd() -> int:
    assert _current is not None
    return _current.report_w


class _Command:
    __slots__ = ("argv", "env")

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.argv = argv
        self.env = env


def _command(argv: Sequence[str], env: Mapping[str, str] | None) -> _Command:
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) for a in argv):
        raise ChrootError(f"bad command {argv!r}: give a non-empty list of strings")
    return _Command(list(argv), os.environ if env is None else env)


def _spawn(spec: sandbox.Spec, command: _Command | None) -> tuple[int, object]:
    """Fork the namespace process, wait for it; return (status, message from inside or IN_ROOT)."""
    global _current
    launch = _Launch()
    _current = launch
    _flush()
    try:
        pid = _fork(launch)
        if pid == 0:
            _close(launch.report_r)
            launch.report_r = -1
            try:
                status = _enter(spec, launch, command)
            except BaseException as exc:
                _report(launch, exc)
                os._exit(STATUS_SETUP_FAILED)
            if status is IN_ROOT:
                return 0, IN_ROOT
            os._exit(status)  # type: ignore[arg-type]
        _close(launch.report_w)
        launch.report_w = -1
        message = receive(launch.report_r)
        status = _wait(pid)
    finally:
        if os.getpid() == launch.top_pid:
            _restore_tty(launch)
            launch.close()
            _current = None
    if message is not None and message[0] == b"E":
        raise _error_from(message[1])
    return status, message


def _enter(spec: sandbox.Spec, launch: _Launch, command: _Command | None) -> Any:
    """In the namespace process: returns the exit status when it stayed as the waiting parent,
    IN_ROOT in the process that goes on inside the root (``command`` None), or never returns."""
    sandbox.enter_namespaces(spec)
    if spec.pid:
        pid = _fork(launch)
        if pid == 0:
            return _child(launch, lambda: _as_init(spec, launch, command))
        return _wait_for(pid, launch)
    created, root_fd = sandbox.build(spec)
    if not created:
        return _final(spec, launch, root_fd, command, own_mount_ns=False)
    pid = _fork(launch)
    if pid == 0:
        return _child(launch, lambda: _final(spec, launch, root_fd, command, own_mount_ns=True))
    try:
        return _wait_for(pid, launch)
    finally:
        _warn(sandbox.teardown(spec, created))


def _as_init(spec: sandbox.Spec, launch: _Launch, command: _Command | None) -> Any:
    """PID 1 of the new PID namespace: builds the tree (proc must be mounted from inside), runs the
    program as its child, reaps orphans, cleans up, and exits with the program's status."""
    created, root_fd = sandbox.build(spec)
    pid = _fork(launch)
    if pid == 0:
        return _child(launch, lambda: _final(spec, launch, root_fd, command, own_mount_ns=True))
    _close(launch.report_w)
    status = _wait(pid, reap_all=True)
    _warn(sandbox.teardown(spec, created))
    os._exit(status)


def _final(
    spec: sandbox.Spec, launch: _Launch, root_fd: int, command: _Command | None, own_mount_ns: bool
) -> Any:
    """Switch into the root and run the command (never returns) or return IN_ROOT."""
    sandbox.switch_root(spec, root_fd, own_mount_ns)
    os.close(root_fd)
    if command is None:
        _restore_signals(launch, for_exec=False)
        return IN_ROOT
    if launch.tty_fd is not None and os.getpid() != launch.top_pid:
        _take_terminal(launch.tty_fd)
    _restore_signals(launch, for_exec=True)
    _execute(command, spec.root)


def _execute(command: _Command, where: str) -> NoReturn:
    _flush()
    try:
        _execvpe(command.argv, command.env)
    except OSError as exc:
        missing = isinstance(exc, (FileNotFoundError, NotADirectoryError))
        _print(f"{PROGRAM}: cannot run {command.argv[0]!r} inside {where}: {exc.strerror}")
        os._exit(STATUS_NOT_FOUND if missing else STATUS_NOT_EXECUTABLE)


def _execvpe(argv: list[str], env: Mapping[str, str]) -> NoReturn:
    """os.execvpe without its lazy imports (inside the root, the standard library may be missing)."""
    name = argv[0]
    if "/" in name:
        os.execve(name, argv, env)
    first_error: OSError | None = None
    last_error: OSError = FileNotFoundError(2, "No such file or directory", name)
    for directory in (env.get("PATH") or os.defpath).split(":"):
        try:
            os.execve(os.path.join(directory or ".", name), argv, env)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last_error = exc
        except OSError as exc:  # e.g. EACCES: remembered, but a later directory may still have it
            first_error = first_error or exc
    raise first_error or last_error


def _child(launch: _Launch, body: Callable[[], Any]) -> Any:
    """Run a forked process's part; it leaves only through os._exit, or returns IN_ROOT."""
    try:
        result = body()
    except BaseException as exc:
        _report(launch, exc)
        os._exit(STATUS_SETUP_FAILED)
    if result is IN_ROOT:
        return IN_ROOT
    os._exit(result if isinstance(result, int) else STATUS_SETUP_FAILED)


def _wait_for(pid: int, launch: _Launch) -> int:
    """In a process that stays behind: wait for ``pid``; in the top process, read failures first."""
    _close(launch.report_w)
    launch.report_w = -1
    message = receive(launch.report_r) if launch.report_r >= 0 and os.getpid() == launch.top_pid else None
    status = _wait(pid)
    if message is not None and message[0] == b"E":
        raise _error_from(message[1])
    return status


# -- processes, signals and the terminal ------------------------------------------------------------


def _fork(launch: _Launch) -> int:
    """Fork with the forwarded signals blocked (they are, from _Launch on). The parent forwards them
    to the child from now on; the child keeps them blocked until it runs the program."""
    if not syscalls._functions:
        syscalls._bind_libc()  # before forking: every process below needs it
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
            _set_handler(s, forward)
    _sig.pthread_sigmask(_sig.SIG_SETMASK, launch.mask)
    return pid


def _set_handler(signum: int, handler: object) -> None:
    try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shim path
        _sig.signal(signum, handler)
    except ValueError:  # not the main thread: signals go to the main thread's handlers anyway
        pass


def _restore_signals(launch: _Launch, for_exec: bool) -> None:
    for s, handler in launch.handlers.items():
        if handler == _sig.SIG_IGN:
            _sig.signal(s, _sig.SIG_IGN)
        elif for_exec or handler is None:
            _sig.signal(s, _sig.SIG_DFL)
        else:
            _sig.signal(s, handler)  # e.g. Python's KeyboardInterrupt for SIGINT
    if for_exec:
        for s in _PYTHON_IGNORED:
            _sig.signal(s, _sig.SIG_DFL)
    _sig.pthread_sigmask(_sig.SIG_SETMASK, launch.mask)


def _wait(pid: int, reap_all: bool = False) -> int:
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
        import select

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


def _foreground_tty() -> int | None:
    """The terminal this process group holds in the foreground, if any (to hand it to the program)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return fd
        except OSError:
            continue
    return None


def _take_terminal(fd: int) -> None:
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


def _restore_tty(launch: _Launch) -> None:
    if launch.tty_fd is None:
        return
    old = _sig.pthread_sigmask(_sig.SIG_BLOCK, (_sig.SIGTTOU,))
    try:
        os.tcsetpgrp(launch.tty_fd, os.getpgrp())
    except OSError:
        pass
    finally:
        _sig.pthread_sigmask(_sig.SIG_SETMASK, old)


# -- reporting ------------------------------------------------------------------------------------------


def _report(launch: _Launch, exc: BaseException) -> None:
    """Send a failure up the report pipe, or print it when there is no one to read it."""
    if isinstance(exc, ChrootError):
        kind, errno, text = type(exc).__name__, exc.errno, str(exc)
    elif isinstance(exc, OSError):
        kind, errno, text = (
            "ChrootError",
            exc.errno,
            f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc),
        )
    else:
        try:  # the traceback module may be missing inside the root
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__)
        except ImportError:
            pass
        kind, errno, text = "ChrootError", None, f"unexpected failure: {exc!r}"
    payload = f"{kind}\0{'' if errno is None else errno}\0{text}".encode("utf-8", "surrogateescape")
    try:
        if launch.report_w < 0:
            raise OSError
        send(launch.report_w, b"E", payload)
    except OSError:
        _print(f"{PROGRAM}: {text}")


def _error_from(payload: bytes) -> ChrootError:
    kind, errno, text = payload.decode("utf-8", "surrogateescape").split("\0", 2)
    return KINDS.get(kind, ChrootError)(text, int(errno) if errno else None)


def _warn(problems: list[str]) -> None:
    for problem in problems:
        _print(f"{PROGRAM}: warning: {problem}")


def _print(line: str) -> None:
    try:  # noqa: SIM105 - see above
        os.write(2, (line + "\n").encode("utf-8", "surrogateescape"))
    except OSError:
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _close(fd: int) -> None:
    if fd >= 0:
        try:  # noqa: SIM105 - see above
            os.close(fd)
        except OSError:
            pass


def _exit(status: int) -> NoReturn:
    _flush()
    os._exit(status)
