"""Copying directory trees for snapshots, standard library only (the docker session code and the
``ns`` session code call :func:`sync` when a frozen environment's session starts or ends).

Everything an overlay's writable layer may hold survives a copy: regular files (hard links among
them kept), directories, symlinks, whiteouts (character devices 0:0) and other special files,
modes, times, ownership (when we may set it) and extended attributes, among them the overlay's
``trusted.overlay.*`` / ``user.overlay.*`` marks (opaque directories, redirects).

Economy, ``rsync --link-dest`` style: :func:`copy` hard-links a file to the previous snapshot's
copy when that copy looks the same (type, size, mtime, mode, owner, xattrs); snapshots are never
changed after they are written, so sharing their inodes is safe. Live files are always copied,
never linked: a program may change them in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from . import progress

_AM_ROOT = os.geteuid() == 0
_CHUNK = 1 << 30


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    found = {}
    for name in names:
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return found


def _set_xattrs(path: str, values: dict[str, bytes]) -> None:
    for name, value in values.items():
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as exc:
            # Labels a security module sets by itself (SELinux, IMA) may be refused; they are the
            # system's business, not the snapshot's. Anything else (overlay marks) must not be lost.
            if not name.startswith("security."):
                raise OSError(
                    exc.errno, f"cannot set extended attribute {name}: {exc.strerror}", path
                ) from None


def _open_own(path: str, flags: int, st: os.stat_result, need: int) -> int:
    """Open ``path`` even when its mode shuts its owner (us) out, as in a writable layer copied up
    from a root's ``0000`` file: add the bits for a moment. The superuser needs none."""
    try:
        return os.open(path, flags)
    except PermissionError:
        if _AM_ROOT or st.st_uid != os.geteuid() or st.st_mode & need == need:
            raise
    os.chmod(path, stat.S_IMODE(st.st_mode) | need)
    try:
        return os.open(path, flags)
    finally:
        os.chmod(path, stat.S_IMODE(st.st_mode))


@contextlib.contextmanager
def _entered(path: str, st: os.stat_result) -> Iterator[list[str]]:
    """The names in directory ``path``, which we may traverse meanwhile even when its mode shuts
    its owner (us) out."""
    shut = not _AM_ROOT and st.st_uid == os.geteuid() and st.st_mode & 0o500 != 0o500
    if shut:
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
    try:
        yield sorted(os.listdir(path))
    finally:
        if shut:
            os.chmod(path, stat.S_IMODE(st.st_mode))


def _copy_data(src: str, dst: str, st: os.stat_result) -> None:
    mode = st.st_mode
    fd_in = _open_own(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, st, 0o400)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode & 0o700 | 0o600)
        try:
            try:  # in the kernel, and a reflink where the file system can share extents
                while os.copy_file_range(fd_in, fd_out, _CHUNK):
                    pass
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                os.lseek(fd_in, 0, os.SEEK_SET)
                os.ftruncate(fd_out, 0)
                os.lseek(fd_out, 0, os.SEEK_SET)
                while True:
                    data = os.read(fd_in, 1 << 20)
                    if not data:
                        break
                    os.write(fd_out, data)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _finish(dst: str, st: os.stat_result, xattrs: dict[str, bytes]) -> None:
    """Owner, xattrs, mode, times: in this order, as chown clears set-id bits."""
    if _AM_ROOT:
        os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if xattrs:
        _set_xattrs(dst, xattrs)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def same(a: os.stat_result, b: os.stat_result) -> bool:
    """The quick check (rsync's): same type, size, mtime, mode and owner."""
    return (
        a.st_mode == b.st_mode
        and a.st_size == b.st_size
        and a.st_mtime_ns == b.st_mtime_ns
        and a.st_uid == b.st_uid
        and a.st_gid == b.st_gid
        and (not (stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode)) or a.st_rdev == b.st_rdev)
    )


class _Copier:
    def __init__(self, link_dest: str | None) -> None:
        self.link_dest = link_dest
        self.inodes: dict[tuple[int, int], str] = {}  # hard links within the source tree
        self.linked = 0
        self.copied = 0

    def entry(self, src: str, dst: str, rel: str) -> None:
        st = os.lstat(src)
        mode = st.st_mode
        progress.tick(1, st.st_size if stat.S_ISREG(mode) else 0)
        if stat.S_ISDIR(mode):
            os.mkdir(dst, 0o700)
            xattrs = _xattrs(src)
            with _entered(src, st) as names:
                for name in names:
                    self.entry(os.path.join(src, name), os.path.join(dst, name), os.path.join(rel, name))
            _finish(dst, st, xattrs)
            return
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            first = self.inodes.get((st.st_dev, st.st_ino))
            if first is not None:
                os.link(first, dst)
                return
            self.inodes[(st.st_dev, st.st_ino)] = dst
        xattrs = _xattrs(src)
        if not stat.S_ISLNK(mode) and self._link_previous(rel, st, xattrs, dst):
            return
        if stat.S_ISREG(mode):
            _copy_data(src, dst, st)
            self.copied += 1
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        else:  # whiteouts (char 0:0, allowed unprivileged), fifos, sockets; devices as root
            os.mknod(dst, mode, st.st_rdev)
        _finish(dst, st, xattrs)

    def _link_previous(self, rel: str, st: os.stat_result, xattrs: dict[str, bytes], dst: str) -> bool:
        if self.link_dest is None:
            return False
        prev = os.path.join(self.link_dest, rel) if rel else self.link_dest
        try:
            pst = os.lstat(prev)
        except FileNotFoundError:
            return False
        if not same(st, pst) or _xattrs(prev) != xattrs:
            return False
        try:
            os.link(prev, dst)
        except OSError as exc:
            if exc.errno in (errno.EMLINK, errno.EXDEV, errno.EPERM):
                return False  # too many links, another file system, protected_hardlinks: copy instead
            raise
        self.linked += 1
        return True


def copy(src: str, dst: str, link_dest: str | None = None) -> tuple[int, int]:
    """Copy the file or tree ``src`` to ``dst`` (which must not exist). Files that look the same at
    the same place under ``link_dest`` (an earlier snapshot's copy) are hard-linked to it. Return
    (files copied, files linked)."""
    copier = _Copier(link_dest)
    copier.entry(src, dst, "")
    return copier.copied, copier.linked


def remove(path: str) -> None:
    """Remove a file or a tree, also one holding read-only directories; a missing path is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if st.st_mode & 0o700 != 0o700:
        os.chmod(path, 0o700)
    with os.scandir(path) as it:
        names = [e.name for e in it]
    for name in names:
        remove(os.path.join(path, name))
    os.rmdir(path)


def sync(src: str, dst: str) -> int:
    """Make ``dst`` exactly like ``src`` (restoring a snapshot into live files): entries that pass
    the quick check stay, the others are copied (never linked to ``src``) to a temporary name beside
    and renamed into place, extra entries are removed; files hard-linked together in ``src`` end up
    so in ``dst``. Return the number of entries changed."""
    return _sync(src, dst, {})


def _sync(src: str, dst: str, placed: dict[tuple[int, int], str]) -> int:
    try:
        sst = os.lstat(src)
    except FileNotFoundError:
        if os.path.lexists(dst):
            remove(dst)
            return 1
        return 0
    try:
        dst_st = os.lstat(dst)
    except FileNotFoundError:
        dst_st = None
    progress.tick(1, sst.st_size if stat.S_ISREG(sst.st_mode) else 0)
    if stat.S_ISDIR(sst.st_mode) and dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
        changed = 0
        if not _AM_ROOT and dst_st.st_mode & 0o700 != 0o700:
            os.chmod(dst, stat.S_IMODE(dst_st.st_mode) | 0o700)  # to change what it holds
        with _entered(src, sst) as wanted:
            keep = set(wanted)
            for name in os.listdir(dst):
                if name not in keep:
                    remove(os.path.join(dst, name))
                    changed += 1
            for name in wanted:
                changed += _sync(os.path.join(src, name), os.path.join(dst, name), placed)
        xattrs = _xattrs(src)
        if (
            stat.S_IMODE(dst_st.st_mode) != stat.S_IMODE(sst.st_mode)
            or _xattrs(dst) != xattrs
            or (_AM_ROOT and (dst_st.st_uid, dst_st.st_gid) != (sst.st_uid, sst.st_gid))
        ):
            changed += 1
        for name in set(_xattrs(dst)) - set(xattrs):
            os.removexattr(dst, name, follow_symlinks=False)
        _finish(dst, sst, xattrs)
        return changed
    tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.venvroot-restore")
    key = (sst.st_dev, sst.st_ino) if stat.S_ISREG(sst.st_mode) and sst.st_nlink > 1 else None
    first = placed.get(key) if key else None
    if first is not None:  # another name of a file already in place: link to it
        fst = os.lstat(first)
        if dst_st is not None and (dst_st.st_dev, dst_st.st_ino) == (fst.st_dev, fst.st_ino):
            return 0
        remove(tmp)
        os.link(first, tmp)
    else:
        if key:
            placed[key] = dst
        if dst_st is not None and _unchanged(src, sst, dst, dst_st):
            return 0
        remove(tmp)
    try:
        if first is None:
            copy(src, tmp)
        if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
            remove(dst)  # a directory where a file belongs: rename cannot replace it
        elif dst_st is not None and stat.S_ISDIR(sst.st_mode):
            os.unlink(dst)
        os.rename(tmp, dst)
    except BaseException:
        remove(tmp)
        raise
    return 1


def _unchanged(src: str, sst: os.stat_result, dst: str, dst_st: os.stat_result) -> bool:
    if stat.S_ISLNK(sst.st_mode):
        return stat.S_ISLNK(dst_st.st_mode) and os.readlink(src) == os.readlink(dst)
    mine = (sst.st_uid, sst.st_gid) == (dst_st.st_uid, dst_st.st_gid) or not _AM_ROOT
    quick = (
        sst.st_mode == dst_st.st_mode
        and sst.st_size == dst_st.st_size
        and sst.st_mtime_ns == dst_st.st_mtime_ns
        and (not (stat.S_ISCHR(sst.st_mode) or stat.S_ISBLK(sst.st_mode)) or sst.st_rdev == dst_st.st_rdev)
    )
    return quick and mine and _xattrs(src) == _xattrs(dst)


def usage(path: str, seen: set[tuple[int, int]]) -> int:
    """Bytes on disk under ``path`` (blocks, as du counts them), skipping inodes in ``seen`` and
    adding the ones found: called for snapshot after snapshot, it gives what each one adds."""
    total = 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    key = (st.st_dev, st.st_ino)
    if key not in seen:
        seen.add(key)
        total += st.st_blocks * 512
    if stat.S_ISDIR(st.st_mode):
        with _entered(path, st) as names:
            for name in names:
                total += usage(os.path.join(path, name), seen)
    return total
