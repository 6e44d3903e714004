"""Making one mount at its destination inside the root, or a run of independent overlays at once."""

from __future__ import annotations

import _thread
import errno as _errno
import os

from . import paths, syscalls
from .errors import ChrootError, ChrootMountError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    from .mounts import Mount
    from .spec import Spec

    T = TypeVar("T")


TOGETHER_FROM = 4  # fewer overlays than this are not worth a thread


def independent_overlays(mounts: Sequence[Mount], start: int) -> int:
    """How many overlays from ``start`` on have destinations none of which holds another."""
    dests: list[str] = []
    for m in mounts[start:]:
        if m.kind != "overlay" or any(_nested(m.dest, d) for d in dests):
            break
        dests.append(m.dest)
    return len(dests)


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def mount_together(spec: Spec, root_fd: int, batch: Sequence[Mount], created: list[paths.Created]) -> None:
    """Mount independent overlays on several threads at once (see :func:`run_together`)."""
    run_together(batch, lambda m: mount_inside(spec, root_fd, m, created))


def run_together(batch: Sequence[T], one: Callable[[T], object]) -> None:
    """Run ``one`` on each of ``batch`` (independent mounts) on several threads at once. Most of an
    overlay mount is the kernel setting up its filesystem (looking up the layers, preparing the
    work directory), which runs beside another one on another CPU: the libc calls let go of
    Python's lock. The first failure is raised once every thread has stopped."""
    todo = list(reversed(batch))
    failed: list[BaseException] = []

    def drain() -> None:
        while todo and not failed:
            try:
                item = todo.pop()
            except IndexError:  # another thread took the last one
                return
            try:
                one(item)
            except BaseException as exc:
                failed.append(exc)

    def helper(done: _thread.LockType) -> None:
        try:
            drain()
        finally:
            done.release()

    helpers = []
    threads_before = _thread_count()
    for _ in range(min(3, len(batch) - 1)):  # more threads than CPUs still help: a mount also waits
        done = _thread.allocate_lock()
        done.acquire()
        try:
            _thread.start_new_thread(helper, (done,))
        except RuntimeError:  # no threads here (a limit, a sandbox): this thread does it all
            break
        helpers.append(done)
    try:
        drain()
    finally:
        for done in helpers:
            done.acquire()  # that helper has stopped running Python code
        # ... and, moments later, exists no more: a process forks next, and a fork with other
        # threads alive is unsafe (Python 3.12 warns of it). Bounded: the caller's own threads
        # may come and go meanwhile.
        for _ in range(10000):
            if _thread_count() <= threads_before:
                break
            os.sched_yield()
    if failed:
        raise failed[0]


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # no /proc: the released locks are all there is to go by
        return 0


def mount_inside(spec: Spec, root_fd: int, m: Mount, created: list[paths.Created]) -> None:
    is_file = m.kind == "bind" and not os.path.isdir(m.source or "")
    kind = ("file" if is_file else "dir") if m.create else None
    try:
        fd = paths.resolve_or_create(root_fd, m.dest, kind, created)
    except OSError as exc:
        if m.optional:
            return
        hint = "" if m.create else " (let the runner create it, or create it yourself)"
        raise ChrootMountError(
            f"cannot mount on {m.dest} inside {spec.root}: {exc.strerror}{hint}", exc.errno
        ) from None
    try:
        if m.kind == "bind":
            dest_is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
            if dest_is_dir == is_file:
                what = "a file on a directory" if is_file else "a directory on a file"
                raise ChrootMountError(
                    f"cannot bind {m.source} on {m.dest} inside {spec.root}: that mounts {what}"
                )
        mount(spec, m, f"/proc/self/fd/{fd}")
        if m.kind == "dev":
            _fill_dev(root_fd, m.dest)
    except OSError as exc:
        if exc.errno in (_errno.EPERM, _errno.EACCES) and m.optional:
            return
        source = m.source if m.kind == "bind" else m.kind
        raise ChrootMountError(
            f"cannot mount {source} on {m.dest} inside {spec.root}: {exc.strerror}", exc.errno
        ) from None
    finally:
        os.close(fd)
    if m.readonly and m.kind not in ("overlay",):
        make_readonly(root_fd, m.dest, recursive=m.recursive or m.kind == "dev")


def mount(spec: Spec, m: Mount, target: str) -> None:
    """Mount ``m`` on ``target`` (a path in this process's view)."""
    nosuid_nodev = syscalls.MS_NOSUID | syscalls.MS_NODEV
    if m.kind == "bind":
        syscalls.mount(m.source, target, None, syscalls.MS_BIND | (syscalls.MS_REC if m.recursive else 0))
    elif m.kind == "tmpfs":
        syscalls.mount("tmpfs", target, "tmpfs", nosuid_nodev, m.options or None)
    elif m.kind == "proc":
        # A proc of our own PID namespace needs to be in one; otherwise the host's is the same view.
        if spec.pid:
            try:
                syscalls.mount("proc", target, "proc", nosuid_nodev | syscalls.MS_NOEXEC)
                return
            except PermissionError:  # a partly hidden host /proc (containers) forbids a fresh one
                pass
        syscalls.mount("/proc", target, None, syscalls.MS_BIND | syscalls.MS_REC)
    elif m.kind == "sysfs":
        # Rootless, a sysfs needs a network namespace of our own.
        if spec.net or not spec.userns:
            try:
                syscalls.mount("sysfs", target, "sysfs", nosuid_nodev | syscalls.MS_NOEXEC)
                return
            except PermissionError:
                pass
        syscalls.mount("/sys", target, None, syscalls.MS_BIND | syscalls.MS_REC)
    elif m.kind == "overlay":
        syscalls.mount("overlay", target, "overlay", 0, overlay_options(m.options, spec.userns))
    elif m.kind == "dev":
        syscalls.mount("tmpfs", target, "tmpfs", syscalls.MS_NOSUID, "mode=0755")  # see _fill_dev
    else:  # pragma: no cover - Mount validates kinds
        raise ChrootError(f"unknown mount kind {m.kind}")


def overlay_options(options: str, userns: bool) -> str:
    """An overlay's mount options as mounted here: in a user namespace with ``userxattr``, since
    trusted.* xattrs are out of reach there."""
    if userns and "userxattr" not in options.split(","):
        options += ",userxattr"
    return options


_DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)


def _fill_dev(root_fd: int, dest: str) -> None:
    """A minimal /dev, as bubblewrap's --dev makes: the harmless host nodes, a private devpts, shm."""
    # Looked up again: a descriptor taken before the mount still names the directory beneath it.
    dev_fd = paths.open_in_root(root_fd, dest)
    try:
        here = f"/proc/self/fd/{dev_fd}"
        for name in _DEV_NODES:
            if os.path.exists("/dev/" + name):
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666, dir_fd=dev_fd))
                syscalls.mount("/dev/" + name, f"{here}/{name}", None, syscalls.MS_BIND)
        for name, link in _DEV_LINKS:
            os.symlink(link, name, dir_fd=dev_fd)
        os.mkdir("shm", 0o1777, dir_fd=dev_fd)
        os.mkdir("pts", 0o755, dir_fd=dev_fd)
        syscalls.mount(
            "devpts",
            f"{here}/pts",
            "devpts",
            syscalls.MS_NOSUID | syscalls.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=620",
        )
    finally:
        os.close(dev_fd)


_ST_TO_MS = (
    (0x2, syscalls.MS_NOSUID),
    (0x4, syscalls.MS_NODEV),
    (0x8, syscalls.MS_NOEXEC),
    (0x400, syscalls.MS_NOATIME),
    (0x800, syscalls.MS_NODIRATIME),
    (0x1000, syscalls.MS_RELATIME),
)


def make_readonly(root_fd: int, dest: str, recursive: bool) -> None:
    fd = paths.open_in_root(root_fd, dest)  # now the root of the new mount
    try:
        try:
            syscalls.mount_setattr(
                fd,
                "",
                syscalls.AT_EMPTY_PATH | (syscalls.AT_RECURSIVE if recursive else 0),
                syscalls.MOUNT_ATTR_RDONLY,
            )
            return
        except OSError as exc:
            if exc.errno not in (_errno.ENOSYS, _errno.EPERM):
                raise
        # Older kernels: remount, repeating the flags a user namespace may not drop (they are locked).
        target = f"/proc/self/fd/{fd}"
        flag = os.statvfs(target).f_flag
        keep = 0
        for st, ms in _ST_TO_MS:
            if flag & st:
                keep |= ms
        syscalls.mount(None, target, None, syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY | keep)
    except OSError as exc:
        raise ChrootMountError(f"cannot make {dest} read-only: {exc.strerror}", exc.errno) from None
    finally:
        os.close(fd)
