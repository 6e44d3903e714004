"""The ``--pid`` setting: an environment with a PID namespace of its own, its holder as init.

Programs inside then see only the env's processes (``/proc`` is the namespace's own), and ending
the holder ends every one of them: the kernel kills a PID namespace's processes when its init
dies, so nothing of a session outlives its holder, whatever killed it. Processes::

    caller ─ X ─ R: setsid, unshare (PID too), fork ─ H: PID 1 ─ H2: the holder (holder.serve)
             X leaves once R has recorded H    H builds the tree (a fresh /proc needs a process
                                               inside), then only reaps, and ends when H2 does

R stays outside the PID namespace only to reap H the moment it ends; H is what the record names,
what ``stop`` signals and what shims join. A program joins by forking into the namespace
(venvroot/ns/relay.py, the compiled starter's ``--join``): the shim's process stays outside as
its relay. A cold start therefore always goes through Python (no start file is written for these
envs) and then joins like a warm shim; warm shims join through the compiled ``--join``.
"""

from __future__ import annotations

import os

from ...errors import VenvrootError
from . import coldstart, enter, replay, startfile, watch
from .layout import State
from .record import record

try:  # the C half of the signal module (``signal`` imports enum)
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig
    from .startfile import Steps


def start(cfg: EnvConfig, state: State) -> tuple[int, str]:
    """Start the env's namespaces with H as init; return (H's pid, token). The caller holds the
    env's lock exclusively and stays outside."""
    where = f"cannot start the environment {cfg.env_dir}"
    return coldstart.from_a_child(lambda: _start(cfg, state, where), where)


def _start(cfg: EnvConfig, state: State, where: str) -> tuple[int, str]:
    """X: fork R, relay its word."""
    facts = coldstart.holder_facts(cfg)
    try:
        steps = startfile.tree(cfg, state, facts["fragment"], pid=True)
    except VenvrootError as exc:
        raise VenvrootError(f"{where}: {exc}") from None
    token = os.urandom(8).hex()
    state_fd = os.open(state.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    told_r, told_w = os.pipe()
    enter.flush_std()
    if os.fork() == 0:
        try:
            os.close(told_r)
            _reaper(steps, state_fd, token, facts, told_w)
        finally:
            os._exit(0)
    os.close(told_w)
    os.close(state_fd)
    try:
        told = coldstart.read_line(told_r)
    finally:
        os.close(told_r)
    if told.startswith("ok "):
        return int(told[3:]), token
    reason = told[len("error ") :] if told.startswith("error ") else "it ended without a word"
    raise VenvrootError(f"{where}: {reason}")


def _reaper(steps: Steps, state_fd: int, token: str, facts: dict, told_w: int) -> None:
    """R: enter the new namespaces, fork H into the PID one, record it once built, reap it."""
    os.setsid()
    for signum in (_sig.SIGTERM, _sig.SIGINT, _sig.SIGHUP):  # it ends when H does
        _sig.signal(signum, _sig.SIG_IGN)
    try:
        userns = replay.enter(steps)  # the same ids as every other start
    except (OSError, VenvrootError) as exc:
        watch.say(told_w, f"error {exc}\n")
        return
    built_r, built_w = os.pipe()
    init = os.fork()
    if init == 0:
        try:
            os.close(built_r)
            _init(steps, userns, state_fd, token, facts, built_w)
        finally:
            os._exit(1)
    os.close(built_w)
    word = coldstart.read_line(built_r)
    os.close(built_r)
    if word == "built":
        try:
            record(state_fd, init, token)
            word = f"ok {init}"
        except OSError as exc:
            word = f"error its holder could not be recorded: {exc.strerror}"
    if not word.startswith("ok "):
        os.kill(init, _sig.SIGKILL)  # unrecorded, it would let a second start mount the same layers
        os.waitpid(init, 0)  # gone, with its mounts, before the caller tries again
        word = word if word.startswith("error ") else "error its init ended without a word"
    watch.say(told_w, word + "\n")
    coldstart.let_go_of_the_caller()
    os.waitpid(init, 0)


def _init(steps: Steps, userns: bool, state_fd: int, token: str, facts: dict, built_w: int) -> None:
    """H, PID 1: build the tree (a fresh /proc needs a process inside), leave the holder (H2) as
    its child, reap until H2 ends."""
    try:
        replay.build(steps, token, userns)
    except (OSError, VenvrootError) as exc:
        detail = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename else exc
        watch.say(built_w, f"error {detail}\n")
        return
    # An init gets only the signals it has handlers for: a program inside cannot end it. ``stop``
    # (deactivate, reset, destroy) sends SIGTERM from outside; its end ends the namespace.
    _sig.signal(_sig.SIGTERM, lambda *_: os._exit(0))
    _sig.signal(_sig.SIGINT, lambda *_: os._exit(0))
    serving = os.fork()
    if serving == 0:
        os.close(built_w)
        watch.serve(state_fd, token, facts)  # ends through os._exit
    watch.say(built_w, "built\n")
    coldstart.let_go_of_the_caller()
    while True:  # orphans of the namespace are reparented here: reap them all
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if done == serving:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
