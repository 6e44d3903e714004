"""Entering a root, step by step, in the order the kernel needs. The process layout lives in runner.py.

1. :func:`enter_namespaces` - unshare user (when not root), mount, UTS, IPC, and optionally PID and
   network namespaces; write the uid/gid maps.
2. :func:`build` - make every mount private-from-the-host (slave), bind the root onto itself (or
   mount the ``/`` mount there), make each mount at a destination resolved inside the root (runs
   of independent overlays on several threads, when the spec allows it), set the hostname, bring
   loopback up.
3. :func:`switch_root` - pivot_root into it (chroot where pivot_root is refused), drop the host's
   tree, change directory, become the requested user, set no_new_privs.
4. :func:`teardown` - after the program: detach the tree and remove the mount points step 2 made.
"""

from __future__ import annotations

import fcntl
import os
import sys

from . import explain, idmap, mounting, paths, seccomp, syscalls
from .errors import ChrootError
from .spec import Spec

# Spec is named here too: it is the argument of every step.
__all__ = ["Spec", "build", "enter_namespaces", "switch_root", "teardown"]


# -- 1. namespaces ----------------------------------------------------------------------------------


def enter_namespaces(spec: Spec, subids: bool = False) -> None:
    """``subids``: rootless, map the user's subordinate ids too when it has them (idmap.py)."""
    flags = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
    if spec.pid:
        flags |= syscalls.CLONE_NEWPID
    if spec.net:
        flags |= syscalls.CLONE_NEWNET
    ids = None
    if spec.userns:
        uid = os.geteuid() if spec.uid is None else spec.uid
        ids = idmap.plan(uid, os.getegid() if spec.gid is None else spec.gid, subids)
    if unshare(flags, ids) and not spec.userns:  # root without CAP_SYS_ADMIN: root of a user namespace
        spec.userns = True
        spec.uid = 0 if spec.uid is None else spec.uid
        spec.gid = 0 if spec.gid is None else spec.gid


def unshare(flags: int, ids: idmap.IdMap | None) -> bool:
    """Unshare the namespaces of ``flags``, with a user namespace mapping ``ids`` when given
    (rootless); return whether a user namespace was made. Root without CAP_SYS_ADMIN (a locked-down
    container) gets one that maps only root, which may still grant the capabilities."""
    prefix = ""
    if ids is None:
        try:
            syscalls.unshare(flags)
            return False
        except PermissionError:
            prefix = "cannot create a mount namespace: this root process lacks CAP_SYS_ADMIN, and "
            ids = idmap.plan(0, 0, subids=False)
    mapper = idmap.Mapper(ids)
    try:
        syscalls.unshare(flags | syscalls.CLONE_NEWUSER)
    except OSError as exc:
        mapper.cancel()
        raise explain.namespace_error(exc, prefix + "cannot create a user namespace") from None
    try:
        mapper.map()
    except OSError as exc:
        raise explain.namespace_error(exc, prefix + "cannot map the user into a new user namespace") from None
    return True


# -- 2. the tree --------------------------------------------------------------------------------------


def build(spec: Spec) -> tuple[list[paths.Created], int]:
    """Make the mounts; return the mount points created on the way and a descriptor of the root."""
    try:
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
    except OSError as exc:
        raise explain.mount_refused(exc) from None
    mounts = spec.mounts
    created: list[paths.Created] = []
    first = mounts[0] if mounts and mounts[0].dest == "/" else None
    try:
        if first is not None:
            mounting.mount(spec, first, spec.root)
            mounts = mounts[1:]
        else:
            syscalls.mount(spec.root, spec.root, None, syscalls.MS_BIND | syscalls.MS_REC)
    except OSError as exc:
        raise explain.mount_refused(exc) from None
    root_fd = os.open(spec.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        i = 0
        while i < len(mounts):
            run = mounting.independent_overlays(mounts, i) if spec.overlays_together else 1
            if run >= mounting.TOGETHER_FROM:
                mounting.mount_together(spec, root_fd, mounts[i : i + run], created)
            else:
                run = 1
                mounting.mount_inside(spec, root_fd, mounts[i], created)
            i += run
        if first is not None and first.readonly:
            # Last, so that mount points could still be made in it; submounts keep their own mode.
            mounting.make_readonly(root_fd, "/", recursive=False)
        if spec.hostname:
            name, _, domain = spec.hostname.partition(".")
            syscalls.sethostname(name)
            if domain:
                syscalls.setdomainname(domain)
        if spec.net:
            _loopback_up()
    except BaseException:
        os.close(root_fd)
        teardown(spec, created)  # the caller never sees them: undo here
        raise
    return created, root_fd


def _loopback_up() -> None:
    # socket (several ms): only for a private network's loopback
    import socket

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = fcntl.ioctl(sock.fileno(), siocgifflags, b"lo".ljust(40, b"\0"))
        flags = int.from_bytes(request[16:18], sys.byteorder) | iff_up
        fcntl.ioctl(
            sock.fileno(), siocsifflags, request[:16] + flags.to_bytes(2, sys.byteorder) + request[18:]
        )


# -- 3. switching root ------------------------------------------------------------------------------


def switch_root(spec: Spec, root_fd: int, own_mount_ns: bool) -> None:
    """Make the built tree this process's ``/``. With ``own_mount_ns`` the switch happens in a fresh
    mount namespace, so that the parent keeps the full view it cleans up with."""
    keep_cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if spec.skip_chdir else -1
    os.fchdir(root_fd)  # before unsharing: the cwd follows into the new namespace, descriptors do not
    if own_mount_ns:
        syscalls.unshare(syscalls.CLONE_NEWNS)
    pivot_here()
    if keep_cwd >= 0:
        os.fchdir(keep_cwd)
        os.close(keep_cwd)
    elif spec.cwd:
        try:
            os.chdir(spec.cwd)
        except OSError as exc:
            raise ChrootError(
                f"cannot change directory to {spec.cwd} inside {spec.root}: {exc.strerror}", exc.errno
            ) from None
    seccomp.deny_tty_injection()  # before the ids change: as root it needs CAP_SYS_ADMIN
    if not spec.userns and (spec.uid or spec.gid):
        uid = 0 if spec.uid is None else spec.uid
        gid = 0 if spec.gid is None else spec.gid
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    if spec.userns:
        syscalls.set_no_new_privs()


def pivot_here() -> None:
    """Make the current directory ``/`` (cwd ``/``)."""
    try:
        syscalls.pivot_root(".", ".")  # the old root ends up stacked on "." ...
        syscalls.umount2(".", syscalls.MNT_DETACH)  # ... and is dropped here
    except OSError:
        os.chroot(".")  # e.g. on an initramfs, where pivot_root is refused
    os.chdir("/")


# -- 4. teardown --------------------------------------------------------------------------------------


def teardown(spec: Spec, created: list[paths.Created]) -> list[str]:
    """Detach the tree (in this process's namespace only) and remove the mount points we made."""
    if not created:
        return []
    try:
        syscalls.umount2(spec.root, syscalls.MNT_DETACH)
    except OSError as exc:
        return [f"could not detach {spec.root} to remove the mount points it created: {exc.strerror}"]
    return paths.remove_created(created)
