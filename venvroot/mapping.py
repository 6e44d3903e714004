"""Parsing of the user and directory mapping specs shared by every backend."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class DirectoryMapping:
    """``HOST[:INSIDE][:rw|ro]``: a host directory visible inside the root."""

    host: str
    inside: str
    writable: bool = False

    @classmethod
    def parse(cls, spec: str, *, check_exists: bool = True) -> DirectoryMapping:
        parts = spec.split(":")
        writable = False
        if len(parts) > 1 and parts[-1] in ("rw", "ro"):
            writable = parts.pop() == "rw"
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise UsageError(
                f"bad --directory spec {spec!r}: expected HOST[:INSIDE][:rw|ro], e.g. ~/data:/data:rw"
            )
        host = os.path.abspath(os.path.expanduser(parts[0]))
        inside = parts[1] if len(parts) == 2 else host
        if not inside.startswith("/"):
            raise UsageError(f"bad --directory spec {spec!r}: the inside path {inside!r} must be absolute")
        inside = os.path.normpath(inside)
        if check_exists and not os.path.isdir(host):
            raise UsageError(
                f"bad --directory spec {spec!r}: {host} is not a directory; create it or fix the path"
            )
        return cls(host, inside, writable)

    def __str__(self) -> str:
        return f"{self.host}:{self.inside}:{'rw' if self.writable else 'ro'}"


@dataclass(frozen=True)
class UserSpec:
    """Who programs run as: the caller (default), ``root``, or ``[system:][ID:]NAME``."""

    name: str | None = None  # None: the calling user
    uid: int | None = None
    system: bool = False

    @classmethod
    def parse(cls, spec: str | None) -> UserSpec:
        if spec is None or spec == "":
            return cls()
        if spec == "root":
            return cls("root", 0, True)
        parts = spec.split(":")
        system = False
        if len(parts) > 1 and parts[0] == "system":
            system = True
            parts.pop(0)
        uid: int | None = None
        if len(parts) == 2:
            if not parts[0].isdigit():
                raise UsageError(f"bad --user spec {spec!r}: the ID {parts[0]!r} must be a number")
            uid = int(parts[0])
            parts.pop(0)
        if len(parts) != 1 or not _NAME.match(parts[0]):
            raise UsageError(
                f"bad --user spec {spec!r}: expected root or [system:][ID:]NAME with NAME "
                "made of letters, digits, '_', '.', '-'"
            )
        if parts[0] == "root" and uid not in (None, 0):
            raise UsageError(f"bad --user spec {spec!r}: root must have ID 0")
        return cls(parts[0], 0 if parts[0] == "root" else uid, system)

    @property
    def is_caller(self) -> bool:
        return self.name is None

    def __str__(self) -> str:
        if self.name is None:
            return ""
        if self.name == "root":
            return "root"
        prefix = "system:" if self.system else ""
        ident = f"{self.uid}:" if self.uid is not None else ""
        return f"{prefix}{ident}{self.name}"
