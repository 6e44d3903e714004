"""The container's mounts: the same path mapping as the ``ns`` backend.

* the project directory (the env's parent) and the env directory, read-write at their own paths;
* the env's own ``bin`` (state/bin) over ``<env>/bin``, so the host's shims never shadow the
  programs inside;
* the host's ``/`` read-only at ``/r``; each real filesystem mounted below ``/`` is bound on its
  own, read-only and non-recursively: a recursive read-only bind leaves submounts writable on
  Docker Engines before 25, and kernel filesystems (proc, sys, dev...) have no business there;
* ``--directory HOST[:INSIDE][:rw|ro]`` extras.
"""

from __future__ import annotations

import os

from ...errors import UsageError
from ...util.hostmounts import host_table
from ..mapping import DirectoryMapping
from .layout import StateDir

# Filesystems that hold files (kernel interfaces such as proc or cgroup do not; another user's
# FUSE mount cannot even be read by the daemon and would stop the container from starting).
FILE_SYSTEMS = {
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "vfat", "exfat",
    "ntfs", "ntfs3", "fuseblk", "tmpfs", "ramfs", "nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs",
    "squashfs", "iso9660", "udf", "erofs", "overlay", "bcachefs",
}  # fmt: skip
SKIPPED_TREES = ("/proc", "/sys", "/dev", "/var/lib/docker", "/run/docker", "/var/run/docker", "/r")
# A project directory that is one of these would put a host system directory over the image's.
SYSTEM_DIRS = {
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr", "/var", "/r",
}  # fmt: skip


def check_project(env_dir: str) -> None:
    project = os.path.dirname(env_dir)
    if project in SYSTEM_DIRS or project.startswith(("/usr/", "/proc/", "/sys/", "/dev/")):
        raise UsageError(
            f"the env's project directory {project} would be mounted over the image's own {project}; "
            "put the environment in a project directory instead (e.g. ~/proj/.venv)"
        )


def bind(source: str, target: str, writable: bool, recursive: bool = True) -> dict:
    mount: dict = {"Type": "bind", "Source": source, "Target": target, "ReadOnly": not writable}
    if not recursive:
        mount["BindOptions"] = {"NonRecursive": True}
    return mount


def host_mounts() -> list[str]:
    """Mount points of real filesystems below ``/`` in our mount namespace, outermost first."""
    points: list[str] = []
    try:
        table = host_table()
    except OSError:
        return points
    for point, fstype in table:
        if point == "/" or fstype not in FILE_SYSTEMS:
            continue
        if any(point == t or point.startswith(t + "/") for t in SKIPPED_TREES):
            continue
        if (os.path.isdir(point) or os.path.isfile(point)) and point not in points:
            points.append(point)
    return sorted(points, key=lambda p: p.count("/"))


def container_mounts(env_dir: str, directories: list[str]) -> list[dict]:
    project = os.path.dirname(env_dir)
    mounts = [bind("/", "/r", writable=False, recursive=False)]
    mounts += [bind(p, "/r" + p, writable=False, recursive=False) for p in host_mounts()]
    mounts.append(bind(project, project, writable=True))
    mounts.append(bind(env_dir, env_dir, writable=True))
    mounts.append(bind(StateDir(env_dir).inner_bin, os.path.join(env_dir, "bin"), writable=True))
    targets = {m["Target"] for m in mounts}
    for spec in directories:
        d = DirectoryMapping.parse(spec, check_exists=False)
        if not os.path.exists(d.host):
            raise UsageError(f"--directory {spec}: {d.host} does not exist; create it or fix the path")
        if d.inside in targets or d.inside == "/" or d.inside == "/r" or d.inside.startswith("/r/"):
            raise UsageError(
                f"--directory {spec}: {d.inside} is already mapped (or is / or under /r); choose another "
                "inside path"
            )
        targets.add(d.inside)
        mounts.append(bind(d.host, d.inside, writable=d.writable))
    return mounts


def remote_mounts(
    env_dir: str, directories: list[str], container: str, home: str, labels: dict
) -> list[dict]:
    """For an engine on another machine, which cannot see this one's files: named volumes (labelled
    as the env's) where a local engine gets bind mounts: the project directory, the env directory
    (its Python lives there), the user's home and each ``--directory``'s inside path. ``venvroot
    push`` and ``pull`` copy files between this machine and them."""
    project = os.path.dirname(env_dir)
    wanted = [("project", project, True), ("env", env_dir, True)]
    if home not in (project, env_dir, "/"):
        wanted.append(("home", home, True))
    for i, spec in enumerate(directories):
        d = DirectoryMapping.parse(spec, check_exists=False)
        wanted.append((f"dir{i}", d.inside, d.writable))
    return [volume(f"{container}-{name}", target, writable, labels) for name, target, writable in wanted]


def volume(name: str, target: str, writable: bool, labels: dict) -> dict:
    """A named volume's mount; Docker creates the volume, with ``labels``, when it is missing."""
    return {
        "Type": "volume",
        "Source": name,
        "Target": target,
        "ReadOnly": not writable,
        "VolumeOptions": {"Labels": labels},
    }


def transfer_maps(env_dir: str, directories: list[str]) -> list[tuple[str, str]]:
    """(host path, inside path) of what ``venvroot push``/``pull`` copy: the project directory and
    each ``--directory`` (specs as recorded: ``HOST:INSIDE:MODE``)."""
    project = os.path.dirname(env_dir)
    maps = [(project, project)]
    for spec in directories:
        host, inside, _mode = spec.rsplit(":", 2)
        maps.append((host, inside))
    return maps
