"""``Spec``: everything that defines one entry into a root, as runner.make_spec checked it."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .mounts import Mount


class Spec:
    """Everything that defines one entry into a root (built by runner.make_spec)."""

    __slots__ = (
        "cwd", "gid", "hostname", "mounts", "net", "overlays_together", "pid", "root", "skip_chdir", "uid",
        "userns",
    )  # fmt: skip

    def __init__(
        self,
        root: str,
        mounts: Sequence[Mount],
        *,
        uid: int | None,
        gid: int | None,
        hostname: str | None,
        pid: bool,
        net: bool,
        cwd: str | None,
        skip_chdir: bool,
        overlays_together: bool = False,
    ) -> None:
        self.root = root
        self.mounts = list(mounts)
        self.uid = uid  # the caller's identity inside; None: its own
        self.gid = gid
        self.hostname = hostname
        self.pid = pid
        self.net = net
        self.cwd = cwd
        self.skip_chdir = skip_chdir
        # Mount runs of overlays on several threads (see _mount_together). Only for mounts whose
        # destinations are real directories: a symlink on the way could nest two "unrelated" ones.
        self.overlays_together = overlays_together
        self.userns = os.geteuid() != 0
