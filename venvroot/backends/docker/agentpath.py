"""The docker backend's fast path: the compiled agent inside the container, and the way to it.

The agent (``agent.c``, built with the package like the ns starter) is the container's main
process in containers made when it was built: bind-mounted read-only from the env's state
directory, it listens on ``<env>/.venvroot/docker/agent.sock`` and runs each program it is sent
as the env's user, with the caller's own stdin, stdout and stderr. Shims reach it through
``<env>/.venvroot/shim.sh``, which execs the same binary as the caller (``agent --run``): no Python,
no Engine API. When the agent does not answer (the container is stopped), the caller execs the
shim's Python path, which starts the container and hands over to the agent again
(``hand_over``); containers without an agent (made by an older venvroot) keep the Engine API
path. Hot path: ``os`` only, except at create.
"""

from __future__ import annotations

import _socket
import os
import pwd
import sys
import time

from ...shims.marker import ENTRY
from ...util.shquote import quote as q
from ..inside import DEFAULT_PATH
from . import layout
from .container import ensure_running
from .engine import Connection

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.path.join(HERE, "agent")  # compiled at install; absent without a C compiler
INSIDE_PATH = "/.venvroot/agent"  # where the container sees its agent
# A non-persistent env's container outlives its last program by this much (seconds), so that a
# run of shims (make calling a shimmed compiler) starts it once.
LINGER = 3
SOCKET_NAME = "agent.sock"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig
    from ..users import Account


def available() -> bool:
    return os.access(BINARY, os.X_OK)


def agent_file(state: layout.StateDir) -> str:
    """The env's copy of the agent: the container keeps working after venvroot is upgraded."""
    return os.path.join(state.path, "agent")


def socket_path(state: layout.StateDir) -> str:
    return os.path.join(state.path, SOCKET_NAME)


def with_agent(spec: dict, state: layout.StateDir, account: Account, caller: bool, persistent: bool) -> dict:
    """``spec`` with the agent as the container's main process, bind-mounted read-only, when it
    was built. The ids the programs run as are fixed here, on its command line, never by a request."""
    if not available():
        return spec
    # shutil: not on a shim's path (only when the container's spec is made)
    import shutil

    shutil.copy2(BINARY, agent_file(state) + ".new")
    os.replace(agent_file(state) + ".new", agent_file(state))
    groups = ",".join(str(gid) for _name, gid in account.groups) if caller else ""
    uid, gid = (os.getuid(), os.getgid()) if caller else (account.uid, account.gid)
    linger = "0" if persistent else str(LINGER)
    serve = [INSIDE_PATH, "--serve", state.env_dir, str(os.getuid()), str(uid), str(gid), groups, linger]
    spec["Entrypoint"] = serve
    spec["HostConfig"]["Mounts"].append(
        {"Type": "bind", "Source": agent_file(state), "Target": INSIDE_PATH, "ReadOnly": True}
    )
    return spec


def has_agent(state: layout.StateDir) -> bool:
    """Whether the env's container is made to run the agent (its spec says so)."""
    try:
        with open(state.container_spec, "rb") as handle:
            return b'"--serve"' in handle.read()
    except OSError:
        return False


def client_argv(cfg: EnvConfig, python: str, final: bool = False) -> list[str]:
    """``agent --run ...`` up to the program: the mapping facts the caller applies (as
    venvroot.backends.inside does), and the Python path to exec when the agent does not answer."""
    env_dir = cfg.env_dir
    project = os.path.dirname(env_dir)
    maps = [project, project]
    for spec in cfg.get_list("directory"):
        host, inside, _mode = spec.rsplit(":", 2)
        maps += [host, inside]
    home = cfg.get(layout.CFG_HOME) or ""
    path = cfg.get(layout.CFG_PATH) or f"{env_dir}/bin:{DEFAULT_PATH}"
    mode = "--run-final" if final else "--run"
    container = cfg.get(layout.CFG_CONTAINER) or layout.container_name(env_dir)
    return [
        agent_file(layout.StateDir(env_dir)), mode, python, ENTRY, env_dir, container, path,
        cfg.get(layout.CFG_LOGIN) or "", home, _default_home(), str(len(maps) // 2), *maps,
    ]  # fmt: skip


def _default_home() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/"


def write_fragment(cfg: EnvConfig) -> None:
    """``<env>/.venvroot/shim.sh``: straight to the agent while its socket is there."""
    state = layout.StateDir(cfg.env_dir)
    fragment = os.path.join(cfg.env_dir, ".venvroot", "shim.sh")
    argv = " ".join(q(a) for a in client_argv(cfg, sys.executable))
    # envstate: only a create writes the fragment; not on a shim's path
    from .. import envstate

    auto = envstate.auto_dir(cfg.env_dir)
    text = (
        "# venvroot docker fast path: the agent in the env's container runs the program.\n"
        "# Automatic-snapshot rules (`venvroot snapshot configure`) are the Python path's to apply.\n"
        f"[ ! -e {q(auto)} ] || return 0\n"
        f"if [ -S {q(socket_path(state))} ] && [ -x {q(agent_file(state))} ]; then\n"
        f'    exec {argv} "$_venvroot_program" "$@"\n'
        "fi\n"
    )
    with open(fragment + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(fragment + ".tmp", fragment)


def answers(state: layout.StateDir, timeout: float) -> bool:
    """Whether the agent accepts connections (it binds its socket a moment after the start)."""
    deadline = time.monotonic() + timeout
    here = os.open(".", os.O_PATH | os.O_CLOEXEC)
    try:
        os.chdir(state.path)  # a relative name: socket paths are limited to 108 bytes
        while True:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.connect(SOCKET_NAME)
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
            finally:
                sock.close()
    finally:
        os.fchdir(here)
        os.close(here)


def hand_over(cfg: EnvConfig, program: str, args: list[str]) -> None:
    """The Python path of an env whose container runs the agent: start the container if it is
    stopped, then become the agent's caller. Returns only when the agent does not answer, after
    saying so: the caller then takes the Engine API path."""
    state = layout.StateDir(cfg.env_dir)
    if not (has_agent(state) and os.access(agent_file(state), os.X_OK)):
        return
    container = cfg.get(layout.CFG_CONTAINER) or layout.container_name(cfg.env_dir)
    if not answers(state, 0):
        with Connection() as conn:
            ensure_running(conn, container, state)
        if not answers(state, 3.0):
            os.write(
                2,
                f"venvroot: the agent in the container {container} does not answer; running "
                f"{program} through the Engine API instead (`venvroot reset {cfg.env_dir}` remakes "
                "the container)\n".encode(),
            )
            return

    argv = [*client_argv(cfg, sys.executable, final=True), program, *args]
    os.execv(argv[0], argv)
