"""Resolving paths inside the root without ever leaving it, and creating missing mount points.

Every lookup starts from a descriptor of the root and treats it as ``/``: an absolute symlink or
``..`` stays inside, so a crafted root cannot make the runner mount over a host file. openat2(2)
with RESOLVE_IN_ROOT does this in one call; where the kernel lacks it (or a seccomp filter refuses
it), the same walk is done one component at a time with O_NOFOLLOW.
"""

from __future__ import annotations

import errno
import os
import stat

from . import syscalls

_O_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC
_MAX_SYMLINKS = 40
_openat2_works = True


class Created:
    """A mount point the runner made: ``name`` in the directory ``parent_fd``, identified by inode."""

    __slots__ = ("dev", "ino", "is_dir", "name", "parent_fd", "shown")

    def __init__(self, parent_fd: int, name: str, dev: int, ino: int, is_dir: bool, shown: str) -> None:
        self.parent_fd = parent_fd
        self.name = name
        self.dev = dev
        self.ino = ino
        self.is_dir = is_dir
        self.shown = shown  # the path inside the root, for messages


def open_in_root(root_fd: int, path: str) -> int:
    """Return an O_PATH descriptor of ``path`` resolved inside ``root_fd``; raise OSError."""
    global _openat2_works
    if _openat2_works:
        try:
            return syscalls.openat2(
                root_fd,
                path.lstrip("/") or ".",
                _O_PATH_FLAGS,
                syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS,
            )
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
                raise
            _openat2_works = False
    return walk(root_fd, path, None, [])


def resolve_or_create(root_fd: int, path: str, kind: str | None, created: list[Created]) -> int:
    """Like :func:`open_in_root`, but create what is missing: parents as directories and the last
    component as ``kind`` ("dir" or "file"); each new entry is appended to ``created``."""
    try:
        return open_in_root(root_fd, path)
    except FileNotFoundError:
        if kind is None:
            raise
    return walk(root_fd, path, kind, created)


def walk(root_fd: int, path: str, create: str | None, created: list[Created]) -> int:
    """Resolve ``path`` component by component inside ``root_fd``, creating missing ones if asked."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    parts.reverse()  # a stack: the next component is parts[-1]
    stack = [os.dup(root_fd)]  # directories walked so far; stack[0] is the root
    shown: list[str] = []
    links = 0
    try:
        while parts:
            name = parts.pop()
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    shown.pop()
                continue
            here = stack[-1]
            try:
                st = os.stat(name, dir_fd=here, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    raise
                kind = create if not parts else "dir"
                st = _create(here, name, kind, "/" + "/".join([*shown, name]), created)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=here)
                if target.startswith("/"):
                    for fd in stack[1:]:
                        os.close(fd)
                    del stack[1:]
                    shown.clear()
                parts.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/" + "/".join([*shown, name]))
            fd = os.open(name, _O_PATH_FLAGS | os.O_NOFOLLOW, dir_fd=here)
            if stat.S_ISLNK(os.fstat(fd).st_mode):  # replaced by a symlink since the stat: look again
                os.close(fd)
                parts.append(name)
                links += 1
                continue
            stack.append(fd)
            shown.append(name)
        result = stack.pop()
    finally:
        for fd in stack:
            os.close(fd)
    return result


def _create(dir_fd: int, name: str, kind: str, shown: str, created: list[Created]) -> os.stat_result:
    try:
        if kind == "dir":
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        else:
            os.close(
                os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=dir_fd,
                )
            )
    except FileExistsError:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)  # made meanwhile: not ours
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    created.append(Created(os.dup(dir_fd), name, st.st_dev, st.st_ino, kind == "dir", shown))
    return st


def remove_created(created: list[Created]) -> list[str]:
    """Remove what :func:`walk` created, newest first, only if it is still the same, unmounted and
    empty; return messages about entries left in place."""
    problems: list[str] = []
    for entry in reversed(created):
        try:
            st = os.stat(entry.name, dir_fd=entry.parent_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
                continue  # replaced by something else: not ours any more
            if entry.is_dir:
                os.rmdir(entry.name, dir_fd=entry.parent_fd)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(entry.name, dir_fd=entry.parent_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                problems.append(f"could not remove the mount point {entry.shown} it created: {exc.strerror}")
        finally:
            os.close(entry.parent_fd)
    created.clear()
    return problems


def exists_in_root(root: str, path: str) -> bool:
    """Whether ``path`` exists inside the root directory ``root`` (for choosing a default shell)."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.close(open_in_root(root_fd, path))
        return True
    except OSError:
        return False
    finally:
        os.close(root_fd)


def read_in_root(root: str, path: str) -> bytes | None:
    """The contents of the file ``path`` inside ``root`` (resolved without leaving it), or None."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = open_in_root(root_fd, path)
        try:
            file_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(fd)
        with open(file_fd, "rb") as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(root_fd)
