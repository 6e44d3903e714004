"""The holder's watch: the activated shells and what runs inside, the on-deactivate commands, and
the end of the namespaces once nothing needs them (from inside, :class:`Inside`, or from the brain).

The holder (see holder.py) is forked inside the root by the starter and runs :func:`serve`.
"""

from __future__ import annotations

import fcntl
import os
import select
import time

from ..activations import process_start_time, read_head
from .processes import members, terminate
from .record import forget_record, marker, remove

try:  # the C half of the signal module (``signal`` imports enum); the holder needs it inside
    import _signal as _sig
except ImportError:  # pragma: no cover
    import signal as _sig


def say(fd: int, text: str) -> None:
    try:  # noqa: SIM105 - the reader may be gone
        os.write(fd, text.encode("utf-8", "replace"))
    except OSError:
        pass


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
    remove(marker(token), place.hidden_fd)
    forget_record(state_fd, token)


class Place:
    """Where :func:`watch` stands: the namespaces' mount namespace ``ns``, a process in it that is
    not a program (``spare``), the hidden directory inside, and descriptors that wake it."""

    ns: int
    spare: int
    hidden_fd: int
    wake: list[int]

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
    watcher = _Watcher(shells_fd)
    idle_since: float | None = None
    while True:
        ended = watcher.poll(0.25 if idle_since is not None else 1.0, place.wake)
        if place.gone():  # killed from outside: programs still inside keep the record for adoption
            if not members(place.ns, first_only=True):
                forget_record(state_fd, token)
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
                remove(marker(token), place.hidden_fd)
                forget_record(state_fd, token)
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
    try:
        return not watcher.live() and _close_if_empty(state_fd, token, place)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def _close_if_empty(state_fd: int, token: str, place: Place) -> bool:
    """With the lock held: when no program is inside, close the env to newcomers (marker, then
    record) and say so; a shim that saw the marker just before joins within moments."""
    if _others_in(place):
        return False
    mark = marker(token)
    remove(mark, place.hidden_fd)
    time.sleep(0.05)
    if _others_in(place):
        # (never through a symlink planted there: the holder may be root)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(mark, flags, 0o644, dir_fd=place.hidden_fd))
        return False
    forget_record(state_fd, token)
    return True


def _others_in(place: Place) -> bool:
    return bool(members(place.ns, first_only=True, spare=place.spare))


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
