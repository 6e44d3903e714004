"""The docker backend's hot path: run one program in the env's container, as a shim does.

Standard library only. A container running the agent gets the program (agentpath.hand_over);
otherwise, in order: map cwd, user and environment; take the env's usage lock
(shared); exec into the container, starting it (or recreating it after a reset) on demand; relay
stdio and signals; then, for a non-persistent env used outside any activation, stop the container
again when this was its last user; and give console scripts that appeared in the env's Python
their shims.
"""

from __future__ import annotations

import _signal
import fcntl
import os
import sys
import time

from ...errors import VenvrootError
from .. import inside
from ..activations import live
from . import agentpath, guard, layout
from .container import ensure_running, stop_container
from .engine import Connection, EngineError, loads, quote_path, use_cfg
from .process import RemoteProcess, exec_body


def run(cfg, program: str, args: list[str]) -> int:  # cfg: venvroot.backends.envconfig.EnvConfig
    use_cfg(cfg)  # the env's own engine, whatever DOCKER_HOST says in this shell
    agentpath.hand_over(cfg, program, args)  # returns only when the container has no agent
    return run_engine(cfg, program, args)


def run_engine(cfg, program: str, args: list[str]) -> int:
    """Run the program through the Engine API's exec (containers without the agent)."""
    use_cfg(cfg)
    env_dir = cfg.env_dir
    tty = os.isatty(0) and os.isatty(1)
    cwd = inside_cwd(env_dir, cfg.get_list("directory"), cfg.get_bool(layout.CFG_REMOTE))
    body = exec_body(
        [program, *args],
        env_dir=env_dir,
        cwd=cwd,
        env=inside_environ(cfg, cwd),
        user=cfg.get(layout.CFG_USER) or f"{os.getuid()}:{os.getgid()}",
        tty=tty,
    )
    state = layout.StateDir(env_dir)
    persistent = cfg.get_bool("persistent")
    usage = Usage(state, persistent=persistent)
    container = cfg.get(layout.CFG_CONTAINER) or layout.container_name(env_dir)
    try:
        proc = RemoteProcess(container, body, tty)
        start_exec(proc, state)
        watch = guard.start(proc, lambda: Usage(state, persistent).release(container))
        try:
            code = _with_terminal(proc) if tty else proc.run(_stdin())
        except EngineError as exc:
            raise exec_failure(exc, container) from None
        finally:
            guard.release(watch)
    finally:
        usage.release(container)
    if code == 128 + 9 and 9 not in proc.forwarded:  # SIGKILL from outside: the container's end?
        _say_if_gone(container, program)
    sync_shims(state)
    if code > 128 and code - 128 in proc.forwarded:
        _die_like(code - 128)
    return code


def _say_if_gone(container: str, program: str) -> None:
    """One line when the program died because its container was removed or stopped under it."""
    with Connection() as conn:
        for _ in range(10):  # the daemon marks the container a moment after its processes died
            status, data = conn.request("GET", f"/containers/{quote_path(container)}/json")
            found = loads(data.decode("utf-8", "replace")) if status == 200 else {}
            run_state = found.get("State", {}) if isinstance(found, dict) else {}
            if status == 404 or run_state.get("Status") in ("removing", "dead"):
                what = "was removed"
                break
            if status == 200 and not run_state.get("Running", True):
                what = "was stopped"
                break
            time.sleep(0.05)
        else:
            return  # killed inside, as a local program can be: nothing to add
    os.write(
        2,
        f"venvroot: the container {container} {what} while {program} ran in it; "
        "the next call starts it again\n".encode(),
    )


def start_exec(proc: RemoteProcess, state: layout.StateDir) -> None:
    """Create ``proc``'s exec, starting or recreating the container when it is not running."""
    conn = Connection()
    try:
        proc.create(conn)
        return
    except EngineError as exc:
        if exc.status not in (404, 409):
            raise VenvrootError(f"cannot run in container {proc.container}: {exc}") from None
        ensure_running(conn, proc.container, state, missing=exc.status == 404)
    try:
        proc.create(conn)
    except EngineError as exc:
        raise exec_failure(exc, proc.container) from None


def exec_failure(exc: EngineError, container: str) -> VenvrootError:
    """An exec call failed: usually the container stopped again right after it was started."""
    with Connection() as conn:
        status, data = conn.request("GET", f"/containers/{quote_path(container)}/json")
    found = loads(data.decode("utf-8", "replace")) if status == 200 else {}
    run_state = found.get("State", {}) if isinstance(found, dict) else {}
    if run_state.get("Running", True):
        return VenvrootError(f"cannot run in container {container}: {exc}")
    return VenvrootError(_why_not_running(container, run_state))


def no_shell(container: str, stopped: bool = False) -> str:
    """The one line for an image without ``/bin/sh``, however it shows: the container stopping at
    once, or (when an exec wins the race with that stop) the exec of ``/bin/sh`` failing."""
    how = "stops at once" if stopped else "cannot start /bin/sh"
    return (
        f"the container {container} {how}: its image has no /bin/sh, which venvroot's docker backend "
        "needs to keep the container running and to find programs; use an image with a shell"
    )


def _why_not_running(container: str, run_state: dict) -> str:
    code = run_state.get("ExitCode")
    if code == 127:
        return no_shell(container, stopped=True)
    detail = run_state.get("Error") or f"exit status {code}"
    return f"the container {container} stops right after starting ({detail}); see `docker logs {container}`"


# -- mapping ---------------------------------------------------------------------------------------


def inside_cwd(env_dir: str, directories: list[str], remote: bool = False) -> str:
    """The current directory as seen inside (see venvroot.backends.inside), or one clear line. On a
    remote engine only the mappings' volumes are there: no ``/r``, never a silent wrong directory."""
    cwd = inside.host_cwd()
    mapped = inside.map_cwd(env_dir, directories, cwd)
    if remote and (mapped == "/r" or mapped.startswith("/r/")):
        raise VenvrootError(
            f"the current directory {cwd} is not mapped into {env_dir}, whose engine does not see this "
            "machine's files: "
            f"cd into the project directory {os.path.dirname(env_dir)}, or recreate the env with "
            f"--directory {cwd} (then `venvroot push {env_dir}`)"
        )
    return mapped


def inside_environ(cfg, cwd: str) -> list[str]:
    env = inside.environ(cfg, cwd, layout.CFG_PATH, layout.CFG_LOGIN, layout.CFG_HOME)
    return [f"{k}={v}" for k, v in env.items()]


# -- stdio -----------------------------------------------------------------------------------------


def _stdin() -> int | None:
    try:
        os.fstat(0)
    except OSError:
        return None  # closed: the program reads EOF
    return 0


def _with_terminal(proc: RemoteProcess) -> int:
    """Put our terminal in raw mode for the program's tty; restore it whatever happens."""
    # termios (a shared library): only on a shim's path with a terminal
    import termios

    saved = termios.tcgetattr(0)
    raw = list(saved)
    # cfmakeraw: no input processing, no echo, no signals from keys (they reach the program's tty).
    raw[0] &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
        | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
    )  # fmt: skip
    raw[1] &= ~termios.OPOST
    raw[2] &= ~(termios.CSIZE | termios.PARENB)
    raw[2] |= termios.CS8
    raw[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    raw[6] = list(raw[6])
    raw[6][termios.VMIN] = 1
    raw[6][termios.VTIME] = 0
    termios.tcsetattr(0, termios.TCSADRAIN, raw)
    try:
        return proc.run(0)
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _die_like(signum: int) -> None:
    """The program died of a signal we forwarded: die of it too, so our caller sees the same."""
    _signal.signal(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# -- who uses the container ------------------------------------------------------------------------


class Usage:
    """A non-persistent env's container runs only while in use: by an activated shell (a session)
    or by a shim. Shims hold the env's lock shared while they run; the last one out (when no
    session is active) stops the container while holding it exclusively, so a shim that starts
    meanwhile waits and then starts the container again instead of being killed with it."""

    def __init__(self, state: layout.StateDir, persistent: bool) -> None:
        self.state = state
        self.fd = -1
        if persistent:
            return

        try:
            self.fd = os.open(state.lock, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise VenvrootError(
                f"{state.env_dir} is not a complete docker environment ({state.lock} is missing); recreate it"
            ) from None
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def release(self, container: str) -> None:
        if self.fd < 0:
            return

        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            if live_sessions(self.state):
                return
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another shim runs: it will stop the container when it ends
            if not live_sessions(self.state):
                with Connection() as conn:
                    stop_container(conn, container)
        finally:
            os.close(self.fd)
            self.fd = -1


def live_sessions(state: layout.StateDir) -> list[int]:
    """Shell pids of the activations still alive (a pid reused by another process does not count)."""
    return live(state.sessions)


# -- console scripts -------------------------------------------------------------------------------


def sync_shims(state: layout.StateDir) -> None:
    """After e.g. ``pip install``, give the env's new programs shims (``venvroot sync``)."""
    try:
        mtime = str(os.stat(state.inner_bin).st_mtime_ns)
        with open(state.synced, encoding="ascii") as handle:
            if handle.read().strip() == mtime:
                return
    except OSError:
        return
    # subprocess: only when the shims need a sync, not on a shim's usual path
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH")))))
    subprocess.run(
        [sys.executable, "-m", "venvroot", "sync", state.env_dir],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=False,
    )
