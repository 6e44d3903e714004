"""Activation sessions of a docker environment (standard library only).

``source bin/activate`` registers the shell (``sessions/<pid>``, holding the pid's start time) and
starts the container; the first activation runs the ``--on-activate`` commands. ``deactivate``,
or a watcher process noticing that an activated shell is gone, unregisters it; the last one runs
the ``--on-deactivate`` commands and, unless the env is persistent, stops the container with
everything in it. Two locks: ``sessions/.lock`` serialises the registry; the env's usage lock
(see :class:`run.Usage`) is taken shared while starting so that a concurrent stop finishes first.

A frozen environment (``venvroot freeze``) loses the session's changes: the first activation and
the end of the last one remove the container (it is recreated from the frozen image) and bring
the env's Python packages back to the frozen snapshot - unless a shim is still running then.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .. import envconfig, envstate
from ..activations import process_start_time
from ..envconfig import EnvConfig
from . import layout
from .container import ensure_running, stop_container
from .engine import Connection, EngineError, quote_path, use_cfg
from .process import RemoteProcess, exec_body
from .run import (
    exec_failure,
    inside_cwd,
    inside_environ,
    live_sessions,
    start_exec,
)

WATCH_INTERVAL = 1.0


@contextmanager
def _locked(path: str, mode: int) -> Iterator[int]:
    # Read-only: a lock file is made at create, and users other than the owner may use the env.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        os.close(fd)


def _registry_lock(state: layout.StateDir) -> str:
    return os.path.join(state.sessions, ".lock")


def container_of(cfg: EnvConfig) -> str:
    return cfg.get(layout.CFG_CONTAINER) or layout.container_name(cfg.env_dir)


def start(cfg: EnvConfig, shell_pid: int) -> None:
    use_cfg(cfg)
    state = layout.StateDir(cfg.env_dir)
    os.makedirs(state.sessions, exist_ok=True)
    started = process_start_time(shell_pid)
    if not started:
        raise ValueError(f"no process {shell_pid} to attach the session to")
    if envstate.frozen_id(cfg.env_dir):
        with _locked(_registry_lock(state), fcntl.LOCK_EX):
            if not [p for p in live_sessions(state) if p != shell_pid]:
                discard_frozen_changes(cfg, state)
    with _locked(state.lock, fcntl.LOCK_SH):  # a stop in progress completes first
        with _locked(_registry_lock(state), fcntl.LOCK_EX):
            first = not [p for p in live_sessions(state) if p != shell_pid]
            with open(os.path.join(state.sessions, str(shell_pid)), "w", encoding="ascii") as handle:
                handle.write(started + "\n")
        with Connection() as conn:
            ensure_running(conn, container_of(cfg), state)
        if first:
            run_hooks(cfg, "on-activate")
    spawn_watcher(cfg.env_dir)


def stop(cfg: EnvConfig, shell_pid: int, out_fd: int = 1, err_fd: int = 2) -> None:
    use_cfg(cfg)
    state = layout.StateDir(cfg.env_dir)
    with _locked(_registry_lock(state), fcntl.LOCK_EX):
        try:
            os.unlink(os.path.join(state.sessions, str(shell_pid)))
        except FileNotFoundError:
            return  # not registered (already stopped, or never started)
        last = not live_sessions(state)
    if last:
        end(cfg, state, out_fd, err_fd)


def end(cfg: EnvConfig, state: layout.StateDir, out_fd: int = 1, err_fd: int = 2) -> None:
    """The last session is over: deactivation hooks, then stop (unless persistent)."""
    container = container_of(cfg)
    if cfg.get_list("on-deactivate"):
        with _locked(state.lock, fcntl.LOCK_SH):
            with Connection() as conn:
                ensure_running(conn, container, state)
            run_hooks(cfg, "on-deactivate", out_fd, err_fd)
    if cfg.get_bool("persistent"):
        return
    fd = os.open(state.lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a shim is running: it stops the container when it ends
        if not live_sessions(state):
            if envstate.frozen_id(cfg.env_dir):
                _discard(cfg, container)
                return
            with Connection() as conn:
                stop_container(conn, container)
    finally:
        os.close(fd)


def discard_frozen_changes(cfg: EnvConfig, state: layout.StateDir) -> bool:
    """Throw away what changed since the env was frozen, unless a shim runs (then: False)."""
    fd = os.open(state.lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        _discard(cfg, container_of(cfg))
        return True
    finally:
        os.close(fd)


def _discard(cfg: EnvConfig, container: str) -> None:
    """Remove the container (with the usage lock held exclusively) and restore the Python files."""
    with Connection() as conn:
        status, data = conn.request("DELETE", f"/containers/{quote_path(container)}?force=true")
    if status not in (204, 404):
        raise EngineError(f"cannot remove the container {container}: {data.decode(errors='replace')}", status)
    envstate.discard_python_changes(cfg.env_dir, (), layout.PYTHON_EXTRA_PATHS)


def run_hooks(cfg: EnvConfig, key: str, out_fd: int = 1, err_fd: int = 2) -> None:
    """Run the ``on-activate``/``on-deactivate`` commands in order, each with ``sh -c``, as the env's
    user in the current directory. A failing one is reported and the next ones still run."""
    for command in cfg.get_list(key):
        code = run_inside(cfg, ["/bin/sh", "-c", command], out_fd, err_fd)
        if code:
            os.write(err_fd, f"venvroot: {key} command {command!r} failed with exit status {code}\n".encode())


def run_inside(
    cfg: EnvConfig, argv: list[str], out_fd: int = 1, err_fd: int = 2, cwd: str | None = None
) -> int:
    """Run ``argv`` in the (running) container with no stdin; return once it has exited, even if
    something it started in the background keeps running (and its output open). ``cwd``: inside
    path (default: the current directory, mapped)."""
    use_cfg(cfg)
    if cwd is None:
        cwd = inside_cwd(cfg.env_dir, cfg.get_list("directory"), cfg.get_bool(layout.CFG_REMOTE))
    body = exec_body(
        argv,
        env_dir=cfg.env_dir,
        cwd=cwd,
        env=inside_environ(cfg, cwd),
        user=cfg.get(layout.CFG_USER) or f"{os.getuid()}:{os.getgid()}",
        tty=False,
        stdin=False,
    )
    proc = RemoteProcess(container_of(cfg), body, tty=False)
    start_exec(proc, layout.StateDir(cfg.env_dir))
    try:
        return proc.run(None, out_fd, err_fd, wait_for_output=False)
    except EngineError as exc:
        raise exec_failure(exc, proc.container) from None


# -- the watcher: ends the sessions of shells that exited without deactivating ---------------------


def spawn_watcher(env_dir: str) -> None:
    state = layout.StateDir(env_dir)
    try:
        with _locked(state.watcher_lock, fcntl.LOCK_EX | fcntl.LOCK_NB):
            pass  # free: no watcher runs
    except BlockingIOError:
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    code = (
        f"import sys; sys.path.insert(0, {root!r}); "
        "from venvroot.backends.docker.session import watch; watch(sys.argv[1])"
    )
    with open(state.log, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, env_dir],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def watch(env_dir: str) -> None:
    """Loop while sessions exist; end those whose shell is gone. One watcher per env."""
    state = layout.StateDir(env_dir)
    fd = os.open(state.watcher_lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    while True:
        try:
            registered = [int(n) for n in os.listdir(state.sessions) if n.isdigit()]
        except FileNotFoundError:
            return  # the env was destroyed
        if not registered:
            # Hand over cleanly: a shell may register right after we looked.
            fcntl.flock(fd, fcntl.LOCK_UN)
            if not [n for n in os.listdir(state.sessions) if n.isdigit()]:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a newer watcher took over
            continue
        alive = set(live_sessions(state))
        for pid in registered:
            if pid not in alive:
                try:
                    stop(envconfig.read(env_dir), pid, out_fd=1, err_fd=2)
                except Exception as exc:  # keep watching the other shells
                    print(f"{time.ctime()}: ending the session of shell {pid} failed: {exc}", flush=True)
        time.sleep(WATCH_INTERVAL)
