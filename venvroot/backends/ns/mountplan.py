"""The environment's tree, in the order it is mounted (bubblewrap-style: one place), as Mount values.

startfile.tree turns this list into the start's steps, which both starters carry out.

1. the root: the host view's skeleton with ``/r`` first (so that ``/r`` copies only the host's
   own mounts) and then one entry per host directory (hostview.py), the overlays before the
   read-only binds; or, for a directory, tarball or image, one overlay of the pristine lower layer
   with the env's writable layer, then ``/r``;
2. kernel interfaces: the host's /proc (read-only /proc/sys as root), /sys read-only, the host's
   /dev with a private /dev/shm; the host view's private /tmp where its /tmp cannot be overlaid
   (hostview.py); the host's resolv.conf for other roots;
3. the mappings: the project directory (which holds the env) read-write at its own path, then each
   ``--directory``;
4. the env's interpreter over ``<env>/bin/python*`` (those are shims on the host);
5. generated passwd/group files, only where /etc has no writable layer to hold them;
6. a small tmpfs over ``<env>/.venvroot``: the env's state is out of reach inside; the starter puts
   the holder's liveness marker and the inside shim fragment there (coldstart.py).

Every mount point exists before a start (made at create and reset, see backend.py): a starter
then never has to create, and later remove, anything in the root.
"""

from __future__ import annotations

import os

from ...ns.mounts import Mount
from .caller import starter_ids
from .layout import CFG_LOWER, CFG_SOURCE, State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig
    from ..mapping import DirectoryMapping


def python_binds(state: State) -> list[tuple[str, str]]:
    """(name in <env>/bin, host path of the real interpreter) for each interpreter name."""
    try:
        with open(state.python, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    return [(name, source) for name, _, source in (line.partition("\t") for line in lines) if source]


def mounts(cfg: EnvConfig) -> list[Mount]:
    state = State(cfg.env_dir)
    source = cfg.get(CFG_SOURCE) or "host"
    rootless = os.geteuid() != 0
    out: list[Mount] = []
    if source == "host":
        from . import hostview  # not needed for the other sources: not imported for them

        plan = hostview.current_plan(state)
        out.append(Mount.rbind("/", "/r", readonly=True))
        binds = []
        for entry in plan["entries"]:
            kind, dest = entry["kind"], entry["dest"]
            if kind == "overlay":
                upper, work = state.layer(dest)
                out.append(Mount.overlay(dest, dest, upper, work))
            elif kind == "upper":
                binds.append(Mount.bind(state.layer(dest)[0], dest))
            elif kind == "rbind":
                binds.append(Mount.rbind(dest, dest, readonly=True))
            elif kind == "bind":
                binds.append(Mount.bind(dest, dest, readonly=True, optional=True))
        # The binds after every overlay (none holds an overlay; one may lie inside one, which then
        # still comes first): the overlays form long runs, mounted on several threads (``together``).
        out.extend(binds)
        if not hostview.tmp_overlaid(plan):
            out.append(Mount.bind(state.tmp, "/tmp"))
    else:
        out.append(Mount.overlay("/", cfg.get(CFG_LOWER) or state.lower, state.upper, state.work))
        out.append(Mount.rbind("/", "/r", readonly=True))
        if os.path.exists("/etc/resolv.conf"):
            out.append(Mount.bind("/etc/resolv.conf", readonly=True, optional=True))
    out.append(Mount.proc())
    if not rootless:  # root inside is the host's root: keep the kernel's knobs out of reach
        out.append(Mount.bind("/proc/sys", readonly=True, recursive=True))
        out.append(Mount.bind("/proc/sysrq-trigger", readonly=True, optional=True))
    out.append(Mount.rbind("/sys", readonly=True))
    out.append(Mount.rbind("/dev"))
    out.append(Mount.tmpfs("/dev/shm", options="mode=1777"))
    project = os.path.dirname(cfg.env_dir)
    out.append(Mount.rbind(project, project))
    for d in mappings(cfg):
        out.append(Mount.rbind(d.host, d.inside, readonly=not d.writable))
    for name, host in python_binds(state):
        if os.path.lexists(f"{cfg.env_dir}/bin/{name}"):  # its shim (unlinked: nothing to cover)
            out.append(Mount.bind(host, f"{cfg.env_dir}/bin/{name}", readonly=True))
    for name in ("passwd", "group"):
        generated = f"{state.base}/{name}"
        if os.path.exists(generated):
            out.append(Mount.bind(generated, f"/etc/{name}", readonly=True))
    # Owned by whoever runs the holder, which writes its liveness marker there: as root that is root
    # even with --user, so that a program running as the user cannot plant a symlink for it.
    uid, gid = starter_ids(cfg)
    ids = f",uid={os.getuid() if uid is None else uid},gid={os.getgid() if gid is None else gid}"
    out.append(Mount.tmpfs(state.hidden, options="mode=0755,size=1m" + ids))
    return out


def mappings(cfg: EnvConfig) -> list[DirectoryMapping]:
    """The --directory mappings, but the project directory mapped onto itself: it is mapped
    read-write already, and the env inside it must stay writable."""
    specs = cfg.get_list("directory")
    if not specs:
        return []
    from ..mapping import DirectoryMapping  # only envs with mappings pay for it on the shims' path

    project = os.path.dirname(cfg.env_dir)
    found = (DirectoryMapping.parse(spec, check_exists=False) for spec in specs)
    return [d for d in found if not d.host == d.inside == project]


def mount_points(cfg: EnvConfig) -> list[tuple[str, str]]:
    """(inside path, "dir" or "file") that must exist in the root before entering it."""
    points = [("/r", "dir"), ("/proc", "dir"), ("/sys", "dir"), ("/dev", "dir"), ("/tmp", "dir")]
    if (cfg.get(CFG_SOURCE) or "host") != "host" and os.path.exists("/etc/resolv.conf"):
        points.append(("/etc/resolv.conf", "file"))
    points.append((os.path.dirname(cfg.env_dir), "dir"))
    points.extend((d.inside, "dir") for d in mappings(cfg))
    return points
