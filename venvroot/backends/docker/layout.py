"""Names and paths shared by the docker backend's modules (standard library only).

An environment owns one container and the images it commits; both carry the env's path in a label
and a name readable in ``docker ps``: ``venvroot-<project>-<env>-<hash of the path>``. Its state
lives under ``<env>/.venvroot/docker/``.
"""

from __future__ import annotations

import os

LABEL_ENV = "io.venvroot.env"  # absolute path of the environment
LABEL_OWNER = "io.venvroot.owner"  # user who created it
LABEL_IMAGE = "io.venvroot.image"  # the --image it was made from
LABEL_ROLE = "io.venvroot.role"  # on images: "base" or "snapshot"; "container" on the container

# Tags in the env's image repository (see image_repository): "base", "snap-<id>" for each snapshot,
# and "current" for the image the container is made from when that is not the base (a restored
# snapshot, the frozen base), so that deleting the snapshot only untags it.
CURRENT_TAG = "current"
# The env's Python files that are not at the top of the env directory: the venv's real bin.
PYTHON_EXTRA_PATHS = (".venvroot/docker/bin",)

# Keys in venvroot.cfg (Settings.extra) that the hot path reads.
CFG_CONTAINER = "docker-container"
CFG_USER = "docker-user"  # "UID:GID" to run as, when not the caller
CFG_LOGIN = "docker-login"
CFG_HOME = "docker-home"
CFG_PATH = "docker-path"  # PATH inside: the env's bin, then the image's PATH
CFG_REMOTE = "docker-remote"  # "true": the engine cannot see our files (volumes instead of binds)


def _slug(text: str) -> str:
    out = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "-" for c in text)
    return out.strip(".-_") or "env"


def _hash(env_dir: str) -> str:
    # FNV-1a, 32 bits: stable across runs and Python versions (hash() is salted), no hashlib import.
    h = 0x811C9DC5
    for byte in env_dir.encode("utf-8", "surrogateescape"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def container_name(env_dir: str) -> str:
    project = os.path.basename(os.path.dirname(env_dir))
    return f"venvroot-{_slug(project)[:40]}-{_slug(os.path.basename(env_dir))[:40]}-{_hash(env_dir)}"


def image_repository(env_dir: str) -> str:
    """Repository for the images the env commits: lower case, and separators never doubled."""
    name = container_name(env_dir)[len("venvroot-") :].lower()
    parts = "".join(c if c.isalnum() else " " for c in name).split()
    return "venvroot/" + "-".join(parts)


def snapshot_tag(snap_id: str) -> str:
    return f"snap-{snap_id}"


class StateDir:
    """``<env>/.venvroot/docker``."""

    def __init__(self, env_dir: str) -> None:
        self.env_dir = env_dir
        self.path = os.path.join(env_dir, ".venvroot", "docker")

    @property
    def inner_bin(self) -> str:
        """Mounted over ``<env>/bin`` inside the container: the env's own programs (a Python
        virtual environment's ``bin``), so that the host's shims never shadow them inside."""
        return os.path.join(self.path, "bin")

    @property
    def container_spec(self) -> str:
        """The JSON body that (re)creates the container, so a shim can recreate it after reset."""
        return os.path.join(self.path, "container.json")

    @property
    def lock(self) -> str:
        return os.path.join(self.path, "lock")

    @property
    def sessions(self) -> str:
        return os.path.join(self.path, "sessions")

    @property
    def watcher_lock(self) -> str:
        return os.path.join(self.path, "watcher.lock")

    @property
    def log(self) -> str:
        return os.path.join(self.path, "session.log")

    @property
    def synced(self) -> str:
        """Holds the inner bin's mtime when shims were last synced with it."""
        return os.path.join(self.path, "bin.synced")
