"""Which shells have an environment activated: one file per shell pid, holding its start time.

Both backends keep such a registry (``ns``: the holder's ``shells/``; ``docker``: ``sessions/``)
and read it from the shims' hot path and from inside a root, so this module uses ``os`` only and
decodes nothing but ASCII bytes (a root may have no codecs).
"""

from __future__ import annotations

import os


def read_head(path: str, size: int, dir_fd: int | None = None) -> bytes:
    """The first ``size`` bytes of a small file (a /proc entry, a record): one read, no buffering
    objects. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def process_start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat: tells a live process from a later one reusing its pid."""
    try:
        data = read_head(f"/proc/{pid}/stat", 4096)
    except OSError:
        return ""
    fields = data.rpartition(b")")[2].split()
    return fields[19].decode("ascii") if len(fields) > 19 else ""


def live(registry: str) -> list[int]:
    """Pids registered in ``registry`` that are still the same processes."""
    try:
        names = os.listdir(registry)
    except FileNotFoundError:
        return []
    alive = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(registry, name), "rb") as handle:
                recorded = handle.read().strip().decode("ascii", "replace")
        except OSError:
            continue
        if recorded and recorded == process_start_time(int(name)):
            alive.append(int(name))
    return alive
