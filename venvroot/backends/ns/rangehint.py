"""The one line that names a missing subordinate id range when apt or dpkg fails in an env that lacks it.

Rootless without subordinate ids (or without newuidmap/newgidmap) an env maps one id, so root
inside cannot call ``setgroups`` or give files to system users: apt fails with ``setgroups 0
failed``, dpkg cannot chown a package's files. Told only where it explains the failure: the
program is apt, apt-get, aptitude or dpkg, run as root inside (``--user root``) of a rootless env
that maps one id, and it exits with a non-zero status. Then (and only then: nothing else is
checked or forked on other runs) the shim's process stays outside as the program's relay
(venvroot/ns/relay.py: signals, stops and the exit status pass as they would) and writes the line
after the program's own errors. Hot path: builtins and the ns library only.
"""

from __future__ import annotations

import os

from .layout import CFG_UID

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig

TOOLS = ("apt", "apt-get", "aptitude", "dpkg")


def wanted(cfg: EnvConfig, program: str) -> bool:
    """Whether a failure of ``program`` here would be the missing range's doing."""
    if cfg.backend != "ns" or os.geteuid() == 0 or os.path.basename(program) not in TOOLS:
        return False
    if cfg.get(CFG_UID) != "0":
        return False
    from ...ns import idmap  # ns.idmap: only for apt or dpkg as root inside, not on every shim's path

    return not idmap.plan(0, 0).full


def watch(cfg: EnvConfig, program: str) -> None:
    """Return in the process that goes on to run ``program`` (any env: both launchers call it);
    when :func:`wanted`, this process first forks it and stays behind as its relay, which tells
    the line if it fails."""
    if not wanted(cfg, program):
        return
    # ns.relay, ns.syscalls: only for a watched apt or dpkg (every shim, a docker env's too, imports this)
    from ...ns import relay, syscalls

    watcher = os.getpid()
    relay.fork_in(lambda status: _tell(program, status))
    syscalls.set_parent_death_signal(9)  # the program goes with a killed shim, as it would unwatched
    if os.getppid() != watcher:
        os._exit(137)


def _tell(program: str, status: int) -> None:
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0:
        return
    from ...ns import idmap  # only once the watched program failed

    hint = idmap.missing_range_hint()
    if hint:
        line = f"venvroot: {os.path.basename(program)} failed (exit status {os.WEXITSTATUS(status)}), "
        os.write(2, f"{line}likely because {hint}\n".encode(errors="replace"))
