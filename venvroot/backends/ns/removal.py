"""Removing an env's trees, including files owned by the user's subordinate ids.

Rootless, what root inside an env with subordinate ids made for a system user (apt's
``partial`` directories belong to ``_apt``, mode 0700) cannot be removed by the user on the host.
It can from a user namespace with the same ranges mapped, where the user is root: the kernel lets
that root override permissions on files whose owners are mapped there.
"""

from __future__ import annotations

import os
import stat


def remove_tree(path: str) -> None:
    """Remove ``path`` whatever the modes inside (an overlay's work directory is mode 000) and,
    rootless with subordinate ids, whatever their owners."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    try:
        _remove(path)
    except PermissionError:
        if os.geteuid() == 0 or not _remove_as_mapped_root(path):
            raise


def _remove(path: str) -> None:
    import shutil

    def retry(function, failed: str, exc_info) -> None:  # type: ignore[no-untyped-def]
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, stat.S_IRWXU)
                shutil.rmtree(failed, onerror=retry)
            else:
                os.unlink(failed)
        except FileNotFoundError:
            pass

    shutil.rmtree(path, onerror=retry)


def _remove_as_mapped_root(path: str) -> bool:
    """Remove ``path`` in a child that is root in a user namespace mapping the user's ranges;
    whether it could."""
    from ...ns import idmap, syscalls

    ids = idmap.plan(0, 0)
    if not ids.full:
        return False
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            mapper = idmap.Mapper(ids)
            try:
                syscalls.unshare(syscalls.CLONE_NEWUSER)
            except OSError:
                mapper.cancel()
                raise
            mapper.map()
            _remove(path)
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0 and not os.path.lexists(path)
