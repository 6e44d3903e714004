"""Removing an env's trees, including files owned by the user's subordinate ids.

Rootless, what root inside an env with subordinate ids made for a system user (apt's
``partial`` directories belong to ``_apt``, mode 0700) cannot be removed by the user on the host.
It can as root of a user namespace with the same ranges mapped (mappedroot.py).
"""

from __future__ import annotations

import os
import stat

from . import mappedroot


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
        if not mappedroot.needed():
            raise
        mappedroot.run(lambda: _remove(path))


def _remove(path: str) -> None:
    # shutil (re, bz2, lzma: ~5 ms): not on a session hook's path, which loads this module
    import shutil

    def retry(function: object, failed: str, exc_info: object) -> None:
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
