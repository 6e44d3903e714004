"""Why the kernel refused a namespace or a mount: one line naming the setting and the fix."""

from __future__ import annotations

import errno as _errno
import os

from .errors import ChrootError, ChrootMountError, NamespaceError


def read_sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def namespace_error(exc: OSError, what: str = "cannot create a user namespace") -> NamespaceError:
    """Name the setting that forbids user namespaces, and how to allow them."""
    checks = (
        ("kernel.unprivileged_userns_clone", "0", "1"),
        ("user.max_user_namespaces", "0", "15000"),
        ("kernel.apparmor_restrict_unprivileged_userns", "1", "0"),
    )
    for name, bad, good in checks:
        if read_sysctl(name) == bad:
            return NamespaceError(
                f"{what}: user namespaces are disabled by the sysctl {name}={bad}; allow them with "
                f"`sysctl -w {name}={good}` (as root), or run venvroot as root",
                exc.errno,
            )
    if exc.errno == _errno.ENOSPC:
        limit = read_sysctl("user.max_user_namespaces")
        return NamespaceError(
            f"{what}: no more user namespaces may be created here: user.max_user_namespaces of this "
            f"or an enclosing user namespace is 0 or reached (it reads {limit} here; sandboxes such as "
            "bwrap --disable-userns set it); raise it with `sysctl -w user.max_user_namespaces=15000` "
            "on the host",
            exc.errno,
        )
    if exc.errno == _errno.EINVAL:
        return NamespaceError(f"{what}: this kernel lacks user namespace support (CONFIG_USER_NS)", exc.errno)
    where = " (inside a container?)" if in_container() else ""
    return NamespaceError(
        f"{what}: {exc.strerror}{where}; the kernel, a seccomp filter or missing capabilities forbid it "
        "here (a container needs --privileged, or --cap-add SYS_ADMIN and --security-opt "
        "seccomp=unconfined)",
        exc.errno,
    )


def in_container() -> bool:
    return os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv") or "container" in os.environ


def mount_refused(exc: OSError) -> ChrootError:
    if exc.errno in (_errno.EPERM, _errno.EACCES):
        if read_sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
            return NamespaceError(
                "mounts are refused in the user namespace: kernel.apparmor_restrict_unprivileged_userns=1; "
                "allow them with `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or run as root",
                exc.errno,
            )
        where = (
            "inside a container that forbids mounts"
            if in_container()
            else "by the kernel or a security policy"
        )
        return NamespaceError(
            f"mounting is refused {where}: {exc.strerror}; give the container "
            "CAP_SYS_ADMIN (e.g. docker run --privileged) or run venvroot on the host",
            exc.errno,
        )
    return ChrootMountError(f"cannot mount {exc.filename or ''}: {exc.strerror}", exc.errno)
