"""File work on an env's layers as root of a user namespace that maps the user's subordinate ids.

Rootless with subordinate ids, root inside an env gives files to system users (``_apt``'s
``partial`` directories, mode 0700, a package's files): on the host the user can then neither
read nor remove them. In a user namespace mapping the same ranges the user is root, and the
kernel lets that root read, chown and remove any file whose owner is mapped there, so copies keep
their owners (snapshots, restore) and removals leave nothing (reset, destroy).
"""

from __future__ import annotations

import os

from ...errors import VenvrootError
from ...ns import frames, idmap, syscalls
from ..mapping import UserSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def needed() -> bool:
    """Whether the layers may hold files of subordinate ids: rootless with a range."""
    return os.geteuid() != 0 and idmap.plan(0, 0).full


def inside_ids(user: str) -> tuple[int, int]:
    """The ids inside that the caller backs for ``--user`` ``user`` (its own unless root or an
    ``ID:NAME``; ``system:NAME`` gets its id from the root's passwd later, and so the caller's)."""
    spec = UserSpec.parse(user)
    if not spec.is_caller and spec.name == "root":
        return 0, 0
    if not spec.is_caller and spec.uid is not None:
        return spec.uid, spec.uid
    return os.getuid(), os.getgid()


def run(work: Callable[[], object], inside: tuple[int, int] | None = None, isolated: bool = False) -> None:
    """Run ``work`` in a child that is root of a user namespace with the user's ranges mapped: as
    an env with the caller backing ``inside`` maps them, or (None) every id the user has (or here,
    when there is nothing to map). With ``isolated`` (as root as well), in a mount and a PID
    namespace of its own: what ``work`` mounts goes with it, and the first process it starts is
    the PID namespace's init, whose end ends every process started there. The child dies with the
    caller. Raise what went wrong as a VenvrootError."""
    ids = idmap.cover() if inside is None else idmap.plan(*inside)
    mapped = os.geteuid() != 0 and ids.full
    if not mapped and not isolated:
        work()
        return
    read_fd, write_fd = os.pipe()
    caller = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            syscalls.set_parent_death_signal(9)
            if os.getppid() != caller:
                os._exit(code)
            try:
                flags = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWPID if isolated else 0
                if mapped:
                    mapper = idmap.Mapper(ids)
                    try:
                        syscalls.unshare(syscalls.CLONE_NEWUSER | flags)
                    except OSError:
                        mapper.cancel()
                        raise
                    mapper.map()
                    os.setresgid(0, 0, 0)  # root of the namespace, whoever backs it: what it makes is 0's
                    os.setresuid(0, 0, 0)
                    # filetree: only for a mapped child's copies, not on a create's path
                    from ...util import filetree

                    filetree._AM_ROOT = True  # root here: copies keep every (mapped) owner
                elif flags:
                    syscalls.unshare(flags)
                if isolated:  # nothing mounted here propagates back to the host
                    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
                work()
                code = 0
            except BaseException as exc:
                detail = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) else str(exc)
                tag = "=" if isinstance(exc, VenvrootError) else ""  # said as is
                os.write(write_fd, (tag + detail).encode(errors="replace")[:4000])
        finally:
            os._exit(code)
    os.close(write_fd)
    report = frames.read_to_end(read_fd)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != 0:
        said = report.decode(errors="replace") or f"exit status {status}"
        if said.startswith("="):
            raise VenvrootError(said[1:])
        raise VenvrootError(f"as root of the user's subordinate ids: {said}")
