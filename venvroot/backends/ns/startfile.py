"""The start file: the steps the Python starter takes, written down for the compiled one (starter.c).

A shim whose environment is not running starts it. Python alone starts slower than a whole
bubblewrap run, so where venvroot was built with its compiled starter, the shims' sh fragment runs
that first (fastpath.py). It replays ``state/start`` when nothing the steps were made from has
changed since: venvroot.cfg, the env's bin directory (the interpreters bound over shims), the
interpreter list, the generated passwd/group, the host view's plan and the host's mounts it depends
on (hostview.fingerprint); and the brain's interpreter and entry must be there. Otherwise, or on
any error, it exits having changed nothing and the shim takes the Python path, whose start
(coldstart.py) writes the file afresh.

Format: NUL-terminated tokens; each step is ``NAME COUNT ARG...``.
"""

from __future__ import annotations

import os
import sys

from ...shims.marker import ENTRY
from .layout import BRAIN, CFG_SOURCE, State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...ns.spec import Spec
    from ..envconfig import EnvConfig

STARTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "starter")
HEADER = "venvroot-start 1"
DISABLE = "VENVROOT_NO_STARTER"  # set (non-empty) at create: the shims never use the compiled starter


def available() -> bool:
    """Whether this installation has the compiled starter (built with the package when a C compiler
    was there) and it is not turned off."""
    return not os.environ.get(DISABLE) and os.access(STARTER, os.X_OK)


def path(state: State) -> str:
    return state.base + "/start"


def _ident(name: str) -> str:
    """What starter.c compares: inode, mtime in ns and size; "-" for a missing file."""
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return "-"
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def steps(cfg: EnvConfig, state: State, spec: Spec, fragment: str) -> list[tuple[str, ...]] | None:
    """The steps of ``spec``'s start, or None when it needs something only the Python starter does."""
    from ...ns import mounting

    out: list[tuple[str, ...]] = [
        ("euid", str(os.geteuid())),
        ("state", state.base),
        ("hidden", state.hidden),
    ]
    depends = [f"{cfg.env_dir}/venvroot.cfg", f"{cfg.env_dir}/bin", state.python, state.plan]
    depends += [f"{state.base}/passwd", f"{state.base}/group"]
    out.extend(("check", name, _ident(name)) for name in depends)
    if (cfg.get(CFG_SOURCE) or "host") == "host":
        out.extend(_host_view(state))
    if spec.pid or spec.net:
        return None
    if spec.userns:
        out.extend(_ids(spec))
    mounts = spec.mounts
    if mounts and mounts[0].dest == "/":
        first, mounts = mounts[0], mounts[1:]
        if first.kind != "overlay" or first.readonly:
            return None
        out.append(("root-overlay", spec.root, mounting.overlay_options(first.options, spec.userns)))
    else:
        out.append(("root-bind", spec.root))
    together = 0
    for i, m in enumerate(mounts):
        if spec.overlays_together and together == 0:
            together = mounting.independent_overlays(mounts, i)  # as sandbox.py runs them
            if together >= mounting.TOGETHER_FROM:
                out.append(("together", str(together)))
            else:
                together = 0
        together = max(0, together - 1)
        flags = ("r" if m.recursive else "") + ("?" if m.optional else "")
        if m.kind == "bind":
            source = m.source or ""
            flags += ("o" if m.readonly else "") + ("" if os.path.isdir(source) else "f")
            out.append(("mount", "bind", source, m.dest, "", flags))
        elif m.kind == "proc" and not m.readonly:  # no PID namespace: the host's, bound (sandbox.py)
            out.append(("mount", "bind", "/proc", m.dest, "", "r" + flags))
        elif m.kind == "overlay":
            out.append(
                ("mount", "overlay", "", m.dest, mounting.overlay_options(m.options, spec.userns), flags)
            )
        elif m.kind == "tmpfs" and not m.readonly:
            out.append(("mount", "tmpfs", "", m.dest, m.options, flags))
        else:
            return None
    if spec.hostname:
        if "." in spec.hostname:  # a domain name too: the Python starter's
            return None
        out.append(("hostname", spec.hostname))
    out.append(("file", "shim.sh", fragment))
    # Without its brain K would end at once, leaving the program in namespaces nobody holds.
    out.append(("needs", sys.executable, ENTRY))
    out.append(("brain", sys.executable, "-I", "-S", ENTRY, BRAIN, cfg.env_dir))
    return out


def _ids(spec: Spec) -> list[tuple[str, ...]]:
    """The user mapping, as sandbox.enter_namespaces(spec, subids=True) makes it, and what it was
    made from (a range given or taken away makes the file stale)."""
    from ...ns import idmap

    uid = os.geteuid() if spec.uid is None else spec.uid
    gid = os.getegid() if spec.gid is None else spec.gid
    ids = idmap.plan(uid, gid)
    tools = ids.tools or (idmap.HELPER_DIRS[0] + "/newuidmap", idmap.HELPER_DIRS[0] + "/newgidmap")
    out = [("check", name, _ident(name)) for name in (idmap.SUBUID, idmap.SUBGID, *tools)]
    if ids.tools is None:
        return [*out, ("userns", str(uid), str(gid))]
    return [*out, ("idmap", *ids.tools, idmap.text(ids.uids), idmap.text(ids.gids))]


def _host_view(state: State) -> list[tuple[str, ...]]:
    """What the host view's plan depends on (hostview.fingerprint), as starter.c reads it again:
    mount points as mountinfo escapes them."""
    from ...util.hostmounts import RUNTIME_MOUNTS, host_table
    from . import hostview

    entries = hostview.current_plan(state)["entries"]
    points = [_escape(p) for p, _ in host_table() if not hostview.bound_below(p, entries)]
    out: list[tuple[str, ...]] = [
        ("runtime-mounts", *RUNTIME_MOUNTS),
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


def write(state: State, found: list[tuple[str, ...]] | None) -> None:
    """Write the start file (atomically), or remove it when the start cannot be replayed."""
    target = path(state)
    if found is None:
        try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
            os.unlink(target)
        except FileNotFoundError:
            pass
        return
    tokens = [HEADER]
    for name, *args in found:
        tokens += [name, str(len(args)), *args]
    encoded = [t.encode("utf-8", "surrogateescape") for t in tokens]
    if any(b"\0" in t for t in encoded):
        return write(state, None)  # a NUL in a path or option: not representable
    data = b"".join(t + b"\0" for t in encoded)
    tmp = target + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, target)
