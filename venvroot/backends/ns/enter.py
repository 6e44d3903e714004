"""Into a running env: join the holder's namespaces, take the ids, and become the program.

The one way in from Python (run.py, the brain, management); shims' sh and compiled fast paths do
the same with the starter's ``--join``.
"""

from __future__ import annotations

import os
import sys

from ...errors import VenvrootError
from ...ns import seccomp, syscalls
from ...ns.program import execvpe  # imported here: inside the root venvroot may not be importable
from ...shims.marker import compiled_shim, shim_head
from ..activations import read_head

try:  # the C half of the signal module (``signal`` imports enum); the holder needs it inside
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def join(
    holder: int, argv: list[str], env: Mapping[str, str], cwd: str, ids: tuple[int, int] | None = None
) -> None:
    """Replace this process with ``argv`` inside the holder's namespaces, in ``cwd`` (inside).
    ``ids``: switch to this uid/gid after joining (as root with --user; rootless the user
    namespace maps the ids already)."""
    if ids is None:
        # ns.join (with ns.relay): only to join a running holder, not on a cold start's path
        from ...ns import join_command

        join_command(holder, argv, env=env, cwd=cwd)
    from ...ns import relay  # not on a cold start's path either

    fds = []
    try:
        order = [("mnt", syscalls.CLONE_NEWNS), ("uts", syscalls.CLONE_NEWUTS)]
        order.append(("ipc", syscalls.CLONE_NEWIPC))
        own_pid = relay.other_pid_namespace(holder)
        if own_pid:  # --pid (pidns.py)
            order.append(("pid", syscalls.CLONE_NEWPID))
        for name, flag in order:  # all opened first: joining the mount namespace hides /proc/<holder>
            fds.append((flag, os.open(f"/proc/{holder}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        for flag, fd in fds:
            syscalls.setns(fd, flag)
        seccomp.deny_tty_injection()
    except OSError as exc:
        raise VenvrootError(f"cannot join the namespaces of process {holder}: {exc.strerror}") from None
    finally:
        for _, fd in fds:
            os.close(fd)
    if own_pid:
        relay.fork_in()
        take_ids(ids)
        relay.die_with_relay()  # after the ids: changing them clears it
        ids = None
    become(argv, env, cwd, ids)


def become(argv: list[str], env: Mapping[str, str], cwd: str, ids: tuple[int, int] | None) -> None:
    """In the env's namespaces already: go to ``cwd``, take ``ids`` (uid, gid) if given, and
    replace this process with ``argv``."""
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise VenvrootError(
            f"cannot change directory to {cwd} inside the environment: {exc.strerror}"
        ) from None
    take_ids(ids)
    for s in (_sig.SIGPIPE, getattr(_sig, "SIGXFSZ", _sig.SIGPIPE)):
        _sig.signal(s, _sig.SIG_DFL)
    flush_std()
    _execvpe(argv, env)


def take_ids(ids: tuple[int, int] | None) -> None:
    """Switch to ``ids`` (uid, gid), if given, with no supplementary group but that gid."""
    if ids is None:
        return
    uid, gid = ids
    try:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise VenvrootError(
            f"cannot run as uid {uid} gid {gid} inside: {exc.strerror} (root without CAP_SYS_ADMIN "
            "can map only itself into the environment; give it CAP_SYS_ADMIN, or run as that user)"
        ) from None


def past_shim(argv: list[str], env: Mapping[str, str], shims: str, root: str = "") -> list[str]:
    """``argv`` with the program to run. Found first in the env's bin (``shims``), a program name is
    a shim there that only runs the name from the rest of PATH, the root's own
    (fastpath.inside_fragment): go there directly, as the sh fast path does, with one exec of sh
    fewer. ``root``: where the env's root is seen from here ("" from inside)."""
    name = argv[0]
    path = (env.get("PATH") or "").split(":")
    if "/" in name or path[0] != shims:
        return argv
    if not compiled_shim(f"{root}{shims}/{name}"):
        try:
            head = read_head(f"{root}{shims}/{name}", 128)
        except OSError:
            return argv
        if not shim_head(head):
            return argv  # the program itself (the env's interpreter, a script pip wrote...)
    for directory in path[1:]:
        candidate = f"{root}{directory}/{name}"
        if directory and directory != shims and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [f"{directory}/{name}", *argv[1:]]
    return argv  # nowhere: the shim says so


def _execvpe(argv: list[str], env: Mapping[str, str]) -> None:
    """Become ``argv`` (looked up in ``env``'s PATH), or say why not and exit as a shell would."""
    try:
        execvpe(argv, env)
    except OSError as error:
        missing = isinstance(error, (FileNotFoundError, NotADirectoryError))
        os.write(2, f"venvroot: cannot run {argv[0]!r} inside the environment: {error.strerror}\n".encode())
        os._exit(127 if missing else 126)


def run_inside(
    holder: int, argv: list[str], cwd: str, env: Mapping[str, str], ids: tuple[int, int] | None,
    stdin: int | None = None, stdout: int | None = None, stderr: int | None = None,
) -> int:  # fmt: skip
    """Run ``argv`` in the holder's namespaces as a child of this process; return its status."""
    return in_child(lambda: join(holder, argv, env, cwd, ids), stdin, stdout, stderr)


def in_child(
    become_program: Callable[[], None], stdin: int | None = None, stdout: int | None = None,
    stderr: int | None = None,
) -> int:  # fmt: skip
    """Fork a child with these descriptors as 0, 1 and 2 that becomes a program through
    ``become_program``; return the program's status as a shell shows it."""
    flush_std()
    pid = os.fork()
    if pid == 0:
        try:
            for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
                if fd is not None:
                    os.dup2(fd, target)
            become_program()
        except BaseException as exc:
            os.write(2, f"venvroot: {exc}\n".encode())
        os._exit(127)
    _, status = os.waitpid(pid, 0)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
