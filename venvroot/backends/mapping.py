"""Parsing of the user and directory mapping specs shared by every backend.

On the shims' hot path (the ``ns`` backend maps directories when it starts an environment), so the
two values are plain slotted classes: ``dataclasses`` and ``re`` cost ~10 ms to import.
"""

from __future__ import annotations

import os

from ..errors import UsageError

_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_REST = _NAME_FIRST | frozenset("0123456789.-")


def _valid_name(name: str) -> bool:
    """A user name: a letter or ``_``, then up to 31 letters, digits, ``_``, ``.`` or ``-``."""
    return 0 < len(name) <= 32 and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name[1:])


class _Value:
    """Immutable, compared and hashed by its fields (what a frozen dataclass would give). A
    subclass's ``__slots__`` are its fields, named as its constructor's arguments."""

    __slots__: tuple[str, ...] = ()

    def __reduce__(self) -> tuple:  # copy and pickle rebuild through the constructor
        return (_rebuild, (type(self), {name: getattr(self, name) for name in self.__slots__}))

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Value) and type(other) is type(self) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({values})"


def _rebuild(cls: type, fields: dict) -> _Value:
    return cls(**fields)


class DirectoryMapping(_Value):
    """``HOST[:INSIDE][:rw|ro]``: a host directory visible inside the root."""

    __slots__ = ("host", "inside", "writable")

    host: str
    inside: str
    writable: bool

    def __init__(self, host: str, inside: str, writable: bool = False) -> None:
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "inside", inside)
        object.__setattr__(self, "writable", writable)

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


class UserSpec(_Value):
    """Who programs run as: the caller (default), ``root``, or ``[system:][ID:]NAME``."""

    __slots__ = ("name", "system", "uid")

    name: str | None  # None: the calling user
    uid: int | None
    system: bool

    def __init__(self, name: str | None = None, uid: int | None = None, system: bool = False) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "uid", uid)
        object.__setattr__(self, "system", system)

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
            if not (parts[0].isascii() and parts[0].isdigit()):
                raise UsageError(f"bad --user spec {spec!r}: the ID {parts[0]!r} must be a number")
            uid = int(parts[0])
            parts.pop(0)
        if len(parts) != 1 or not _valid_name(parts[0]):
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
