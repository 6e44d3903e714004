"""Fixtures and helpers for the docker backend's tests: a live daemon, images the tests build
themselves with ``docker import`` (no registry is reachable), and running venvroot as the
unprivileged test user with access to the daemon.

Test modules import the ``*_fixture`` functions; pytest knows them by their ``name``."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import build_busybox_root, missing, need

CACHE = Path(os.environ.get("VENVROOT_TEST_CACHE", "/var/cache/venvroot-tests"))
DEBIAN_TARBALL = CACHE / "debian-bookworm-python3.tar"
SOCKET = "/var/run/docker.sock"
# Applets that would let a root set up users "the usual way": the image must do without them.
USER_TOOLS = ("adduser", "addgroup", "useradd", "groupadd", "deluser", "delgroup")


def docker(*args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(["docker", *args], check=check, **kwargs)  # type: ignore[call-overload]


def build_agent() -> None:
    """The compiled agent next to the venvroot the tests import: setup.py builds it at install, and
    a checkout gets it here (its shims must reach containers through the agent, as installed ones do)."""
    from venvroot.backends.docker import agentpath

    if agentpath.available():
        return
    cc = need("gcc")
    sources = [agentpath.BINARY + part for part in (".c", "_serve.c", "_run.c", "_msg.c")]
    done = subprocess.run(
        [cc, "-O2", "-Wall", "-static", "-o", agentpath.BINARY, *sources],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        missing(f"the docker agent does not compile: {done.stderr.strip()[-300:]}")


@pytest.fixture(scope="session", name="daemon")
def daemon_fixture() -> None:
    """A Docker Engine that answers (CI starts one; on a laptop the tests skip without it), and the
    agent that new containers run."""
    need("docker")
    build_agent()
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        missing(f"the Docker daemon does not answer: {probe.stderr.strip().splitlines()[-1:]}")


def _import(tar: Path, tag: str) -> str:
    if docker("image", "inspect", tag, check=False).returncode != 0:
        docker("import", str(tar), tag, timeout=600)
    return tag


@pytest.fixture(scope="session", name="busybox_image")
def busybox_image_fixture(daemon: None) -> Iterator[str]:
    """A busybox-static image without any user-management tool."""
    base = Path(tempfile.mkdtemp(prefix="venvroot-bbimage-"))
    try:
        root = build_busybox_root(base / "root")
        for tool in USER_TOOLS:
            for d in ("bin", "sbin", "usr/bin", "usr/sbin"):
                (root / d / tool).unlink(missing_ok=True)
        tar = base / "root.tar"
        # Reproducible: the same root gives the same tag, imported once.
        subprocess.run(
            [
                "tar",
                "-C",
                str(root),
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "--mtime=@0",
                "--sort=name",
                "-cf",
                str(tar),
                ".",
            ],
            check=True,
        )
        digest = hashlib.sha256(tar.read_bytes()).hexdigest()[:12]
        yield _import(tar, f"venvroot-test/busybox:{digest}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", name="debian_image")
def debian_image_fixture(daemon: None) -> str:
    """Debian bookworm (minbase) with python3 and python3-venv, from debootstrap. The tarball is
    cached in /var/cache/venvroot-tests: building it takes minutes and needs Debian's mirror."""
    if not DEBIAN_TARBALL.exists():
        debootstrap = need("debootstrap")
        if os.getuid() != 0:
            missing("debootstrap needs root")
        CACHE.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="venvroot-debootstrap-", dir=CACHE))
        try:
            made = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=python3,python3-venv",
                    "bookworm",
                    str(work / "root"),
                ],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if made.returncode != 0:
                missing(f"debootstrap failed: {(made.stdout + made.stderr).strip().splitlines()[-1:]}")
            part = DEBIAN_TARBALL.with_suffix(".part")
            subprocess.run(
                ["tar", "-C", str(work / "root"), "--numeric-owner", "-cf", str(part), "."], check=True
            )
            part.rename(DEBIAN_TARBALL)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    stat = DEBIAN_TARBALL.stat()
    return _import(DEBIAN_TARBALL, f"venvroot-test/debian-python3:{int(stat.st_mtime)}-{stat.st_size}")


# -- venvroot's command line -------------------------------------------------------------------------


def venvroot(*args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 300)
    done = subprocess.run([sys.executable, "-m", "venvroot", *args], **kwargs)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        raise AssertionError(f"venvroot {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def project_dir(prefix: str) -> Iterator[Path]:
    """A world-readable project directory for a module's envs (the test user reaches them too);
    whatever envs are left in it are destroyed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    proj = base / "proj"
    proj.mkdir()
    yield proj
    for env in proj.iterdir():
        if (env / "venvroot.cfg").is_file():
            venvroot("destroy", str(env), check=False)
    shutil.rmtree(base, ignore_errors=True)


def cfg_value(env: Path, key: str) -> str:
    for line in (env / "venvroot.cfg").read_text().splitlines():
        k, _, v = line.partition(" = ")
        if k == key:
            return v
    raise KeyError(key)


def container_of(env: Path) -> str:
    return cfg_value(env, "docker-container")


def container_state(name: str) -> str:
    """running, exited, created... or "absent"."""
    found = docker("inspect", "-f", "{{.State.Status}}", name, check=False)
    return found.stdout.strip() if found.returncode == 0 else "absent"


def top(name: str) -> str:
    """`docker top`: the processes in the container."""
    return docker("top", name, "-o", "pid,args").stdout


def leftovers(env: Path) -> tuple[str, str]:
    """Containers and images that still carry the env's label."""
    label = f"label=io.venvroot.env={env}"
    return (
        docker("ps", "-aq", "--filter", label).stdout.strip(),
        docker("images", "-aq", "--filter", label).stdout.strip(),
    )


# -- the unprivileged user, with access to the daemon -------------------------------------------------


def docker_group() -> str:
    """The group owning the daemon's socket, which the unprivileged user joins for these tests."""
    try:
        gid = os.stat(SOCKET).st_gid
        name = grp.getgrgid(gid).gr_name
    except (OSError, KeyError):
        missing(f"no group-owned Docker socket at {SOCKET}")
    if gid == 0 or os.stat(SOCKET).st_mode & 0o060 != 0o060:
        missing(f"{SOCKET} is not usable by a group")
    return name


def as_docker_user(user: pwd.struct_passwd, argv: list[str], with_docker: bool = True) -> list[str]:
    """``argv`` run as ``user`` with its own primary group and (unless not wanted) the socket's group."""
    if os.getuid() == user.pw_uid:
        return argv
    group = grp.getgrgid(user.pw_gid).gr_name
    extra = ["-G", docker_group()] if with_docker else []
    return ["runuser", "-u", user.pw_name, "-g", group, *extra, "--", *argv]


def user_env(user: pwd.struct_passwd) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR")}
    env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return env
