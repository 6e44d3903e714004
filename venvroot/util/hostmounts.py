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
