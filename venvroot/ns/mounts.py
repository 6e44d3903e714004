"""The mount model: one small immutable value per mount, in the order they are made.

This module is on the shim's hot path, so ``Mount`` is a plain slotted class rather than a
dataclass (importing ``dataclasses`` costs ~15 ms).
"""

from __future__ import annotations

import os

from .errors import ChrootError, ChrootMountError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TypedDict, Unpack

    class Flags(TypedDict, total=False):
        """The keyword flags a constructor passes on to ``Mount``."""

        readonly: bool
        recursive: bool
        create: bool
        optional: bool


KINDS = ("bind", "tmpfs", "proc", "sysfs", "overlay", "dev")
FILESYSTEM_SOURCES = ("proc", "sysfs", "tmpfs")
MOUNT_OPTIONS = ("recursive", "readonly", "create", "optional")


class Mount:
    """A mount at ``dest`` (an absolute path inside the root).

    kind       ``bind`` (source: a host path), ``tmpfs``, ``proc``, ``sysfs``, ``overlay``
               (``options`` holds lowerdir/upperdir/workdir) or ``dev`` (a minimal /dev: tmpfs with
               the host's null, zero, full, random, urandom and tty, a private devpts and /dev/shm).
    readonly   make the mount read-only (recursively for recursive binds).
    recursive  bind the source's submounts too (``rbind``).
    create     create a missing destination (a directory, or an empty file for a file source);
               the runner removes what it created afterwards, and nothing else.
    optional   skip the mount, instead of failing, when the source is missing or the destination
               can be neither found nor created.
    options    filesystem data for ``mount(2)`` (e.g. ``size=64m`` for tmpfs).

    A mount whose ``dest`` is ``/`` must come first: it is mounted on the root directory itself, so
    the root can be an overlay or a read-only bind of another tree.
    """

    __slots__ = ("create", "dest", "kind", "optional", "options", "readonly", "recursive", "source")

    kind: str
    dest: str
    source: str | None
    readonly: bool
    recursive: bool
    create: bool
    optional: bool
    options: str

    def __init__(
        self,
        kind: str,
        dest: str,
        source: str | None = None,
        *,
        readonly: bool = False,
        recursive: bool = False,
        create: bool = True,
        optional: bool = False,
        options: str = "",
    ) -> None:
        if kind not in KINDS:
            raise ChrootError(f"unknown mount kind {kind!r}: use one of {', '.join(KINDS)}")
        if not dest.startswith("/"):
            raise ChrootError(f"mount destination {dest!r} must be an absolute path inside the root")
        if kind == "bind" and not source:
            raise ChrootError(f"bind mount on {dest} needs a source path")
        set_ = object.__setattr__
        set_(self, "kind", kind)
        set_(self, "dest", _normal(dest).replace("//", "/"))
        set_(self, "source", source)
        set_(self, "readonly", bool(readonly))
        set_(self, "recursive", bool(recursive))
        set_(self, "create", bool(create))
        set_(self, "optional", bool(optional))
        set_(self, "options", options)

    # -- constructors the backends use -------------------------------------------------------
    @classmethod
    def bind(
        cls,
        source: str,
        dest: str | None = None,
        *,
        readonly: bool = False,
        recursive: bool = False,
        create: bool = True,
        optional: bool = False,
    ) -> Mount:
        """Bind the host path ``source`` at ``dest`` (default: the same path)."""
        source = _absolute(source)
        return cls(
            "bind",
            dest or source,
            source,
            readonly=readonly,
            recursive=recursive,
            create=create,
            optional=optional,
        )

    @classmethod
    def rbind(
        cls,
        source: str,
        dest: str | None = None,
        *,
        readonly: bool = False,
        create: bool = True,
        optional: bool = False,
    ) -> Mount:
        """Bind ``source`` with its submounts."""
        return cls.bind(source, dest, readonly=readonly, recursive=True, create=create, optional=optional)

    @classmethod
    def tmpfs(cls, dest: str, options: str = "mode=0755", **kwargs: Unpack[Flags]) -> Mount:
        return cls("tmpfs", dest, "tmpfs", options=options, **kwargs)

    @classmethod
    def proc(cls, dest: str = "/proc", **kwargs: Unpack[Flags]) -> Mount:
        """A proc of the root's PID namespace; without one, the host's /proc bound recursively."""
        return cls("proc", dest, "proc", **kwargs)

    @classmethod
    def sysfs(cls, dest: str = "/sys", **kwargs: Unpack[Flags]) -> Mount:
        """A sysfs of the root's network namespace; without one, the host's /sys bound recursively."""
        return cls("sysfs", dest, "sysfs", **kwargs)

    @classmethod
    def dev(cls, dest: str = "/dev", **kwargs: Unpack[Flags]) -> Mount:
        return cls("dev", dest, "dev", **kwargs)

    @classmethod
    def overlay(
        cls,
        dest: str,
        lower: str | Sequence[str],
        upper: str | None = None,
        work: str | None = None,
        **kwargs: Unpack[Flags],
    ) -> Mount:
        """An overlay of ``lower`` (uppermost first); writable when ``upper`` and ``work`` are given."""
        lowers = [lower] if isinstance(lower, str) else list(lower)
        if not lowers or (upper is None) != (work is None):
            raise ChrootError("an overlay needs at least one lower directory, and upper and work together")
        opts = "lowerdir=" + ":".join(_overlay_escape(_absolute(p)) for p in lowers)
        if upper is not None and work is not None:
            opts += f",upperdir={_overlay_escape(_absolute(upper))}"
            opts += f",workdir={_overlay_escape(_absolute(work))}"
        return cls("overlay", dest, "overlay", options=opts, **kwargs)

    def replace(self, **changes: object) -> Mount:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        kind, dest = values.pop("kind"), values.pop("dest")
        return Mount(kind, dest, **values)

    # -- value behaviour ------------------------------------------------------------------------
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Mount is immutable; use replace()")

    def _key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mount) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [repr(self.kind), repr(self.dest), repr(self.source)]
        if self.options:
            parts.append(f"options={self.options!r}")
        parts += [f"{f}=True" for f in ("readonly", "recursive", "optional") if getattr(self, f)]
        if not self.create:
            parts.append("create=False")
        return f"Mount({', '.join(parts)})"

    def __reduce__(self) -> tuple:
        values = {name: getattr(self, name) for name in self.__slots__}
        return (_rebuild, (values,))


def _rebuild(values: dict) -> Mount:
    kind, dest = values.pop("kind"), values.pop("dest")
    return Mount(kind, dest, **values)


def _normal(path: str) -> str:
    """``os.path.normpath`` (pure Python, and a start builds dozens of mounts), skipped for an
    absolute path without an empty, ``.`` or ``..`` component or a trailing slash."""
    if not path.startswith("/") or "//" in path or "/./" in path or "/../" in path:
        return os.path.normpath(path)
    if path != "/" and path.endswith(("/.", "/..", "/")):
        return os.path.normpath(path)
    return path


def _absolute(path: str) -> str:
    return _normal(path) if path.startswith("/") else os.path.abspath(path)


def _overlay_escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


# -- pychroot's "source[:dest]" keys --------------------------------------------------------------

DEFAULT_MOUNTPOINTS: Mapping[str, Mapping[str, bool]] = {
    "/dev": {"recursive": True},
    "proc:/proc": {},
    "sysfs:/sys": {},
    "tmpfs:/dev/shm": {},
    "/etc/resolv.conf": {"optional": True},
}


def from_key(key: str, options: Mapping[str, bool] | None = None) -> Mount | None:
    """Turn a pychroot mount key (``source[:dest]``) and its options into a Mount.

    ``source`` is a host path, ``proc``, ``sysfs``, ``tmpfs`` or ``$VAR`` (a host path read from the
    environment). Returns None for an optional ``$VAR`` that is not set.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(MOUNT_OPTIONS))
    if unknown:
        raise ChrootError(f"mount {key!r}: unknown option {unknown[0]!r}; use {', '.join(MOUNT_OPTIONS)}")
    source, _, dest = key.partition(":")
    if not source:
        raise ChrootError(f"mount {key!r}: the source is empty; expected SOURCE[:DEST]")
    if source.startswith("$"):
        value = os.environ.get(source[1:])
        if not value:
            if options.get("optional"):
                return None
            raise ChrootMountError(
                f"cannot mount {source}: the environment variable is not set "
                "(set it, or mark the mount optional)"
            )
        source = value
    if not dest:
        dest = source
    if not dest.startswith("/"):
        dest = "/" + dest
    flags: dict[str, Any] = {
        k: bool(options[k]) for k in ("readonly", "recursive", "create", "optional") if k in options
    }
    if source in FILESYSTEM_SOURCES:
        return Mount(source, dest, source, **flags)
    return Mount("bind", dest, os.path.abspath(source), **flags)


def from_mountpoints(
    mountpoints: Mapping[str, Mapping[str, bool] | None] | None,
    defaults: Mapping[str, Mapping[str, bool] | None] | None = DEFAULT_MOUNTPOINTS,
) -> list[Mount]:
    """Combine default and given pychroot keys: a given key replaces the default with the same
    destination, and a value of None removes the mount at that destination."""
    merged: dict[str, Mount | None] = {}
    for table in (defaults or {}, mountpoints or {}):
        for key, opts in table.items():
            if opts is None:
                source, _, dest = key.partition(":")
                merged[os.path.normpath("/" + (dest or source).lstrip("/"))] = None
                continue
            mount = from_key(key, opts)
            if mount is not None:
                merged.pop(mount.dest, None)  # a replacement takes the place in order of the new key
                merged[mount.dest] = mount
    return [m for m in merged.values() if m is not None]


def default_mounts() -> list[Mount]:
    return from_mountpoints(None)


def check_sources(mounts: Iterable[Mount]) -> list[Mount]:
    """Drop optional mounts whose host source is missing; fail with one line for required ones."""
    kept: list[Mount] = []
    for m in mounts:
        if m.kind == "bind" and m.source is not None and not os.path.exists(m.source):
            if m.optional:
                continue
            raise ChrootMountError(
                f"cannot mount {m.source} on {m.dest}: {m.source} does not exist "
                "(create it, fix the path, or mark the mount optional)",
                2,
            )
        kept.append(m)
    return kept
