"""Looking at an environment's root from the host, without entering it: overlay-aware lookups.

The root is a stack of host directories per inside path (an overlay's upper over its lower, the host
view's skeleton...). Paths are resolved the way the kernel would inside: symlinks are followed
relative to the root, never the host, and a whiteout hides what is below it. Directories made
opaque inside (rare: a directory removed and made again) are not modelled; such lookups may see
lower entries that the root hides.

Used to find programs and the interpreter, read the root's /etc/passwd, and create mount points in
the writable layer before the namespaces exist, so that entering never has to make any.
"""

from __future__ import annotations

import os
import stat

MAX_SYMLINKS = 40


class Layer:
    """The host directories (topmost first) that make up ``dest`` inside; ``writable`` when the
    first of them is the writable part (an overlay's upper, the skeleton)."""

    __slots__ = ("dest", "dirs", "writable")

    def __init__(self, dest: str, dirs: list[str], writable: bool) -> None:
        self.dest = dest
        self.dirs = dirs
        self.writable = writable


class RootView:
    def __init__(self, layers: list[Layer]) -> None:
        # Deepest first, so that the first match is the layer that really holds a path.
        self.layers = sorted(
            layers, key=lambda layer: layer.dest.count("/") + (layer.dest != "/"), reverse=True
        )

    def _layer(self, inside: str) -> tuple[Layer, str] | None:
        for layer in self.layers:
            if layer.dest == "/" or inside == layer.dest or inside.startswith(layer.dest + "/"):
                rel = inside[len(layer.dest) :] if layer.dest != "/" else inside
                return layer, rel
        return None

    def _entry(self, inside: str) -> tuple[str, os.stat_result] | None:
        found = self._layer(inside)
        if found is None:
            return None
        layer, rel = found
        for top in layer.dirs:
            host = top + rel if rel else top
            try:
                st = os.lstat(host)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                return None
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None  # an overlay whiteout: deleted inside
            return host, st
        return None

    def resolve(self, path: str) -> tuple[str, str | None, list[str]]:
        """Follow ``path`` inside: (the resolved inside path of its longest existing part, the host
        path of the whole when it exists else None, the components still missing)."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        current = "/"
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                current = os.path.dirname(current)
                continue
            candidate = current.rstrip("/") + "/" + name
            entry = self._entry(candidate)
            if entry is None:
                return current, None, [name, *parts]
            host, st = entry
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINKS:
                    return current, None, [name, *parts]
                target = os.readlink(host)
                if target.startswith("/"):
                    current = "/"
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                return current, None, [name, *parts]
            current = candidate
        entry = self._entry(current) if current != "/" else None
        return current, entry[0] if entry else self._top_of("/"), []

    def _top_of(self, inside: str) -> str | None:
        found = self._layer(inside)
        if found is None:
            return None
        layer, rel = found
        for top in layer.dirs:
            if os.path.lexists(top + rel):
                return top + rel
        return None

    def lookup(self, path: str) -> str | None:
        """The host path of what ``path`` names inside (symlinks followed), or None."""
        _resolved, host, missing = self.resolve(path)
        return None if missing else host

    def read(self, path: str) -> bytes | None:
        host = self.lookup(path)
        if host is None:
            return None
        try:
            with open(host, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def find_program(self, program: str, search_path: str) -> str | None:
        """The inside path of ``program`` (a name looked up on ``search_path``, or a path)."""
        candidates = (
            [program] if "/" in program else [f"{d or '.'}/{program}" for d in search_path.split(":")]
        )
        for candidate in candidates:
            host = self.lookup(candidate)
            if host is not None and os.path.isfile(host) and os.stat(host).st_mode & 0o111:
                return candidate
        return None

    def writable_path(self, inside: str) -> str | None:
        """Where a new ``inside`` (not existing yet) would go in the writable layer, or None."""
        found = self._layer(inside)
        if found is None or not found[0].writable:
            return None
        layer, rel = found
        return layer.dirs[0] + rel

    def target_for_write(self, path: str) -> str | None:
        """The host path where ``path`` (its directory existing inside) is written in the writable
        layer, with the layer's copies of its directories made; None when it has no writable layer."""
        parent, name = os.path.split(path.rstrip("/"))
        resolved, host, missing = self.resolve(parent)
        if missing or host is None or not os.path.isdir(host):
            return None
        top = self.writable_path(resolved)
        if top is None:
            return None
        self._mirror_dirs(resolved)
        return top.rstrip("/") + "/" + name

    def ensure(self, path: str, kind: str = "dir") -> str | None:
        """Make ``path`` exist inside (a directory, or an empty file for ``kind="file"``) by creating
        what is missing in the writable layer, copying the modes of the directories it shadows.
        Returns None when done, else why it cannot be made."""
        resolved, host, missing = self.resolve(path)
        if not missing:
            ok = os.path.isdir(host or "") if kind == "dir" else not os.path.isdir(host or "")
            return (
                None
                if ok
                else f"{path} exists inside and is not a {'directory' if kind == 'dir' else 'file'}"
            )
        # The writable counterparts of the existing part must exist too (an overlay's upper holds
        # only what was changed): make them with the modes of what they stand for.
        target = self.writable_path(resolved) if resolved != "/" else self.writable_path("/")
        if target is None:
            return f"cannot make {path} inside: {resolved} is read-only"
        self._mirror_dirs(resolved)
        for i, name in enumerate(missing):
            target = target.rstrip("/") + "/" + name
            last = i == len(missing) - 1
            if last and kind == "file":
                if not os.path.lexists(target):
                    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
            elif not os.path.isdir(target):
                os.mkdir(target, 0o755)
        return None

    def mirror(self, path: str) -> None:
        """Give the existing directory ``path`` (and those leading to it) a copy in the writable
        layer: it then takes its owner and mode from there."""
        resolved, host, missing = self.resolve(path)
        if not missing and host is not None and os.path.isdir(host):
            self._mirror_dirs(resolved)

    def _mirror_dirs(self, inside: str) -> None:
        """Create the writable layer's copies of the directories leading to ``inside``."""
        found = self._layer(inside)
        if found is None:
            return
        layer, rel = found
        if len(layer.dirs) < 2 or not rel:
            return
        top, below = layer.dirs[0], layer.dirs[1:]
        walked = ""
        for name in [p for p in rel.split("/") if p]:
            walked += "/" + name
            if os.path.isdir(top + walked):
                continue
            model = next((d + walked for d in below if os.path.isdir(d + walked)), None)
            mode = stat.S_IMODE(os.stat(model).st_mode) if model else 0o755
            os.mkdir(top + walked, mode)
            os.chmod(top + walked, mode)  # past the umask
            if model and os.geteuid() == 0:
                st = os.stat(model)
                os.chown(top + walked, st.st_uid, st.st_gid)
