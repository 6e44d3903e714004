"""The ``ns`` backend's hot path: run one program in the environment, as a shim does.

Standard library only. Shims normally never get here: their sh fragment joins a running
environment with nsenter. This is the way in when nothing runs yet, or without nsenter: map the
current directory and the environment, take the env's lock shared, and either join the holder's
namespaces or, when none runs, build them in this very process and leave a holder behind
(coldstart.py); then replace this process with the program inside. Signals, the terminal and the
exit status then need no help.
"""

from __future__ import annotations

import os

from ...errors import VenvrootError
from .. import inside
from . import enter
from .caller import inside_environ, switch_ids
from .holder import Lock, running
from .layout import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig


def run(cfg: EnvConfig, program: str, args: list[str]) -> int:
    cwd = inside.host_cwd()
    inside_dir = inside.map_cwd(cfg.env_dir, cfg.get_list("directory"), cwd)
    environ = inside_environ(cfg, inside_dir)
    state = State(cfg.env_dir)
    lock = Lock(state)
    found = running(state, lock)  # the lock stays held until the program starts
    if found is None and os.path.lexists(state.holder):  # a holder died: its session may live on
        from .survivors import take_over

        found = take_over(cfg, state)
    if found is None and cfg.get_bool("pid"):  # its holder is init: start it, then join it
        from .pidns import start

        found = start(cfg, state)
    if found is None:
        # coldstart (ns.sandbox, ns.mounting, startfile...: ~2.5 ms): only when no holder runs
        from .coldstart import start_here

        argv = [program, *args]

        def ready() -> None:  # inside the new root
            if not os.path.isdir(inside_dir):
                raise _not_visible(cfg, cwd, inside_dir)
            argv[:] = enter.past_shim(argv, environ, cfg.bin_dir)

        start_here(cfg, state, ready)  # this process is inside now
        enter.become(argv, environ, inside_dir, switch_ids(cfg))
        return 127  # not reached
    pid = found[0]
    if not os.path.isdir(f"/proc/{pid}/root{inside_dir}"):
        raise _not_visible(cfg, cwd, inside_dir)
    argv = enter.past_shim([program, *args], environ, cfg.bin_dir, f"/proc/{pid}/root")
    try:
        enter.join(pid, argv, environ, inside_dir, switch_ids(cfg))
    except VenvrootError:
        if os.path.exists(f"/proc/{pid}/ns/mnt"):
            raise
        lock.close()  # its holder was killed since: start again (survivors.py adopts its session)
        return run(cfg, program, args)
    return 127  # not reached


def _not_visible(cfg: EnvConfig, cwd: str, inside_dir: str) -> VenvrootError:
    return VenvrootError(
        f"the current directory {cwd} is not visible inside the environment (looked for {inside_dir}); "
        f"cd into the project directory {os.path.dirname(cfg.env_dir)}, or map it with --directory"
    )
