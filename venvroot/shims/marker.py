"""What tells a shim: a symbolic link to the env's compiled shim (``bin/.venvroot-shim``, where the
backend put one), or the mark on the second line of every sh shim and management script
(``shim.tmpl``, ``manage.tmpl``); and the entry their Python path runs. Builtins only: the hot path
reads it."""

from __future__ import annotations

import os
import stat

# What every shim's Python path runs: ``python -I -S ENTRY ENV PROGRAM [ARG...]``.
ENTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli", "shimentry.py")
# bin/NAME -> this: a compiled shim (the ns backend's copy of its static starter, shim.c).
COMPILED = ".venvroot-shim"
SHIM_MARK = b"# venvroot shim:"
OWN_MARK = b"# venvroot"  # shims and management scripts alike


def shim_head(head: bytes) -> bool:
    """Whether the first bytes of a file are a shim's (a ``#!`` line, then the mark)."""
    return head.startswith(b"#!") and b"\n" + SHIM_MARK in head


def compiled_shim(path: str) -> bool:
    """Whether ``path`` is a compiled shim: a link to the compiled shim beside it."""
    try:
        return os.readlink(path) == COMPILED
    except OSError:
        return False


def _second_line(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            lines = handle.read(256).split(b"\n")
    except OSError:
        return None
    return lines[1] if len(lines) > 1 else None


def is_shim(path: str) -> bool:
    if compiled_shim(path):
        return True
    line = _second_line(path)
    return line is not None and line.startswith(SHIM_MARK)


def is_venvroot_file(path: str) -> bool:
    """Whether ``<env>/bin/NAME`` is venvroot's (a shim, bin/destroy, the session hook, an activate
    script, a file being written), not the env's Python's."""
    name = os.path.basename(path)
    if name.startswith(("activate", ".")) or name == "destroy" or compiled_shim(path):
        return True
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    line = _second_line(path)
    return line is not None and line.startswith(OWN_MARK)
