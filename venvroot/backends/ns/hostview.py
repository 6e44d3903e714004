"""The host system as a copy-on-write root: which host directory gets which kind of mount.

An overlay cannot cover ``/`` itself, and rootless it cannot cover a directory with mounts below it
(the kernel refuses to reveal what locked submounts hide). So the root is built from a *skeleton*
directory (the top-level symlinks and mount points) and one entry per host directory:

* ``overlay``: the directory with its own writable layer (most of them: /usr, /etc, /home...);
* ``upper``: an empty host directory (no mount point) whose layer is empty too: the layer itself,
  bound writable. What an overlay of nothing shows, without an overlay's cost (a quarter of the
  rootless host view's on a machine whose mounts make /, /var and /var/lib skeletons). A file the
  host adds there changes its listing, so the next start plans it as an overlay;
* ``skeleton``: a directory with mounts below it, rebuilt child by child (rootless), its own new
  entries landing in the skeleton (so they stay writable and private too);
* ``rbind``: a read-only recursive bind, where neither works (too deep, unreadable, a kernel
  filesystem, a container engine's tree, or an overlay the kernel refused when probed);
* ``bind``: a file or socket directly inside a skeleton directory (read-only);
* ``symlink``: a symlink directly inside a skeleton directory, made again in the skeleton.

As root, a directory with submounts gets an overlay of its own filesystem and each submount an
entry of its own on top. Every plan is *probed* (each overlay mounted once in a throwaway
namespace) before use, and what the kernel refuses falls back as above and is reported by
``venvroot info``. The plan is recomputed when the host's mounts or a skeleton directory change.
"""

from __future__ import annotations

import os
import stat

from ...ns.mounts import Mount
from ...util.hostmounts import mount_table, unescape
from . import replay
from .layout import State

# Mounted by the env itself (proc, sys, dev, tmp, the host at /r).
OWN_TOP = ("proc", "sys", "dev", "tmp", "r")
# Trees that container engines mount and unmount at any moment: read-only, never overlaid.
ENGINE_TREES = (
    "/var/lib/docker", "/run/docker", "/var/run/docker", "/var/lib/containers", "/run/containerd",
    "/var/lib/containerd", "/run/netns", "/var/run/netns",
)  # fmt: skip
# Filesystems that hold files; anything else (proc, cgroup, nsfs...) is bound, not overlaid.
FILE_SYSTEMS = {
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "vfat", "exfat",
    "ntfs", "ntfs3", "tmpfs", "ramfs", "nfs", "nfs4", "9p", "virtiofs", "squashfs", "iso9660",
    "erofs", "overlay", "bcachefs", "fuseblk", "udf",
}  # fmt: skip
# The entry kinds with a writable layer of their own (.venvroot/ns/layers/): the same layer either
# way, so a plan may turn one into the other.
LAYERED = ("overlay", "upper")
MAX_DEPTH = 4  # below this, a directory with submounts is bound read-only
MAX_CHILDREN = 64  # more entries than this in a directory with submounts: bound read-only


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


class Planner:
    """Builds the list of entries for the host view (see the module's docstring)."""

    def __init__(self, state: State, rootless: bool, table: list[tuple[str, str]], refused: set[str]) -> None:
        self.state = state  # where the layers are (``upper`` entries need an empty one)
        self.rootless = rootless
        self.points = {point: fstype for point, fstype in table}
        self.refused = refused  # directories whose overlay the kernel refused when probed
        self.entries: list[dict] = []
        self.fallbacks: list[str] = []

    def submounts(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted(p for p in self.points if p.startswith(prefix))

    def plan(self) -> list[dict]:
        self.entries.append({"kind": "skeleton", "dest": "/"})
        self._children("/", 0, skip=OWN_TOP)
        self._tmp()
        return self.entries

    def _tmp(self) -> None:
        """/tmp copy-on-write when the kernel allows, so that a file a host program makes there and
        names to a program inside (a Jupyter connection file, a script) is found; else private.
        Never read-only, and never rebuilt (programs make files in /tmp all the time)."""
        fstype = self.points.get("/tmp")
        usable = os.path.isdir("/tmp") and not os.path.islink("/tmp") and fstype in (None, *FILE_SYSTEMS)
        if usable and "/tmp" not in self.refused:
            if not self.submounts("/tmp"):
                self.entries.append({"kind": "overlay", "dest": "/tmp"})
                return
            if not self.rootless:  # root overlays it and each submount on top, as elsewhere
                self.directory("/tmp", 1)
                return
        why = "the kernel refused an overlay" if "/tmp" in self.refused else "mounts below it"
        self.fallbacks.append(f"/tmp private ({why if usable else 'not a directory that can be overlaid'})")

    def _children(self, path: str, depth: int, skip: tuple[str, ...] = ()) -> None:
        for name in sorted(os.listdir(path)):
            if name in skip:
                continue
            child = path.rstrip("/") + "/" + name
            try:
                st = os.lstat(child)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                self.entries.append({"kind": "symlink", "dest": child, "target": os.readlink(child)})
            elif stat.S_ISDIR(st.st_mode):
                self.directory(child, depth + 1)
            else:
                self.entries.append({"kind": "bind", "dest": child})

    def _bare(self, path: str) -> bool:
        """Whether ``path`` and its layer are both empty (a layer with files may hold whiteouts,
        which only an overlay hides), and ``path`` is no mount point (its filesystem may fill)."""
        if path in self.points:
            return False
        try:
            if os.listdir(path):
                return False
        except OSError:
            return False  # unreadable (or gone): an overlay shows it as the host does
        try:
            return not os.listdir(self.state.layer(path)[0])
        except FileNotFoundError:
            return True  # no layer yet
        except OSError:
            return False

    def _rbind(self, path: str, why: str) -> None:
        self.entries.append({"kind": "rbind", "dest": path})
        self.fallbacks.append(f"{path} read-only ({why})")

    def directory(self, path: str, depth: int) -> None:
        if any(_under(path, tree) for tree in ENGINE_TREES):
            self._rbind(path, "a container engine's tree")
            return
        fstype = self.points.get(path)
        if fstype is not None and fstype not in FILE_SYSTEMS:
            self._rbind(path, f"a {fstype} mount")
            return
        below = self.submounts(path)
        refused = path in self.refused
        if not below and not refused:
            self.entries.append({"kind": "upper" if self._bare(path) else "overlay", "dest": path})
            return
        if not self.rootless and not refused:
            # Root may overlay a directory with submounts: its own filesystem, then each
            # outermost submount on top.
            self.entries.append({"kind": "overlay", "dest": path})
            for sub in below:
                if not any(_under(sub, other) for other in below if other != sub):
                    self.directory(sub, depth + 1)
            return
        reason = "the kernel refused an overlay" if refused else "mounts below it"
        try:
            names = os.listdir(path)
        except OSError:
            self._rbind(path, f"{reason}, and it cannot be listed")
            return
        if depth >= MAX_DEPTH or len(names) > MAX_CHILDREN:
            self._rbind(path, f"{reason}, too {'deep' if depth >= MAX_DEPTH else 'large'} to rebuild")
            return
        self.entries.append({"kind": "skeleton", "dest": path})
        self.fallbacks.append(f"{path} rebuilt entry by entry ({reason}; its own files read-only)")
        self._children(path, depth)


def tmp_overlaid(plan: dict) -> bool:
    """Whether the plan shows the host's /tmp copy-on-write (else /tmp is the env's private one)."""
    return any(e["kind"] == "overlay" and e["dest"] == "/tmp" for e in plan["entries"])


def fingerprint(entries: list[dict], table: list[tuple[str, str]]) -> list[str]:
    """What the plan depends on: the host's mount points (but those inside a tree bound whole,
    such as a container engine's, which come and go) and the listed directories' entries. Kept
    whole in the plan, not hashed: comparing is exact, and cheaper than hashing in Python."""
    return [p for p, _ in table if not bound_below(p, entries)] + listings(entries)


def bound_trees(entries: list[dict]) -> list[str]:
    return [e["dest"] for e in entries if e["kind"] == "rbind"]


def bound_below(point: str, entries: list[dict]) -> bool:
    """Whether the mount point ``point`` lies inside (not at) a tree the plan binds whole."""
    return any(_under(point, tree) and point != tree for tree in bound_trees(entries))


def listings(entries: list[dict]) -> list[str]:
    """``DIR:NAME/NAME...`` (sorted) of each skeleton directory and each bare one (``upper``: a
    file made there on the host calls for an overlay), ``DIR:?`` for an unreadable one."""
    out = []
    for entry in entries:
        if entry["kind"] in ("skeleton", "upper"):
            try:
                out.append(entry["dest"] + ":" + "/".join(sorted(os.listdir(entry["dest"]))))
            except OSError:
                out.append(entry["dest"] + ":?")
    return out


def build_skeleton(state: State, entries: list[dict]) -> None:
    """Make the skeleton's directories, symlinks and mount points, and each overlay's upper and
    work directories. Existing entries (and what programs wrote there) are kept."""
    root = state.root
    os.makedirs(root, exist_ok=True)
    for name in OWN_TOP:
        os.makedirs(f"{root}/{name}", exist_ok=True)
    os.chmod(f"{root}/tmp", 0o1777)
    os.makedirs(state.tmp, exist_ok=True)
    os.chmod(state.tmp, 0o1777)
    for entry in entries:
        dest = entry["dest"]
        here = root + dest if dest != "/" else root
        kind = entry["kind"]
        if kind == "symlink":
            if not os.path.lexists(here):
                os.symlink(entry["target"], here)
        elif kind == "bind":
            if not os.path.lexists(here):
                os.close(os.open(here, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        elif dest != "/" and not os.path.isdir(here) and not _inside_overlay(entries, dest):
            if os.path.lexists(here):
                os.unlink(here)  # e.g. a symlink that became a directory on the host
            os.mkdir(here)
            st = os.stat(dest)
            os.chmod(here, stat.S_IMODE(st.st_mode))
            if os.geteuid() == 0:
                os.chown(here, st.st_uid, st.st_gid)
        if kind in LAYERED:
            upper, work = state.layer(dest)
            os.makedirs(work, exist_ok=True)
            if not os.path.isdir(upper):
                # The overlay's top directory takes its owner and mode from the upper one.
                os.makedirs(upper)
                st = os.stat(dest)
                os.chmod(upper, stat.S_IMODE(st.st_mode))
                if os.geteuid() == 0:
                    os.chown(upper, st.st_uid, st.st_gid)


def _inside_overlay(entries: list[dict], dest: str) -> bool:
    """Whether ``dest`` lies inside an overlaid directory (root's nested submounts): its mount
    point then comes from the overlay's lower, not from the skeleton."""
    return any(e["kind"] == "overlay" and e["dest"] != dest and _under(dest, e["dest"]) for e in entries)


def probe(state: State, entries: list[dict]) -> set[str]:
    """Mount each planned overlay once, in order, in a throwaway namespace (replay.trial); return
    the directories whose overlay the kernel refused."""
    overlays = [e["dest"] for e in entries if e["kind"] == "overlay"]
    if not overlays:
        return set()
    steps: list[tuple[str, ...]] = [("userns", str(os.geteuid()), str(os.getegid()))] if os.geteuid() else []
    for dest in overlays:
        upper, work = state.layer(dest)
        # The same escaped options as the real mount: a comma or colon in a path is data.
        options = Mount.overlay(dest, dest, upper, work).options
        steps.append(("mount", "overlay", "overlay", dest, options, ""))
    return replay.trial(steps, state.root)


def make_plan(state: State) -> dict:
    """Plan, build the skeleton, probe, and fall back until the kernel accepts every overlay."""
    rootless = os.geteuid() != 0
    refused: set[str] = set()
    for _ in range(6):
        table = mount_table()
        planner = Planner(state, rootless, table, refused)
        entries = planner.plan()
        build_skeleton(state, entries)
        newly = probe(state, entries) - refused
        if not newly:
            break
        refused |= newly
    plan = {
        "rootless": rootless,
        "entries": entries,
        "fallbacks": planner.fallbacks,
        "fingerprint": fingerprint(entries, table),
    }
    tmp = state.plan + ".tmp"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(dump(plan))
    os.replace(tmp, state.plan)
    return plan


def current_plan(state: State) -> dict:
    """The saved plan, made again when the host's mounts or the skeleton directories changed."""
    try:
        with open(state.plan, encoding="utf-8", errors="surrogateescape") as handle:
            plan = load(handle.read())
    except (OSError, ValueError):
        return make_plan(state)
    if plan["rootless"] != (os.geteuid() != 0) or plan["fingerprint"] != fingerprint(
        plan["entries"], mount_table()
    ):
        return make_plan(state)
    return plan


# -- the plan file ---------------------------------------------------------------------------------------
# Text, read at every start of the namespaces (``json`` imports ``re``: ~5 ms on the shims' path).
# One item a line, fields separated by tabs; a backslash, tab or newline in a field is written as
# mountinfo writes it (``\ooo``):
#
#   venvroot-plan 1 root|rootless
#   entry   KIND DEST [TARGET]      in mount order (TARGET: a symlink's)
#   fallback TEXT                   what could not be overlaid, and why
#   depends TEXT                    what the plan was made from (see fingerprint)

PLAN_HEADER = "venvroot-plan 1"


def _field(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text:
        return text.replace("\\", "\\134").replace("\t", "\\011").replace("\n", "\\012")
    return text


def dump(plan: dict) -> str:
    lines = [f"{PLAN_HEADER} {'rootless' if plan['rootless'] else 'root'}"]
    for entry in plan["entries"]:
        fields = ["entry", entry["kind"], entry["dest"]]
        if "target" in entry:
            fields.append(entry["target"])
        lines.append("\t".join(map(_field, fields)))
    lines.extend("fallback\t" + _field(text) for text in plan["fallbacks"])
    lines.extend("depends\t" + _field(text) for text in plan["fingerprint"])
    return "\n".join(lines) + "\n"


def load(text: str) -> dict:
    """The plan ``dump`` wrote; ValueError when ``text`` is not one."""
    lines = text.split("\n")
    head, _, who = lines[0].rpartition(" ")
    if head != PLAN_HEADER or who not in ("root", "rootless") or lines[-1] != "":
        raise ValueError("not a venvroot host view plan")
    plan: dict = {"rootless": who == "rootless", "entries": [], "fallbacks": [], "fingerprint": []}
    for line in lines[1:-1]:
        what, _, rest = line.partition("\t")
        if what == "entry":
            fields = [unescape(f) for f in rest.split("\t")]
            if len(fields) not in (2, 3):
                raise ValueError(f"bad line in the host view plan: {line!r}")
            entry = {"kind": fields[0], "dest": fields[1]}
            if len(fields) == 3:
                entry["target"] = fields[2]
            plan["entries"].append(entry)
        elif what == "fallback":
            plan["fallbacks"].append(unescape(rest))
        elif what == "depends":
            plan["fingerprint"].append(unescape(rest))
        else:
            raise ValueError(f"bad line in the host view plan: {line!r}")
    return plan
