"""A session's start as one list of steps: the only input of both starters (starter.c, replay.py).

A shim whose environment is not running starts it. Python alone starts slower than a whole
bubblewrap run, so where venvroot was built with its compiled starter, the shim runs that first
(fastpath.py). It replays ``state/start`` when nothing the steps were made from has changed since:
venvroot.cfg, the env's bin directory (the interpreters bound over shims), the interpreter list, the
generated passwd/group, the host view's plan and the host's mounts it depends on
(hostview.fingerprint); and the brain's interpreter and entry must be there. Otherwise, or on any
error, it exits having changed nothing and the shim takes the Python path (coldstart.py), which
makes the list afresh, writes the file for the next start and replays the same list (replay.py).

Steps, in order (each ``NAME ARG...``; in the file NUL-terminated tokens ``NAME COUNT ARG...``):

- for the compiled starter alone, what the file is still valid for: ``euid``, ``state``,
  ``check PATH IDENT``, ``bound-trees``/``host-mounts``/``listing`` (the host view), ``needs``
  and ``brain`` (what it execs to watch the session);
- the tree, for both: ``hidden DIR``; ``userns UID GID`` or ``idmap NEWUIDMAP NEWGIDMAP UIDS GIDS
  KEEP IDLE`` (rootless; the compiled starter alone joins the user namespace kept in KEEP);
  ``pid`` (a PID namespace of its own: Python only); ``root-overlay ROOT OPTIONS`` or
  ``root-bind ROOT``; ``together N`` (the next N mounts on several threads);
  ``mount KIND SOURCE DEST OPTIONS FLAGS``; ``hostname NAME``; ``domainname NAME``;
  ``file NAME TEXT`` (written in DIR once inside).
"""

from __future__ import annotations

import os
import sys

from ...ns import idmap, mounting
from ...ns.errors import ChrootError
from ...ns.mounts import check_sources
from ...shims.marker import ENTRY
from . import mountplan
from .caller import starter_ids
from .layout import BRAIN, CFG_SOURCE, State

STARTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "starter")
HEADER = "venvroot-start 1"
DISABLE = "VENVROOT_NO_STARTER"  # set (non-empty) at create: the shims never use the compiled starter
IDLE = "VENVROOT_USERNS_IDLE"  # seconds a kept user namespace outlives its last process (0: none kept)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...ns.mounts import Mount
    from ..envconfig import EnvConfig

    Steps = list[tuple[str, ...]]


def available() -> bool:
    """Whether this installation has the compiled starter (built with the package when a C compiler
    was there) and it is not turned off."""
    return not os.environ.get(DISABLE) and os.access(STARTER, os.X_OK)


def path(state: State) -> str:
    return state.base + "/start"


def tree(
    cfg: EnvConfig, state: State, fragment: str, pid: bool = False, who: tuple[int, int] | None = None
) -> Steps:
    """The steps that build the env's namespaces and tree (mountplan.py says what it holds);
    ``who``: the ids inside instead of the starter's (rootless)."""
    root = os.path.realpath(state.root)
    if not os.path.isdir(root):
        raise ChrootError(f"{root} is missing (an incomplete environment); `venvroot reset` makes it again")
    uid, gid = who or starter_ids(cfg)
    userns = os.geteuid() != 0
    out: Steps = [("hidden", state.hidden)]
    if userns:
        out.append(_idmap(uid, gid))
    if pid:
        out.append(("pid",))
    mounts = check_sources(mountplan.mounts(cfg))
    if mounts and mounts[0].dest == "/":
        first, mounts = mounts[0], mounts[1:]
        assert first.kind == "overlay" and not first.readonly, first
        out.append(("root-overlay", root, mounting.overlay_options(first.options, userns)))
    else:
        out.append(("root-bind", root))
    i = 0
    while i < len(mounts):
        run = mounting.independent_overlays(mounts, i)
        if run < mounting.TOGETHER_FROM:
            run = 1
        else:
            out.append(("together", str(run)))
        out.extend(_mount(m, userns, pid) for m in mounts[i : i + run])
        i += run
    hostname = cfg.get("hostname")
    if hostname:
        name, _, domain = hostname.partition(".")
        out.append(("hostname", name))
        if domain:
            out.append(("domainname", domain))
    out.append(("file", "shim.sh", fragment))
    return out


def _mount(m: Mount, userns: bool, pid: bool) -> tuple[str, ...]:
    """One ``mount`` step; FLAGS: r recursive, o read-only, f a file, ? optional."""
    flags = ("r" if m.recursive else "") + ("?" if m.optional else "")
    if m.kind == "bind":
        source = m.source or ""
        flags += ("o" if m.readonly else "") + ("" if os.path.isdir(source) else "f")
        return ("mount", "bind", source, m.dest, "", flags)
    if m.kind == "proc" and not m.readonly:
        if pid:
            return ("mount", "proc", "", m.dest, "", flags)
        return ("mount", "bind", "/proc", m.dest, "", "r" + flags)  # the host's: the same processes
    if m.kind == "overlay":
        return ("mount", "overlay", "", m.dest, mounting.overlay_options(m.options, userns), flags)
    if m.kind == "tmpfs" and not m.readonly:
        return ("mount", "tmpfs", "", m.dest, m.options, flags)
    raise AssertionError(f"mountplan.py made a mount no starter makes: {m!r}")


def _idmap(uid: int | None, gid: int | None) -> tuple[str, ...]:
    """The user mapping: the caller alone, or with its subordinate ids (idmap.py)."""
    found = idmap.plan(os.geteuid() if uid is None else uid, os.getegid() if gid is None else gid)
    if found.tools is None:
        return ("userns", str(found.uids[0][0]), str(found.gids[0][0]))
    uids, gids = idmap.text(found.uids), idmap.text(found.gids)
    return ("idmap", *found.tools, uids, gids, *_kept(uids, gids))


def _kept(uids: str, gids: str) -> tuple[str, str]:
    """Where the compiled starter keeps the user namespace of these maps for the next starts
    (userns.c), and how long it outlives its last process: KEEP IDLE, KEEP "" for none kept."""
    value = os.environ.get(IDLE, "600")
    if not value.isdigit():
        raise ChrootError(f"{IDLE}={value}: not a number of seconds; give a whole number (0: keep none)")
    if value.strip("0") == "":
        return "", "0"
    run = os.environ.get("XDG_RUNTIME_DIR", "")
    mine = run.startswith("/") and os.path.isdir(run) and os.stat(run).st_uid == os.geteuid()
    base = f"{run}/venvroot" if mine else f"{os.environ.get('TMPDIR') or '/tmp'}/venvroot-{os.geteuid()}"
    name = f"userns-{uids}_{gids}".replace(" ", ".")
    return f"{base}/{name}", str(min(int(value), 2**31 - 1))  # the starter's int


def checks(cfg: EnvConfig, state: State) -> Steps:
    """What the compiled starter checks before it replays the file, and how it leaves the brain."""
    out: Steps = [("euid", str(os.geteuid())), ("state", state.base)]
    depends = [f"{cfg.env_dir}/venvroot.cfg", f"{cfg.env_dir}/bin", state.python, state.plan]
    depends += [f"{state.base}/passwd", f"{state.base}/group"]
    if os.geteuid() != 0:  # a range given or taken away changes the user mapping
        tools = [idmap.helper(n) or f"{idmap.HELPER_DIRS[0]}/{n}" for n in ("newuidmap", "newgidmap")]
        depends += [idmap.SUBUID, idmap.SUBGID, *tools]
    out.extend(("check", name, _ident(name)) for name in depends)
    if (cfg.get(CFG_SOURCE) or "host") == "host":
        out.extend(_host_view(state))
    # Without its brain K would end at once, leaving the program in namespaces nobody holds.
    out.append(("needs", sys.executable, ENTRY))
    out.append(("brain", sys.executable, "-I", "-S", ENTRY, BRAIN, cfg.env_dir))
    return out


def _ident(name: str) -> str:
    """What starter.c compares: inode, mtime in ns and size; "-" for a missing file."""
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return "-"
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def _host_view(state: State) -> Steps:
    """What the host view's plan depends on (hostview.fingerprint), as starter.c reads it again:
    mount points as mountinfo escapes them."""
    from ...util.hostmounts import mount_table  # the host view's alone: the other roots skip it
    from . import hostview

    entries = hostview.current_plan(state)["entries"]
    points = [_escape(p) for p, _ in mount_table() if not hostview.bound_below(p, entries)]
    out: Steps = [
        ("bound-trees", *map(_escape, hostview.bound_trees(entries))),
        ("host-mounts", *points),
    ]
    out.extend(("listing", text.rpartition(":")[0], text) for text in hostview.listings(entries))
    return out


def _escape(text: str) -> str:
    """As mountinfo writes a path."""
    for char in "\\ \t\n":
        text = text.replace(char, f"\\{ord(char):03o}")
    return text


def write(state: State, steps: Steps | None) -> None:
    """Write the start file (atomically), or remove it (``None``: the start cannot be replayed)."""
    target = path(state)
    tokens = [HEADER]
    for name, *args in steps or ():
        tokens += [name, str(len(args)), *args]
    encoded = [t.encode("utf-8", "surrogateescape") for t in tokens]
    if steps is None or any(b"\0" in t for t in encoded):  # a NUL in a path or option: not representable
        try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
            os.unlink(target)
        except FileNotFoundError:
            pass
        return
    data = b"".join(t + b"\0" for t in encoded)
    tmp = target + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, target)
