"""The holder: one process that keeps an environment's namespaces (and so its mounts) alive.

Every program of an environment runs in the holder's namespaces: shims join them (``nsenter`` from
the shim's sh fragment, or :func:`join` from Python), nothing mounts the env's writable layers a
second time. Two mounts of one overlay upper directory at once are undefined behaviour (the kernel
says so, and a mount cleans the work directory the other is using), and building the
host view costs one overlay per host directory (about half a millisecond each, to mount and to
tear down), so the namespaces are built once and shared.

Processes (coldstart.py)::

    starter (a shim, `venvroot run`) ── builds the namespaces ─ A ─ R ─ holder (inside)
       └── becomes the program, inside          A leaves at once; R records the holder and waits
                                                only to reap it

The starter builds the namespaces in its own process, leaves the holder in them (in a session of
its own, neither the program's child nor its parent) and becomes the program. Management (hooks)
starts them through :func:`start`: a child of its own does the same and exits once the holder is
recorded. The starter creates the liveness marker ``<env>/.venvroot/live-TOKEN`` inside (a shim
checks it through ``/proc/PID/root``, so a reused pid is never mistaken for the holder). The holder
ends itself, when the env is not persistent, once no activated shell is left and nothing runs
inside for ``LINGER`` seconds; when every activated shell died without deactivating (a closed
terminal) it runs the on-deactivate commands and, unless the env is persistent, ends everything
inside. Either way it forgets its own record through a descriptor of the state directory (covered
inside the root) taken before the root was built; anything else it has to say goes to
``holder.log``. ``stop`` ends it from outside (deactivate, reset, destroy): every process whose
mount namespace is the holder's is terminated, then killed.

A compiled start (starter.c) leaves K, a C process that only anchors the namespaces, as the recorded
holder, and its parent, the brain (brain.py), runs :func:`watch` from outside them: :class:`Place`
is where the watch stands.

Locking (``state/lock``): shims hold it shared while they join; starting and stopping take it
exclusively, and so does the holder before it ends itself.
"""

from __future__ import annotations

import fcntl
import os
import select
import sys
import time

from ...errors import VenvrootError
from ..activations import live, process_start_time, read_head
from .layout import MARKER_PREFIX, State, read_holder
from .processes import holding, kill, members, terminate

try:  # the C half of the signal module (``signal`` imports enum); the holder needs it inside
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class Lock:
    """flock on ``state/lock``; released when the process execs (close-on-exec) or on ``close``."""

    def __init__(self, state: State) -> None:
        try:
            self.fd = os.open(state.lock, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise VenvrootError(
                f"{state.env_dir} is not a complete ns environment ({state.lock} is missing); recreate it"
            ) from None

    def shared(self) -> Lock:
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        return self

    def exclusive(self) -> Lock:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def live_shells(state: State) -> list[int]:
    """Pids of the activated shells still alive (a pid reused by another process does not count)."""
    return live(state.shells)


def forget_dead_shells(state: State) -> None:
    """Remove the registrations of shells that are gone (or were deactivated)."""
    alive = set(live_shells(state))
    for name in os.listdir(state.shells):
        if name.isdigit() and int(name) not in alive:
            _remove(os.path.join(state.shells, name))


# -- starting ------------------------------------------------------------------------------------------


def running(state: State, lock: Lock) -> tuple[int, str] | None:
    """The live holder of the env (``lock`` then held shared, so it cannot end before the caller
    has joined), or None with ``lock`` held exclusively: the caller starts the namespaces."""
    lock.shared()
    found = read_holder(state)
    if found is not None:
        return found
    lock.exclusive()  # drops the shared lock first, so two starters cannot deadlock
    return read_holder(state)


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def record(state_fd: int, pid: int, token: str) -> None:
    """Write the holder's record (``state_fd``: the state directory, wherever this process is)."""
    fd = os.open("holder.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644, dir_fd=state_fd)
    try:
        os.write(fd, f"{pid} {token}\n".encode())
    finally:
        os.close(fd)
    os.replace("holder.tmp", "holder", src_dir_fd=state_fd, dst_dir_fd=state_fd)


def recorded(state_fd: int, token: str) -> int | None:
    """The pid in the holder's record if the record is the one of ``token``."""
    try:
        words = read_head("holder", 256, dir_fd=state_fd).split()
    except OSError:
        return None
    if len(words) == 2 and words[1] == token.encode() and words[0].isdigit():
        return int(words[0])
    return None


def _forget_record(state_fd: int, token: str) -> None:
    if recorded(state_fd, token) is not None:
        _remove("holder", state_fd)


def say(fd: int, text: str) -> None:
    try:  # noqa: SIM105 - the reader may be gone
        os.write(fd, text.encode("utf-8", "replace"))
    except OSError:
        pass


# -- the holder itself (inside the root) ---------------------------------------------------------------


def serve(state_fd: int, token: str, facts: dict) -> None:
    """The holder, forked inside the root by the starter (coldstart.py); ends through os._exit.
    ``state_fd`` is the state directory (covered in here), ``facts`` coldstart.holder_facts's."""
    code = 0
    try:
        lock_fd = os.open("lock", os.O_RDWR | os.O_CLOEXEC, dir_fd=state_fd)  # a lock of its own
        shells_fd = os.open("shells", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=state_fd)
        append = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        log = os.open("holder.log", append, 0o644, dir_fd=state_fd)
        _detach(log, (state_fd, lock_fd, shells_fd))
        place = Inside(facts)
        try:
            watch(state_fd, lock_fd, shells_fd, token, facts, place)
        except BaseException as exc:
            code = 1
            give_up(state_fd, lock_fd, token, place, exc)
    finally:
        os._exit(code)


def give_up(state_fd: int, lock_fd: int, token: str, place: Place, exc: BaseException) -> None:
    """After a failed watch: say why in the log, end the session's programs (unwatched, they
    would outlive their holder), and close the env to newcomers (marker, record)."""
    say(2, f"venvroot: the holder ended: {type(exc).__name__}: {exc}\n")
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    terminate(place.ns, own=True, spare=place.spare)
    _remove(place.marker(token), place.hidden_fd)
    _forget_record(state_fd, token)


class Place:
    """Where :func:`watch` stands: the namespaces' mount namespace ``ns``, a process in it that is
    not a program (``spare``), the hidden directory inside, and descriptors that wake it."""

    ns: int
    spare: int
    hidden_fd: int
    wake: list[int]

    @staticmethod
    def marker(token: str) -> str:
        return MARKER_PREFIX + token

    def gone(self) -> bool:
        """Whether the namespaces ended under it."""
        return False

    def run(self, command: str, facts: dict) -> int:
        """Run an on-deactivate command with ``sh -c`` inside; its status."""
        raise NotImplementedError


class Inside(Place):
    """Where the holder watches from: inside the root, in the namespaces it keeps alive. Its parent
    is R (coldstart.py), which only waits to reap it."""

    def __init__(self, facts: dict) -> None:
        self.ns = os.stat("/proc/self/ns/mnt").st_ino
        self.spare = os.getppid()  # R: not a program of the env
        self.hidden_fd = os.open(facts["hidden"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.wake: list[int] = []  # nothing to learn from: this process keeps the namespaces

    def run(self, command: str, facts: dict) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                os.chdir(facts["cwd"])
                for s in (_sig.SIGTERM, _sig.SIGINT, _sig.SIGHUP, _sig.SIGPIPE):
                    _sig.signal(s, _sig.SIG_DFL)
                if facts["ids"] is not None:  # as root with --user: the holder itself stays root
                    uid, gid = facts["ids"]
                    os.setgroups([gid])
                    os.setgid(gid)
                    os.setuid(uid)
                os.execve("/bin/sh", ["sh", "-c", command], facts["environ"])
            except OSError as exc:
                os.write(
                    2,
                    f"venvroot: cannot run the on-deactivate command {command!r}: {exc.strerror}\n".encode(),
                )
            os._exit(127)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)


def _detach(log: int, keep: tuple[int, ...]) -> None:
    """stdin from /dev/null, stdout and stderr to the log, no other descriptor of the starter's
    (its lock, pipes a caller waits on) left open; default signals, none blocked."""
    try:
        null = os.open("/dev/null", os.O_RDWR)
    except OSError:
        null = os.open(".", os.O_RDONLY | os.O_DIRECTORY)  # a root without /dev/null: never read
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)
    _sig.pthread_sigmask(_sig.SIG_SETMASK, ())
    # Stopped from outside (deactivate, reset, destroy): whoever stops it cleans up.
    _sig.signal(_sig.SIGTERM, lambda *_: os._exit(0))
    _sig.signal(_sig.SIGINT, lambda *_: os._exit(0))
    _sig.signal(_sig.SIGHUP, _sig.SIG_IGN)


def watch(state_fd: int, lock_fd: int, shells_fd: int, token: str, facts: dict, place: Place) -> None:
    """Watch the activated shells and what runs inside; return once the namespaces may end (or,
    seen from outside, have ended). ``place``: where this process stands (:class:`Inside`, or
    brain.Outside)."""
    marker = place.marker(token)
    watcher = _Watcher(shells_fd)
    idle_since: float | None = None
    while True:
        ended = watcher.poll(0.25 if idle_since is not None else 1.0, place.wake)
        if place.gone():  # killed from outside: programs still inside keep the record for adoption
            if not members(place.ns, first_only=True):
                _forget_record(state_fd, token)
            return
        if ended:  # every activated shell is gone without deactivating (a closed terminal)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                if watcher.live():  # one activated meanwhile
                    continue
                for command in facts["on_deactivate"]:
                    code = place.run(command, facts)
                    if code:
                        say(
                            2, f"venvroot: on-deactivate command {command!r} failed with exit status {code}\n"
                        )
                if facts["persistent"]:
                    continue
                _remove(marker, place.hidden_fd)
                _forget_record(state_fd, token)
                terminate(place.ns, own=True, spare=place.spare)
                return
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
        if facts["persistent"] or watcher.live() or _others_in(place):
            idle_since = None
            continue
        now = time.monotonic()
        if idle_since is None:
            idle_since = now
        if now - idle_since < facts["linger"]:
            continue
        if _end_if_idle(state_fd, lock_fd, token, place, watcher):
            return
        idle_since = None


def _end_if_idle(state_fd: int, lock_fd: int, token: str, place: Place, watcher: _Watcher) -> bool:
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a shim is joining, or a start/stop runs
    marker = place.marker(token)
    try:
        if watcher.live() or _others_in(place):
            return False
        # Closed to newcomers first; a shim that saw the marker just before joins within moments.
        _remove(marker, place.hidden_fd)
        time.sleep(0.05)
        if _others_in(place):
            # (never through a symlink planted there: the holder may be root)
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(marker, flags, 0o644, dir_fd=place.hidden_fd))
            return False
        _forget_record(state_fd, token)
        return True
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def _others_in(place: Place) -> bool:
    return bool(members(place.ns, first_only=True, spare=place.spare))


def _remove(path: str, dir_fd: int | None = None) -> None:
    try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
        os.unlink(path, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


class _Watcher:
    """The activated shells (``shells/PID`` files): pidfds to learn at once when one dies."""

    def __init__(self, shells_fd: int) -> None:
        self.shells_fd = shells_fd
        self.watched: dict[int, int] = {}  # pid -> pidfd

    def _registered(self) -> dict[int, str]:
        out = {}
        for name in os.listdir(self.shells_fd):
            if not name.isdigit():
                continue
            try:
                text = read_head(name, 64, dir_fd=self.shells_fd).decode("utf-8", "replace").strip()
            except OSError:
                continue
            if text:
                out[int(name)] = text
        return out

    def poll(self, timeout: float, wake: list[int]) -> bool:
        """Wait up to ``timeout`` (less if one of ``wake`` becomes readable); True when a watched
        shell died and no watched shell is left."""
        registered = self._registered()
        for pid in list(self.watched):
            if pid not in registered:  # deactivated
                os.close(self.watched.pop(pid))
        for pid, started in registered.items():
            if pid in self.watched:
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                fd = -1
            if fd >= 0 and process_start_time(pid) == started:
                self.watched[pid] = fd
                continue
            if fd >= 0:
                os.close(fd)
            self._forget(pid)  # gone before it was watched: a stale registration
        ready, _, _ = select.select([*self.watched.values(), *wake], [], [], timeout)
        ready = [fd for fd in ready if fd not in wake]
        for fd in ready:
            pid = next(p for p, f in self.watched.items() if f == fd)
            os.close(self.watched.pop(pid))
            self._forget(pid)
        return bool(ready) and not self.watched

    def _forget(self, pid: int) -> None:
        try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
            os.unlink(str(pid), dir_fd=self.shells_fd)
        except OSError:
            pass

    def live(self) -> bool:
        return any(process_start_time(pid) == started for pid, started in self._registered().items())


# -- stopping from outside -----------------------------------------------------------------------------


def stop(state: State, lock: Lock | None = None) -> bool:
    """End the env's namespaces and everything in them. Returns whether a holder was running.
    Takes the lock exclusively unless the caller passes one it holds."""
    own = lock is None
    lock = lock or Lock(state).exclusive()
    try:
        found = read_holder(state)
        stopped = False
        namespaces = set()
        if found is not None:
            pid, token = found
            try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
                namespaces.add(os.stat(f"/proc/{pid}/ns/mnt").st_ino)
            except OSError:
                pass
            _remove(f"/proc/{pid}/root{state.hidden}/{MARKER_PREFIX}{token}")
            stopped = True
        namespaces |= set(holding(state))  # with a holder that died (survivors.py)
        if found is not None:
            kill(found[0], _sig.SIGTERM)
        for ns in namespaces:
            terminate(ns)
        _remove(state.holder)  # last: a stop killed on the way leaves the record for the next start
        return stopped
    finally:
        if own:
            lock.close()


# -- joining -------------------------------------------------------------------------------------------


def join(
    holder: int, argv: list[str], env: Mapping[str, str], cwd: str, ids: tuple[int, int] | None = None
) -> None:
    """Replace this process with ``argv`` inside the holder's namespaces, in ``cwd`` (inside).
    ``ids``: switch to this uid/gid after joining (as root with --user; rootless the user
    namespace maps the ids already)."""
    if ids is None:
        from venvroot.ns import join_command

        join_command(holder, argv, env=env, cwd=cwd)
    from venvroot.ns import relay, seccomp, syscalls

    fds = []
    try:
        order = [("mnt", syscalls.CLONE_NEWNS), ("uts", syscalls.CLONE_NEWUTS)]
        order.append(("ipc", syscalls.CLONE_NEWIPC))
        own_pid = relay.other_pid_namespace(holder)
        if own_pid:  # --pid (pidns.py)
            order.append(("pid", syscalls.CLONE_NEWPID))
        for name, flag in order:  # all opened first: joining the mount namespace hides /proc/<holder>
            fds.append((flag, os.open(f"/proc/{holder}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        for flag, fd in fds:
            syscalls.setns(fd, flag)
        seccomp.deny_tty_injection()
    except OSError as exc:
        raise VenvrootError(f"cannot join the namespaces of process {holder}: {exc.strerror}") from None
    finally:
        for _, fd in fds:
            os.close(fd)
    if own_pid:
        relay.fork_in()
        take_ids(ids)
        relay.die_with_relay()  # after the ids: changing them clears it
        ids = None
    become(argv, env, cwd, ids)


def become(argv: list[str], env: Mapping[str, str], cwd: str, ids: tuple[int, int] | None) -> None:
    """In the env's namespaces already: go to ``cwd``, take ``ids`` (uid, gid) if given, and
    replace this process with ``argv``."""
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise VenvrootError(
            f"cannot change directory to {cwd} inside the environment: {exc.strerror}"
        ) from None
    take_ids(ids)
    for s in (_sig.SIGPIPE, getattr(_sig, "SIGXFSZ", _sig.SIGPIPE)):
        _sig.signal(s, _sig.SIG_DFL)
    flush_std()
    _execvpe(argv, env)


def take_ids(ids: tuple[int, int] | None) -> None:
    """Switch to ``ids`` (uid, gid), if given, with no supplementary group but that gid."""
    if ids is None:
        return
    uid, gid = ids
    try:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise VenvrootError(
            f"cannot run as uid {uid} gid {gid} inside: {exc.strerror} (root without CAP_SYS_ADMIN "
            "can map only itself into the environment; give it CAP_SYS_ADMIN, or run as that user)"
        ) from None


SHIM_MARK = b"\n# venvroot shim:"  # the second line of every shim (shims/shim.tmpl)


def past_shim(argv: list[str], env: Mapping[str, str], shims: str, root: str = "") -> list[str]:
    """``argv`` with the program to run. Found first in the env's bin (``shims``), a program name is
    a shim there that only runs the name from the rest of PATH, the root's own
    (fastpath.inside_fragment): go there directly, as the sh fast path does, with one exec of sh
    fewer. ``root``: where the env's root is seen from here ("" from inside)."""
    name = argv[0]
    path = (env.get("PATH") or "").split(":")
    if "/" in name or path[0] != shims:
        return argv
    try:
        head = read_head(f"{root}{shims}/{name}", 128)
    except OSError:
        return argv
    if not head.startswith(b"#!") or SHIM_MARK not in head:
        return argv  # the program itself (the env's interpreter, a script pip wrote...)
    for directory in path[1:]:
        candidate = f"{root}{directory}/{name}"
        if directory and directory != shims and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [f"{directory}/{name}", *argv[1:]]
    return argv  # nowhere: the shim says so


def _execvpe(argv: list[str], env: Mapping[str, str]) -> None:
    """os.execvpe without its lazy imports (inside, the standard library may be missing)."""
    name = argv[0]
    error: OSError = FileNotFoundError(2, "No such file or directory")
    try:
        if "/" in name:
            os.execve(name, argv, env)
        for directory in (env.get("PATH") or os.defpath).split(":"):
            try:
                os.execve(os.path.join(directory or ".", name), argv, env)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                error = exc
    except OSError as exc:
        error = exc
    missing = isinstance(error, (FileNotFoundError, NotADirectoryError))
    os.write(2, f"venvroot: cannot run {name!r} inside the environment: {error.strerror}\n".encode())
    os._exit(127 if missing else 126)


def run_inside(
    holder: int, argv: list[str], cwd: str, env: Mapping[str, str], ids: tuple[int, int] | None,
    stdin: int | None = None, stdout: int | None = None, stderr: int | None = None,
) -> int:  # fmt: skip
    """Run ``argv`` in the holder's namespaces as a child of this process; return its status."""
    pid = os.fork()
    if pid == 0:
        try:
            for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
                if fd is not None:
                    os.dup2(fd, target)
            join(holder, argv, env, cwd, ids)
        except BaseException as exc:
            os.write(2, f"venvroot: {exc}\n".encode())
        os._exit(127)
    _, status = os.waitpid(pid, 0)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
