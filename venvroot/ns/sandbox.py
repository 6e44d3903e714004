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

import errno as _errno
import os
import sys

from . import idmap, paths, seccomp, syscalls
from .errors import ChrootError, ChrootMountError, NamespaceError
from .mounts import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


class Spec:
    """Everything that defines one entry into a root (built by runner.make_spec)."""

    __slots__ = (
        "cwd", "gid", "hostname", "mounts", "net", "overlays_together", "pid", "root", "skip_chdir", "uid",
        "userns",
    )  # fmt: skip

    def __init__(
        self,
        root: str,
        mounts: Sequence[Mount],
        *,
        uid: int | None,
        gid: int | None,
        hostname: str | None,
        pid: bool,
        net: bool,
        cwd: str | None,
        skip_chdir: bool,
        overlays_together: bool = False,
    ) -> None:
        self.root = root
        self.mounts = list(mounts)
        self.uid = uid  # the caller's identity inside; None: its own
        self.gid = gid
        self.hostname = hostname
        self.pid = pid
        self.net = net
        self.cwd = cwd
        self.skip_chdir = skip_chdir
        # Mount runs of overlays on several threads (see _mount_together). Only for mounts whose
        # destinations are real directories: a symlink on the way could nest two "unrelated" ones.
        self.overlays_together = overlays_together
        self.userns = os.geteuid() != 0


# -- 1. namespaces ----------------------------------------------------------------------------------


def enter_namespaces(spec: Spec, subids: bool = False) -> None:
    """``subids``: rootless, map the user's subordinate ids too when it has them (idmap.py)."""
    flags = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
    if spec.pid:
        flags |= syscalls.CLONE_NEWPID
    if spec.net:
        flags |= syscalls.CLONE_NEWNET
    prefix = ""
    if not spec.userns:
        try:
            syscalls.unshare(flags)
            return
        except PermissionError:
            # Root without CAP_SYS_ADMIN (a locked-down container): a user namespace may still
            # grant the capabilities.
            prefix = "cannot create a mount namespace: this root process lacks CAP_SYS_ADMIN, and "
            spec.userns = True
            spec.uid = 0 if spec.uid is None else spec.uid
            spec.gid = 0 if spec.gid is None else spec.gid
    inside_uid = os.geteuid() if spec.uid is None else spec.uid
    inside_gid = os.getegid() if spec.gid is None else spec.gid
    mapper = idmap.Mapper(idmap.plan(inside_uid, inside_gid, subids))
    try:
        syscalls.unshare(flags | syscalls.CLONE_NEWUSER)
    except OSError as exc:
        mapper.cancel()
        raise _namespace_error(exc, prefix + "cannot create a user namespace") from None
    try:
        mapper.map()
    except OSError as exc:
        raise _namespace_error(exc, prefix + "cannot map the user into a new user namespace") from None


def _read_sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def _namespace_error(exc: OSError, what: str = "cannot create a user namespace") -> NamespaceError:
    """Name the setting that forbids user namespaces, and how to allow them."""
    checks = (
        ("kernel.unprivileged_userns_clone", "0", "1"),
        ("user.max_user_namespaces", "0", "15000"),
        ("kernel.apparmor_restrict_unprivileged_userns", "1", "0"),
    )
    for name, bad, good in checks:
        if _read_sysctl(name) == bad:
            return NamespaceError(
                f"{what}: user namespaces are disabled by the sysctl {name}={bad}; allow them with "
                f"`sysctl -w {name}={good}` (as root), or run venvroot as root",
                exc.errno,
            )
    if exc.errno == _errno.ENOSPC:
        limit = _read_sysctl("user.max_user_namespaces")
        return NamespaceError(
            f"{what}: no more user namespaces may be created here: user.max_user_namespaces of this "
            f"or an enclosing user namespace is 0 or reached (it reads {limit} here; sandboxes such as "
            "bwrap --disable-userns set it); raise it with `sysctl -w user.max_user_namespaces=15000` "
            "on the host",
            exc.errno,
        )
    if exc.errno == _errno.EINVAL:
        return NamespaceError(f"{what}: this kernel lacks user namespace support (CONFIG_USER_NS)", exc.errno)
    where = " (inside a container?)" if _in_container() else ""
    return NamespaceError(
        f"{what}: {exc.strerror}{where}; the kernel, a seccomp filter or missing capabilities forbid it "
        "here (a container needs --privileged, or --cap-add SYS_ADMIN and --security-opt "
        "seccomp=unconfined)",
        exc.errno,
    )


def _in_container() -> bool:
    return os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv") or "container" in os.environ


# -- 2. the tree --------------------------------------------------------------------------------------


def build(spec: Spec) -> tuple[list[paths.Created], int]:
    """Make the mounts; return the mount points created on the way and a descriptor of the root."""
    try:
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
    except OSError as exc:
        raise _mount_refused(exc) from None
    mounts = spec.mounts
    created: list[paths.Created] = []
    first = mounts[0] if mounts and mounts[0].dest == "/" else None
    try:
        if first is not None:
            _mount(spec, first, spec.root)
            mounts = mounts[1:]
        else:
            syscalls.mount(spec.root, spec.root, None, syscalls.MS_BIND | syscalls.MS_REC)
    except OSError as exc:
        raise _mount_refused(exc) from None
    root_fd = os.open(spec.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        i = 0
        while i < len(mounts):
            run = independent_overlays(mounts, i) if spec.overlays_together else 1
            if run >= TOGETHER_FROM:
                _mount_together(spec, root_fd, mounts[i : i + run], created)
            else:
                run = 1
                _mount_inside(spec, root_fd, mounts[i], created)
            i += run
        if first is not None and first.readonly:
            # Last, so that mount points could still be made in it; submounts keep their own mode.
            _make_readonly(root_fd, "/", recursive=False)
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


def _mount_together(spec: Spec, root_fd: int, batch: Sequence[Mount], created: list[paths.Created]) -> None:
    """Mount independent overlays on several threads at once. Most of an overlay mount is the
    kernel setting up its filesystem (looking up the layers, preparing the work directory), which
    runs beside another one on another CPU: the libc calls let go of Python's lock. The first
    failure is raised once every thread has stopped."""
    import _thread

    todo = list(reversed(batch))
    failed: list[BaseException] = []

    def drain() -> None:
        while todo and not failed:
            try:
                m = todo.pop()
            except IndexError:  # another thread took the last one
                return
            try:
                _mount_inside(spec, root_fd, m, created)
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


def _mount_refused(exc: OSError) -> ChrootError:
    if exc.errno in (_errno.EPERM, _errno.EACCES):
        if _read_sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
            return NamespaceError(
                "mounts are refused in the user namespace: kernel.apparmor_restrict_unprivileged_userns=1; "
                "allow them with `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or run as root",
                exc.errno,
            )
        where = (
            "inside a container that forbids mounts"
            if _in_container()
            else "by the kernel or a security policy"
        )
        return NamespaceError(
            f"mounting is refused {where}: {exc.strerror}; give the container "
            "CAP_SYS_ADMIN (e.g. docker run --privileged) or run venvroot on the host",
            exc.errno,
        )
    return ChrootMountError(f"cannot mount {exc.filename or ''}: {exc.strerror}", exc.errno)


def _mount_inside(spec: Spec, root_fd: int, m: Mount, created: list[paths.Created]) -> None:
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
        _mount(spec, m, f"/proc/self/fd/{fd}")
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
        _make_readonly(root_fd, m.dest, recursive=m.recursive or m.kind == "dev")


def _mount(spec: Spec, m: Mount, target: str) -> None:
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


def _make_readonly(root_fd: int, dest: str, recursive: bool) -> None:
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


def _loopback_up() -> None:
    import fcntl
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
    try:
        syscalls.pivot_root(".", ".")  # the old root ends up stacked on "." ...
        syscalls.umount2(".", syscalls.MNT_DETACH)  # ... and is dropped here
    except OSError:
        os.chroot(".")  # e.g. on an initramfs, where pivot_root is refused
    os.chdir("/")
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
