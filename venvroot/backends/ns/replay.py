"""The Python starter's half of a session's start: it carries out the start's steps (startfile.py).

The compiled starter (starter.c) replays the start file when nothing has changed since it was
written; every other start (none compiled, a stale file, a PID namespace of its own, a failure
there) makes the same list afresh and carries it out here, in the same order: one list, two
executors, as bubblewrap runs its setup operations. No other code mounts a session's tree.

1. :func:`enter` - unshare mount, UTS, IPC (and PID) namespaces; rootless, a user namespace with
   the ids the ``userns`` or ``idmap`` step gives.
2. :func:`build` - make every mount a slave of the host's, mount the root, each ``mount`` (a
   ``together`` run on several threads), set the host and domain names, pivot_root into it (chroot
   where pivot_root is refused), write the ``file`` steps and the liveness marker in the hidden
   state directory, and set what every program inside runs with (the terminal filter; rootless,
   no_new_privs).

3. :func:`trial` - each ``mount`` step once, in a throwaway namespace: the host view's probe of the
   overlays it plans, before it writes the plan.

Only the freshness checks and the brain are the compiled starter's alone: a fresh list needs no
check, and the Python start leaves its own holder (coldstart.py). Standard library only.
"""

from __future__ import annotations

import errno
import os

from ...ns import explain, frames, idmap, mounting, paths, sandbox, seccomp, syscalls
from ...ns.errors import ChrootMountError
from .record import marker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    Steps = Sequence[tuple[str, ...]]  # startfile.py's list (not imported: the host view's probe uses this)


def enter(steps: Steps) -> bool:
    """Enter the namespaces the steps name; return whether a user namespace was made (rootless,
    or as root without CAP_SYS_ADMIN: see sandbox.unshare)."""
    flags = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
    found = None
    for name, *args in steps:
        if name == "pid":
            flags |= syscalls.CLONE_NEWPID
        elif name == "userns":
            found = idmap.IdMap([(int(args[0]), os.geteuid(), 1)], [(int(args[1]), os.getegid(), 1)], None)
        elif name == "idmap":
            found = idmap.IdMap(idmap.parse(args[2]), idmap.parse(args[3]), (args[0], args[1]))
    return sandbox.unshare(flags, found)


def build(steps: Steps, token: str | None, userns: bool) -> None:
    """Make the tree, move into it (cwd ``/``) and leave the marker of ``token`` (None: nothing
    will join these namespaces, so no marker); ``userns``: what :func:`enter` returned."""
    try:
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
    except OSError as exc:
        raise explain.mount_refused(exc) from None
    root, root_fd, hidden = "", -1, ""
    try:
        i = 0
        while i < len(steps):
            name, *args = steps[i]
            if name == "hidden":
                hidden = args[0]
            elif name in ("root-overlay", "root-bind"):
                root = args[0]
                try:
                    if name == "root-overlay":
                        options = mounting.overlay_options(args[1], userns)
                        syscalls.mount("overlay", root, "overlay", 0, options)
                    else:
                        syscalls.mount(root, root, None, syscalls.MS_BIND | syscalls.MS_REC)
                except OSError as exc:
                    raise explain.mount_refused(exc) from None
                root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            elif name == "mount":
                _mount(root_fd, root, args, userns)
            elif name == "together":
                batch = [tuple(s[1:]) for s in steps[i + 1 : i + 1 + int(args[0])]]
                mounting.run_together(batch, _mounter(root_fd, root, userns))
                i += len(batch)
            elif name == "hostname":
                syscalls.sethostname(args[0])
            elif name == "domainname":
                syscalls.setdomainname(args[0])
            i += 1
        os.fchdir(root_fd)
        sandbox.pivot_here()
    finally:
        if root_fd >= 0:
            os.close(root_fd)
    files = [(args[0], args[1].encode()) for name, *args in steps if name == "file"]
    for name, data in [*files, *([(marker(token), b"")] if token else [])]:
        write_file(f"{hidden}/{name}", data)
    seccomp.deny_tty_injection()  # before any ids change: as root it needs CAP_SYS_ADMIN
    if userns:  # as the compiled --join: nothing gains privileges through exec beyond the user's
        syscalls.set_no_new_privs()


def trial(steps: Steps, root: str) -> set[str]:
    """Carry out each ``mount`` step once, in order, over ``root`` in namespaces of a child that
    ends after; return the destinations the kernel refused."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:  # a child that cannot even unshare reports no refusal: the real start will say why
            os.close(read_fd)
            userns = enter(steps)
            syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
            root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            refused = []
            for name, *args in steps:
                if name == "mount":
                    try:
                        _mount(root_fd, root, args, userns)
                    except ChrootMountError:
                        refused.append(args[2])
            os.write(write_fd, "\0".join(refused).encode("utf-8", "surrogateescape"))
        finally:
            os._exit(0)
    os.close(write_fd)
    data = frames.read_to_end(read_fd).decode("utf-8", "surrogateescape")
    os.waitpid(pid, 0)
    return set(data.split("\0")) if data else set()


def _mount(root_fd: int, root: str, args: Sequence[str], userns: bool) -> None:
    """``mount KIND SOURCE DEST OPTIONS FLAGS``; a missing mount point is made (and kept: no
    process outside is left to remove it)."""
    kind, source, dest, options, flags = args
    optional = "?" in flags
    created: list[paths.Created] = []
    try:
        fd = paths.resolve_or_create(root_fd, dest, "file" if "f" in flags else "dir", created)
    except OSError as exc:
        if optional:
            return
        raise ChrootMountError(f"cannot mount on {dest} inside {root}: {exc.strerror}", exc.errno) from None
    finally:
        for point in created:
            os.close(point.parent_fd)
    target = f"/proc/self/fd/{fd}"
    try:
        if kind == "bind":
            if os.path.isdir(target) == ("f" in flags):
                what = "a file on a directory" if "f" in flags else "a directory on a file"
                raise ChrootMountError(f"cannot bind {source} on {dest} inside {root}: that mounts {what}")
            syscalls.mount(source, target, None, syscalls.MS_BIND | (syscalls.MS_REC if "r" in flags else 0))
        elif kind == "overlay":
            syscalls.mount("overlay", target, "overlay", 0, mounting.overlay_options(options, userns))
        elif kind == "tmpfs":
            syscalls.mount("tmpfs", target, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV, options or None)
        elif kind == "proc":  # the PID namespace's own (``pid``); a partly hidden host /proc refuses one
            try:
                flags_ = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
                syscalls.mount("proc", target, "proc", flags_)
            except PermissionError:
                syscalls.mount("/proc", target, None, syscalls.MS_BIND | syscalls.MS_REC)
        else:
            raise ChrootMountError(f"cannot mount on {dest}: unknown kind {kind!r} in the start's steps")
    except OSError as exc:
        if optional and exc.errno in (errno.EPERM, errno.EACCES, errno.ENOENT):
            return
        what = source if kind == "bind" else kind
        message = f"cannot mount {what} on {dest} inside {root}: {exc.strerror}"
        raise ChrootMountError(message, exc.errno) from None
    finally:
        os.close(fd)
    if "o" in flags:
        mounting.make_readonly(root_fd, dest, recursive="r" in flags)


def _mounter(root_fd: int, root: str, userns: bool) -> Callable[[tuple[str, ...]], None]:
    """:func:`_mount` in this root, for a run on several threads."""
    return lambda args: _mount(root_fd, root, args, userns)


def write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
