"""Joining a running root: ``join_command``, what ``nsenter -U -m -u -i -n -p`` does."""

from __future__ import annotations

import os

from . import process, program, relay, seccomp, syscalls
from .errors import ChrootError

try:  # the C half of the signal module: ``signal`` itself imports enum (~4 ms)
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import NoReturn


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
    command = program.make_command(argv, env)
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
            process.close_fd(fd)
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
    for s in process.PYTHON_IGNORED:
        _sig.signal(s, _sig.SIG_DFL)
    program.execute(command, where)
