"""The caller as a program inside an ns env sees it: its environment mapped, the ids it runs as.

Standard library only: the hot path (run.py) and the cold start (coldstart.py) use it.
"""

from __future__ import annotations

import os

from .. import inside
from .layout import CFG_GID, CFG_HOME, CFG_LOGIN, CFG_PATH, CFG_UID

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig


def inside_environ(cfg: EnvConfig, cwd: str) -> dict[str, str]:
    """The caller's environment for a program inside (see venvroot.backends.inside)."""
    return inside.environ(cfg, cwd, CFG_PATH, CFG_LOGIN, CFG_HOME)


def runner_ids(cfg: EnvConfig) -> tuple[int | None, int | None]:
    """The runner's uid/gid: who the caller is inside (None: its own ids, rootless)."""
    uid, gid = cfg.get(CFG_UID), cfg.get(CFG_GID)
    if uid is not None:
        return int(uid), int(gid or uid)
    if os.geteuid() != 0:
        return None, None
    return 0, 0


def starter_ids(cfg: EnvConfig) -> tuple[int | None, int | None]:
    """Who a starter is inside: as root, root (the program's ids are switched to after the holder
    is forked: switch_ids); rootless, as ``--user`` says (None: the caller's own)."""
    return (0, 0) if os.geteuid() == 0 else runner_ids(cfg)


def switch_ids(cfg: EnvConfig) -> tuple[int, int] | None:
    """As root with ``--user``: the ids to switch to after joining (rootless the user namespace
    maps the caller already)."""
    if os.geteuid() != 0:
        return None
    uid, gid = runner_ids(cfg)
    if not uid and not gid:
        return None
    return uid or 0, gid or 0
