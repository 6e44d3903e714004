"""The mounts of this process's mount namespace, read from /proc/self/mountinfo (builtins only)."""

from __future__ import annotations


def mount_table() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount, in mountinfo's order (parents first)."""
    out: list[tuple[str, str]] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) >= 5 and right:
                out.append((unescape(fields[4]), right.split()[0]))
    return out


# Mounts a container engine makes for its running containers, wherever its data root is (docker's
# container roots and /dev/shm, podman's and containerd's): they come and go with the containers,
# so neither a host view nor a container of venvroot's is built on them. Shell-style patterns ('*'
# matching anything, '/' too), the same for starter.c, which gets them in the start file.
RUNTIME_MOUNTS = (
    "*/overlay2/*/merged", "*/overlay/*/merged", "*/fuse-overlayfs/*/merged",
    "*/containers/*/mounts/shm", "*/overlay-containers/*/userdata/shm",
)  # fmt: skip


def host_table() -> list[tuple[str, str]]:
    """:func:`mount_table` without the container engines' runtime mounts (:data:`RUNTIME_MOUNTS`)."""
    return [(point, kind) for point, kind in mount_table() if not runtime_mount(point)]


def runtime_mount(point: str) -> bool:
    return any(_matches(pattern, point) for pattern in RUNTIME_MOUNTS)


def _matches(pattern: str, text: str) -> bool:
    """fnmatch(3) without flags, for patterns whose only special character is '*' (no re import)."""
    first, *middle, last = pattern.split("*")
    if not text.startswith(first) or len(text) < len(first) + len(last) or not text.endswith(last):
        return False
    at, end = len(first), len(text) - len(last)
    for part in middle:
        found = text.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


def unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\ooo``."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
