"""A progress line for long work (unpacking a root, snapshots, restores, image pulls, debootstrap):
one line on stderr, rewritten in place with ``\\r``, nothing at all off a terminal or under ``-q``.

The work being counted calls :func:`tick` (a no-op unless a :class:`Progress` is open), so the code
that walks files needs no progress object passed down. Never used on a shim's hot path.
"""

from __future__ import annotations

import os
import sys
import time

_quiet = False
_current: Progress | None = None
INTERVAL = 0.1  # seconds between redraws: a redraw per file would cost more than the work


def set_quiet(quiet: bool) -> None:
    """``-q``: no progress line from here on."""
    global _quiet
    _quiet = quiet


def tick(files: int = 1, size: int = 0) -> None:
    """Count ``files`` more entries and ``size`` more bytes of the work in progress, if any."""
    if _current is not None:
        _current.add(files, size)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""  # not reached


class Progress:
    """``with Progress("unpacking x.tar"):`` shows ``unpacking x.tar: 1234 files, 5.6 MiB`` while
    the block ticks, and the final count with ``done`` when it ends without an error."""

    def __init__(self, what: str, unit: str = "files", label: str = "") -> None:
        self.what = what
        self.unit = unit  # what ``files`` counts: files, or an image's layers
        self.files = 0
        self.size = 0
        self.shown = 0.0
        self.width = 0
        self.label = label  # the stage of work told in words (debootstrap's), instead of the counts
        self.enabled = not _quiet and _isatty()

    def __enter__(self) -> Progress:
        global _current
        self.outer, _current = _current, (self if self.enabled else None)
        if self.enabled:
            self._draw()
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        global _current
        _current = self.outer
        if self.enabled:
            self._draw(", done\n" if kind is None else ", failed\n")

    def add(self, files: int, size: int) -> None:
        self.files += files
        self.size += size
        if time.monotonic() - self.shown >= INTERVAL:
            self._draw()

    def stage(self, label: str) -> None:
        """Show ``label`` as what is being done now (a step of a tool's own output)."""
        if self.enabled:
            self.label = label[:60]  # one line on any terminal: \r rewrites only the last one
            self.add(1, 0)

    def _draw(self, end: str = "") -> None:
        told = self.label or f"{self.files} {self.unit}, {human_size(self.size)}"
        text = f"{self.what}: {told}{end.rstrip(chr(10))}"
        # Spaces cover what a longer earlier line left.
        sys.stderr.write("\r" + text.ljust(self.width) + ("\n" if end.endswith("\n") else ""))
        sys.stderr.flush()
        self.width = len(text)
        self.shown = time.monotonic()


def _isatty() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False
