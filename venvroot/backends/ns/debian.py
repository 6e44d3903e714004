"""``--root debian:SUITE``: a minimal Debian root made by debootstrap, cached per user as a tarball.

The first create of a suite runs ``debootstrap --variant=minbase SUITE`` from the mirror the machine's
apt uses (``$VENVROOT_DEBIAN_MIRROR`` first), rootless as root of a user namespace mapping the
user's subordinate ids (mappedroot.py: the packages' system users keep their files), as real root
plainly; both in a mount and a PID namespace of their own, so what debootstrap mounts never
reaches the host and nothing it started outlives a killed create.
The tree is packed into ``~/.cache/venvroot/roots/debian-SUITE-ARCH.tar`` (owners as inside ids)
and removed; every env of that suite, this one too, is unpacked from the tarball as any tarball root
is (sources.py). Builds of one suite take turns on a lock beside it; a build that was killed leaves
a ``.build-`` tree that the next build of that suite removes.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess

from ...errors import UsageError, VenvrootError
from ...ns import idmap, syscalls
from ...util import progress
from . import mappedroot
from .removal import remove_tree

PREFIX = "debian:"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")  # debootstrap is in sbin, often not on a user's PATH
SUITE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
# Debian's PATH for users (login.defs): with the games, so that `venvroot link ENV sl` finds sl.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/games:/usr/games"


def suite_of(root: str) -> str:
    """The suite that ``debian:SUITE`` names; UsageError for a missing or odd one."""
    suite = root[len(PREFIX) :]
    if not suite or not set(suite) <= SUITE_CHARS or suite[0] in ".-":
        raise UsageError(
            f"--root {root}: give a Debian suite or codename, e.g. --root debian:bookworm or debian:stable"
        )
    return suite


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/venvroot/roots``, by default under ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "venvroot", "roots")


def architecture() -> str:
    try:
        found = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    except OSError:
        pass
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "armv7l": "armhf"}.get(machine, machine)


def tarball_path(suite: str) -> str:
    return os.path.join(cache_dir(), f"debian-{suite}-{architecture()}.tar")


def debootstrap() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *TOOL_DIRS])
    return shutil.which("debootstrap", path=path)


# -- the mirror ------------------------------------------------------------------------------------


def apt_sources(etc: str = "/etc/apt") -> list[tuple[str, list[str]]]:
    """The ``deb`` sources apt reads, in its order: (URI, suites) from ``sources.list``, then
    ``sources.list.d/*.list`` and ``*.sources`` (deb822, without ``Enabled: no``) by name."""
    found: list[tuple[str, list[str]]] = []
    files = [os.path.join(etc, "sources.list")]
    try:
        names = sorted(os.listdir(os.path.join(etc, "sources.list.d")))
    except OSError:
        names = []
    files += [os.path.join(etc, "sources.list.d", n) for n in names if n.endswith((".list", ".sources"))]
    for path in files:
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        found += _deb822(text) if path.endswith(".sources") else _one_line(text)
    return found


def _one_line(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            out.append((words[0], [words[1]]))
    return out


def _deb822(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append((uri, fields.get("suites", "").split()))
    return out


def mirror(suite: str, etc: str = "/etc/apt") -> str:
    """``$VENVROOT_DEBIAN_MIRROR``; else the first apt source that serves ``suite``; else the first
    that is a Debian archive (its path ends in ``/debian``); else deb.debian.org."""
    chosen = os.environ.get("VENVROOT_DEBIAN_MIRROR")
    if chosen:
        return chosen
    sources = [
        (uri, suites) for uri, suites in apt_sources(etc) if uri.startswith(("http://", "https://", "file:"))
    ]
    for uri, suites in sources:
        if suite in suites:
            return uri
    for uri, _suites in sources:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return DEFAULT_MIRROR


# -- the build -----------------------------------------------------------------------------------------


def check(root: str) -> None:
    """Refuse, in one line, a ``debian:SUITE`` that cannot be built here (before anything is written):
    no debootstrap, or rootless no subordinate ids. A cached suite needs neither."""
    if os.path.isfile(tarball_path(suite_of(root))):
        return
    if debootstrap() is None:
        raise VenvrootError(
            f"--root {root} needs debootstrap, which is not installed; an administrator can install it "
            "(Debian: `apt-get install debootstrap`), or give a tarball or directory root"
        )
    if os.geteuid() != 0 and not idmap.plan(0, 0).full:
        hint = idmap.missing_range_hint() or "no subordinate ids"
        raise VenvrootError(f"--root {root} cannot be built without subordinate ids: {hint}")


def cached_root(root: str) -> str:
    """The tarball of ``debian:SUITE``, built first when the cache lacks it."""
    suite = suite_of(root)
    tarball = tarball_path(suite)
    if os.path.isfile(tarball):
        return tarball
    check(root)
    os.makedirs(cache_dir(), exist_ok=True)
    with open(tarball[: -len(".tar")] + ".lock", "a") as lock:  # one build per suite at a time
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with progress.Progress(f"building {root}", label="waiting for another create's build of it"):
                fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(tarball):  # that build made it: reused
            _build(root, suite, tarball)
    return tarball


def _build(root: str, suite: str, tarball: str) -> None:
    stem = os.path.basename(tarball)[: -len(".tar")]
    for name in os.listdir(cache_dir()):  # a killed build's leftovers (this suite's lock is ours)
        if name.startswith(f".build-{stem}-"):
            remove_tree(os.path.join(cache_dir(), name))
    work = os.path.join(cache_dir(), f".build-{stem}-{os.getpid()}")
    tree, packed = os.path.join(work, "root"), os.path.join(work, "root.tar")
    log = os.path.join(cache_dir(), f"{stem}.log")
    os.makedirs(tree)
    source = mirror(suite)
    try:
        mappedroot.run(lambda: _debootstrap(root, suite, tree, source, log), isolated=True)
        os.rename(packed, tarball)
        os.unlink(log)  # kept only when the build failed
    finally:
        remove_tree(work)


# The PID namespace's init: debootstrap, then tar (no process can start there once init has ended).
_INIT = (
    'tree=$1 archive=$2; shift 2; "$@" || exit; echo "I: packing the root"; '
    'exec tar --numeric-owner -C "$tree" -cf "$archive" .'
)


def _debootstrap(root: str, suite: str, tree: str, source: str, log: str) -> None:
    """debootstrap, then tar (both as root here): a progress line of debootstrap's stages."""
    tool = debootstrap()
    assert tool is not None
    environ = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL="C")
    if _rootless():
        environ["container"] = "lxc"  # no mknod in a user namespace: debootstrap binds /dev's nodes instead
    archive = os.path.join(os.path.dirname(tree), "root.tar")
    argv = ["/bin/sh", "-c", _INIT, "sh", tree, archive, tool, "--variant=minbase", suite, tree, source]
    error = other = ""
    with (
        open(log, "w") as out,
        progress.Progress(f"building {root} with debootstrap", unit="steps", label="starting") as shown,
    ):
        proc = subprocess.Popen(  # killed with this process, it ends every process of the namespace
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environ, text=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            line = line.strip()
            if line.startswith("I: "):
                shown.stage(line[3:].rstrip("."))
            elif line.startswith("E: "):
                error = line[3:]
            elif line and not line.startswith("W: "):
                other = line  # tar's own complaint, say
        code = proc.wait()
        if code != 0:
            said = error or other or f"exit status {code}"
            raise VenvrootError(f"--root {root}: debootstrap failed ({said}) from {source}; its log: {log}")


def _die_with_parent() -> None:
    syscalls.set_parent_death_signal(9)


def _rootless() -> bool:
    """Whether this process is root of a user namespace (not the host's root)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return True
