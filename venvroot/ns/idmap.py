"""A user namespace's id maps: the caller's own id alone, or with its subordinate ids as well.

Rootless, a process may map only its own uid and gid into a user namespace it made, and must deny
``setgroups`` to map the gid. The setuid helpers ``newuidmap``/``newgidmap`` (Debian: ``uidmap``)
also map the ranges ``/etc/subuid`` and ``/etc/subgid`` give the user, with ``setgroups`` allowed,
so that root inside can ``chown`` and switch to system users (apt's ``_apt``). They must run
outside the new namespace on its process, so a helper is forked before the unshare and runs them
once told (``Mapper``). The compiled starter maps such a namespace once and keeps it for the
next starts (backends/ns/userns.c, from the start file's ``idmap`` step).

Inside id X (the caller's own, or 0 for ``--user root``) is backed by the caller; every other
inside id k below COUNT by the subordinate id START+k. Cold start's path: ``os`` and ``pwd`` only.
"""

from __future__ import annotations

import os
import pwd

SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
HELPER_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")  # never $PATH: a setuid helper is the system's

TYPE_CHECKING = False
if TYPE_CHECKING:
    Lines = list[tuple[int, int, int]]


def helper(name: str) -> str | None:
    for d in HELPER_DIRS:
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return None


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def subordinate(path: str, name: str, owner: int) -> tuple[int, int] | None:
    """The first range (start, count) that ``path`` gives the user ``name`` (or its uid)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (name, str(owner)):
            continue
        if fields[1].isdigit() and fields[2].isdigit() and int(fields[2]) > 0:
            return int(fields[1]), int(fields[2])
    return None


def lines(inside: int, outside: int, sub: tuple[int, int] | None) -> Lines:
    """``inside`` backed by ``outside``; with ``sub`` (start S, count N), every other inside id k
    below N by S+k, so an id's host owner is the same whoever you are inside (S+``inside`` is
    left unused)."""
    if sub is None:
        return [(inside, outside, 1)]
    start, count = sub
    low = min(inside, count)
    out = [(0, start, low)] if low else []
    out.append((inside, outside, 1))
    if count > inside + 1:
        out.append((inside + 1, start + inside + 1, count - inside - 1))
    return out


class IdMap:
    """The uid and gid lines of one namespace; ``full`` when they include subordinate ids."""

    def __init__(self, uids: Lines, gids: Lines, tools: tuple[str, str] | None) -> None:
        self.uids, self.gids, self.tools = uids, gids, tools

    @property
    def full(self) -> bool:
        return self.tools is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and (self.uids, self.gids) == (other.uids, other.gids)


def plan(inside_uid: int, inside_gid: int, subids: bool = True) -> IdMap:
    """The maps for a caller who is ``inside_uid``:``inside_gid`` inside: with its subordinate ids
    when ``subids`` and the user has both ranges and both helpers, else its own ids alone."""
    euid, egid = os.geteuid(), os.getegid()
    if subids:
        tools = helper("newuidmap"), helper("newgidmap")
        name = _user()
        subu, subg = subordinate(SUBUID, name, euid), subordinate(SUBGID, name, euid)
        if tools[0] and tools[1] and subu and subg:
            return IdMap(lines(inside_uid, euid, subu), lines(inside_gid, egid, subg), (tools[0], tools[1]))
    return IdMap(lines(inside_uid, euid, None), lines(inside_gid, egid, None), None)


def cover() -> IdMap:
    """Every host id the user has, mapped: itself as 0, its range S..S+N-1 as 1..N (for work on
    files that root inside an env of any ``--user`` made); its own ids alone without a range."""
    ids = plan(0, 0)
    if ids.tools is None:
        return ids
    name = _user()
    subu = subordinate(SUBUID, name, os.geteuid())
    subg = subordinate(SUBGID, name, os.geteuid())
    assert subu is not None and subg is not None
    return IdMap(
        [(0, os.geteuid(), 1), (1, subu[0], subu[1])],
        [(0, os.getegid(), 1), (1, subg[0], subg[1])],
        ids.tools,
    )


def text(found: Lines) -> str:
    """The lines as ``newuidmap`` takes them (and the start file carries them): space-separated."""
    return " ".join(f"{a} {b} {c}" for a, b, c in found)


def parse(found: str) -> Lines:
    """The lines back from :func:`text`."""
    numbers = [int(n) for n in found.split()]
    return [(numbers[i], numbers[i + 1], numbers[i + 2]) for i in range(0, len(numbers) - 2, 3)]


def missing_range_hint() -> str | None:
    """One line naming what keeps root inside from owning files (no subordinate ids), and the fix;
    None when the user has them (or is root)."""
    if os.geteuid() == 0 or plan(0, 0).full:
        return None
    name = _user()
    tools = [t for t in ("newuidmap", "newgidmap") if helper(t) is None]
    if tools:
        return (
            f"{' and '.join(tools)} {'are' if len(tools) > 1 else 'is'} missing: root inside this "
            "environment cannot chown files or call setgroups (apt-get and dpkg fail); install them "
            "(Debian: `apt-get install uidmap`)"
        )
    top = 100000
    for path in (SUBUID, SUBGID):
        try:
            with open(path) as f:
                for line in f:
                    fields = line.strip().split(":")
                    if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                        top = max(top, int(fields[1]) + int(fields[2]))
        except OSError:
            pass
    span = f"{top}-{top + 65535}"
    return (
        f"{name} has no subordinate ids in {SUBUID} and {SUBGID}: root inside this environment cannot "
        f"chown files or call setgroups (apt-get and dpkg fail); an administrator can add them: "
        f"`usermod --add-subuids {span} --add-subgids {span} {name}`"
    )


def _write(path: str, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


class Mapper:
    """Writes ``ids`` for this process once it has unshared its user namespace. With subordinate
    ids a helper is forked first (it must stay outside), which runs newuidmap and newgidmap on this
    process when ``map()`` tells it to; ``cancel()`` when the unshare failed."""

    def __init__(self, ids: IdMap) -> None:
        self.ids = ids
        self.pid = self.tell = -1
        if ids.tools is None:
            return
        wait, self.tell = os.pipe()
        target = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the helper: outside, until the word comes
            status = 1
            try:
                os.close(self.tell)
                if os.read(wait, 1) == b"m":
                    status = _run([ids.tools[0], str(target), *text(ids.uids).split()])
                    if status == 0:
                        status = _run([ids.tools[1], str(target), *text(ids.gids).split()])
            finally:
                os._exit(status)
        os.close(wait)

    def cancel(self) -> None:
        if self.pid > 0:
            os.close(self.tell)
            os.waitpid(self.pid, 0)

    def map(self) -> None:
        if self.pid < 0:
            (uid, outside, _), (gid, outside_gid, _) = self.ids.uids[0], self.ids.gids[0]
            _write("/proc/self/uid_map", f"{uid} {outside} 1\n")
            _write("/proc/self/setgroups", "deny\n")
            _write("/proc/self/gid_map", f"{gid} {outside_gid} 1\n")
            return
        os.write(self.tell, b"m")
        os.close(self.tell)
        _, status = os.waitpid(self.pid, 0)
        if status != 0:
            raise PermissionError(1, "newuidmap or newgidmap refused the subordinate ids (see above)")


def _run(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
