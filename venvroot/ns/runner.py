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

from . import process, program, sandbox
from .errors import ChrootError
from .frames import receive
from .mounts import Mount, check_sources, default_mounts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, NoReturn

DEFAULT = object()  # the default mounts (pychroot's): /dev, /proc, /sys, /dev/shm, /etc/resolv.conf
IN_ROOT = object()  # returned by the launch functions in the process that continues inside the root


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
    command = program.make_command(argv, env)
    launch = process.Launch()
    try:
        status = _enter(spec, launch, command)
    except BaseException:
        launch.close()
        raise
    process.restore_tty(launch)
    _exit(status)


def run_command(
    root: str | os.PathLike[str], argv: Sequence[str], *, env: Mapping[str, str] | None = None, **options: Any
) -> int:
    """Run ``argv`` inside ``root`` in a child process and return its exit status (128+N for
    signal N; 127/126 when it cannot be found/executed). Raises ChrootError on setup failures."""
    spec = make_spec(root, **options)
    status, _ = spawn(spec, program.make_command(argv, env))
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
    from . import remote  # pickle and traceback: kept off exec_command, the shim path

    spec = make_spec(root, **options)
    remote.preload(fn)
    status, result = spawn(spec, None)
    if result is IN_ROOT:  # the child, inside the root
        remote.run_and_exit(report_fd(), fn, tuple(args), dict(kwargs or {}))
    return remote.unpack(result, status)


# -- launching ------------------------------------------------------------------------------------------

_current: process.Launch | None = None


def report_fd() -> int:
    assert _current is not None
    return _current.report_w


def spawn(spec: sandbox.Spec, command: program.Command | None) -> tuple[int, object]:
    """Fork the namespace process, wait for it; return (status, message from inside or IN_ROOT)."""
    global _current
    launch = process.Launch()
    _current = launch
    process.flush()
    try:
        pid = process.fork(launch)
        if pid == 0:
            process.close_fd(launch.report_r)
            launch.report_r = -1
            try:
                status = _enter(spec, launch, command)
            except BaseException as exc:
                program.report(launch, exc)
                os._exit(process.STATUS_SETUP_FAILED)
            if status is IN_ROOT:
                return 0, IN_ROOT
            os._exit(status)
        process.close_fd(launch.report_w)
        launch.report_w = -1
        message = receive(launch.report_r)
        status = process.wait(pid)
    finally:
        if os.getpid() == launch.top_pid:
            process.restore_tty(launch)
            launch.close()
            _current = None
    if message is not None and message[0] == b"E":
        raise program.error_from(message[1])
    return status, message


def _enter(spec: sandbox.Spec, launch: process.Launch, command: program.Command | None) -> Any:
    """In the namespace process: returns the exit status when it stayed as the waiting parent,
    IN_ROOT in the process that goes on inside the root (``command`` None), or never returns."""
    sandbox.enter_namespaces(spec)
    if spec.pid:
        pid = process.fork(launch)
        if pid == 0:
            return _child(launch, lambda: _as_init(spec, launch, command))
        return _wait_for(pid, launch)
    created, root_fd = sandbox.build(spec)
    if not created:
        return _final(spec, launch, root_fd, command, own_mount_ns=False)
    pid = process.fork(launch)
    if pid == 0:
        return _child(launch, lambda: _final(spec, launch, root_fd, command, own_mount_ns=True))
    try:
        return _wait_for(pid, launch)
    finally:
        program.warn(sandbox.teardown(spec, created))


def _as_init(spec: sandbox.Spec, launch: process.Launch, command: program.Command | None) -> Any:
    """PID 1 of the new PID namespace: builds the tree (proc must be mounted from inside), runs the
    program as its child, reaps orphans, cleans up, and exits with the program's status."""
    created, root_fd = sandbox.build(spec)
    pid = process.fork(launch)
    if pid == 0:
        return _child(launch, lambda: _final(spec, launch, root_fd, command, own_mount_ns=True))
    process.close_fd(launch.report_w)
    status = process.wait(pid, reap_all=True)
    program.warn(sandbox.teardown(spec, created))
    os._exit(status)


def _final(
    spec: sandbox.Spec,
    launch: process.Launch,
    root_fd: int,
    command: program.Command | None,
    own_mount_ns: bool,
) -> Any:
    """Switch into the root and run the command (never returns) or return IN_ROOT."""
    sandbox.switch_root(spec, root_fd, own_mount_ns)
    os.close(root_fd)
    if command is None:
        process.restore_signals(launch, for_exec=False)
        return IN_ROOT
    if launch.tty_fd is not None and os.getpid() != launch.top_pid:
        process.take_terminal(launch.tty_fd)
    process.restore_signals(launch, for_exec=True)
    program.execute(command, spec.root)


def _child(launch: process.Launch, body: Callable[[], Any]) -> Any:
    """Run a forked process's part; it leaves only through os._exit, or returns IN_ROOT."""
    try:
        result = body()
    except BaseException as exc:
        program.report(launch, exc)
        os._exit(process.STATUS_SETUP_FAILED)
    if result is IN_ROOT:
        return IN_ROOT
    os._exit(result if isinstance(result, int) else process.STATUS_SETUP_FAILED)


def _wait_for(pid: int, launch: process.Launch) -> int:
    """In a process that stays behind: wait for ``pid``; in the top process, read failures first."""
    process.close_fd(launch.report_w)
    launch.report_w = -1
    message = receive(launch.report_r) if launch.report_r >= 0 and os.getpid() == launch.top_pid else None
    status = process.wait(pid)
    if message is not None and message[0] == b"E":
        raise program.error_from(message[1])
    return status


def _exit(status: int) -> NoReturn:
    process.flush()
    os._exit(status)
