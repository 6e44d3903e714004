"""Starting an environment's namespaces in this very process, and leaving a holder behind in them.

On the shims' cold path (the env's namespaces are not running): builtins, the C half of modules and
venvroot's light ones only. The process that starts the namespaces is the one that then becomes
the program: no helper process to talk to, no second entry into the namespaces::

    starter: the start's steps (replay.py)       ─ fork ─ A: setsid ─ fork ─ R ─ fork ─ holder
                                                               A leaves at once; R records the
                                                               holder, then only waits to reap it
    starter: waits for R's word, then execve(program) where it stands (run.py)

A leaves the holder in a session of its own and never the program's child (a shell program's
``wait`` must not wait for it); R records it, so a starter killed meanwhile never leaves an
unrecorded holder behind (a second one would mount the same writable layers), and reaps it the
moment it ends, whatever the init of the machine does with orphans. The holder closes
everything it inherited (the starter's lock above all: a flock belongs to the open file
description, so a copy of the descriptor would keep the lock) and opens what it needs afresh
through a descriptor of the state directory, taken before the root covered it. The caller holds the
env's lock exclusively throughout, so the holder is recorded before anyone else looks.

Mount points must exist before the start (create and reset make them, see mountplan.py): one that
is missing is made in the root and kept, since no process outside is left to remove it. The
start's steps are made here afresh (startfile.tree), written down for the compiled starter's next
start, and carried out by replay.py.
"""

from __future__ import annotations

import os

from ...errors import VenvrootError
from . import enter, fastpath, replay, startfile, watch
from .caller import inside_environ, switch_ids
from .layout import LINGER, State
from .record import record

try:  # the C half of the signal module (``signal`` imports enum)
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..envconfig import EnvConfig


def start_here(cfg: EnvConfig, state: State, inside: Callable[[], object] | None = None) -> tuple[int, str]:
    """Build the env's namespaces in this process and move into its root (cwd ``/``), leaving the
    holder in them, recorded in ``state.holder``; return (holder pid, token). ``inside`` runs in
    the root just before the holder is forked (the namespaces end with this process if it raises).
    The caller holds the env's lock exclusively. As root, this process keeps root's ids (the
    program's are switched to just before it runs); rootless, its user namespace maps the caller
    as ``--user`` says."""
    where = f"cannot start the environment {cfg.env_dir}"
    try:
        facts = holder_facts(cfg)
        steps = startfile.tree(cfg, state, facts["fragment"])
        token = os.urandom(8).hex()
        state_fd = os.open(state.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if startfile.available():  # for the next start, written down before anything can change
            try:  # noqa: SIM105 - a cache: without it the next start is this one again
                startfile.write(state, startfile.checks(cfg, state) + steps)
            except OSError:
                pass
    except VenvrootError as exc:
        raise VenvrootError(f"{where}: {exc}") from None
    except OSError as exc:
        raise VenvrootError(f"{where}: {exc.strerror}: {exc.filename}") from None
    try:
        try:
            replay.build(steps, token, replay.enter(steps))
        except VenvrootError as exc:
            raise VenvrootError(f"{where}: {exc}") from None
        except OSError as exc:
            detail = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror or exc)
            raise VenvrootError(f"{where}: {detail}") from None
        if inside is not None:
            inside()  # before the fork: afterwards every page it touched would be copied first
        try:
            return leave_holder(state_fd, token, facts), token
        except VenvrootError as exc:
            raise VenvrootError(f"{where}: {exc}") from None
    finally:
        os.close(state_fd)


def run_apart(
    cfg: EnvConfig, state: State, argv: list[str], cwd: str, as_root: bool, output: tuple[int, int]
) -> int:
    """Run ``argv`` in ``cwd`` in namespaces of its own, built from the env's start steps, which end
    with it (create looks into the root so: nothing else runs there yet), its stdout and stderr on
    ``output``; return its status. ``as_root``: as root inside, whatever ``--user`` says."""
    # its files (the shims' fragment) and a marker serve only shims that join, and none will
    steps = [s for s in startfile.tree(cfg, state, "", who=(0, 0) if as_root else None) if s[0] != "file"]
    environ = inside_environ(cfg, cwd)
    ids = None if as_root else switch_ids(cfg)

    def program() -> None:
        replay.build(steps, None, replay.enter(steps))
        enter.become(argv, environ, cwd, ids)

    return enter.in_child(program, None, *output)


def start(cfg: EnvConfig, state: State) -> tuple[int, str]:
    """Start the env's namespaces from a process that stays outside them (management: hooks); the
    caller holds the lock exclusively. A child builds them, leaves the holder and exits."""
    return from_a_child(lambda: start_here(cfg, state), f"cannot start the environment {cfg.env_dir}")


def from_a_child(work: Callable[[], tuple[int, str]], where: str) -> tuple[int, str]:
    """Run ``work`` (it enters namespaces, which cannot be undone) in a child that exits after;
    return the (holder pid, token) it returns, or raise what it raised, as a VenvrootError."""
    read_fd, write_fd = os.pipe()
    enter.flush_std()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            try:
                found = work()
                watch.say(write_fd, f"ready {found[0]} {found[1]}\n")
            except BaseException as exc:
                watch.say(write_fd, f"error {exc}\n")
        finally:
            os._exit(0)
    os.close(write_fd)
    message = read_line(read_fd)
    os.close(read_fd)
    os.waitpid(pid, 0)
    words = message.split()
    if len(words) == 3 and words[0] == "ready" and words[1].isdigit():
        return int(words[1]), words[2]
    if message.startswith("error "):
        raise VenvrootError(message[len("error ") :])
    raise VenvrootError(f"{where}: it ended without a word")


def read_line(fd: int) -> str:
    """One line a child says on ``fd`` (up to end of file), stripped."""
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks).decode("utf-8", "replace").strip()


def let_go_of_the_caller() -> None:
    """Keep nothing of the starter's open: its lock above all, and pipes a caller reads to EOF."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 65536)


def holder_facts(cfg: EnvConfig) -> dict:
    """What the holder needs to know: the inside shim fragment, hooks, lifetime, and how hooks run."""
    project = os.path.dirname(cfg.env_dir)
    return {
        "hidden": State(cfg.env_dir).hidden,
        "fragment": fastpath.inside_fragment(cfg),
        "on_deactivate": cfg.get_list("on-deactivate"),
        "persistent": cfg.get_bool("persistent"),
        "linger": LINGER,
        "environ": inside_environ(cfg, project),
        "cwd": project,
        "ids": switch_ids(cfg),
    }


def leave_holder(state_fd: int, token: str, facts: dict) -> int:
    """Fork A, which forks R, which forks the holder and records it; return the holder's pid. A
    leaves at once; R stays as the holder's parent, only to reap it the moment it ends (an init may
    take seconds to reap an orphan, and the holder's pid would linger meanwhile)."""
    told_r, told_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # A: leaves at once, through os._exit, whatever happens
        try:
            os.setsid()
            if os.fork() == 0:
                _reaper(state_fd, token, facts, told_w)
        finally:
            os._exit(0)
    os.close(told_w)
    try:
        os.waitpid(pid, 0)
        told = os.read(told_r, 64).split()
    finally:
        os.close(told_r)
    if len(told) == 2 and told[0] == b"ok":
        return int(told[1])
    reason = os.strerror(int(told[1])) if len(told) == 2 and told[1].isdigit() else "it could not be forked"
    raise VenvrootError(f"its holder could not be recorded: {reason}")


def _reaper(state_fd: int, token: str, facts: dict, told_w: int) -> None:
    """R: fork the holder, record it, tell the starter, then wait for the holder to end."""
    try:
        for signum in (_sig.SIGTERM, _sig.SIGINT, _sig.SIGHUP):  # it ends when the holder does
            _sig.signal(signum, _sig.SIG_IGN)
        held = os.fork()
        if held == 0:
            try:
                watch.serve(state_fd, token, facts)
            finally:
                os._exit(0)
        try:
            record(state_fd, held, token)
            told = f"ok {held}"
        except OSError as exc:
            os.kill(held, 9)  # unrecorded, it would let a second holder mount the same layers
            told = f"error {exc.errno}"
        os.write(told_w, told.encode())
        let_go_of_the_caller()
        os.waitpid(held, 0)
    finally:
        os._exit(0)
