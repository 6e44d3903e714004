"""Helpers for the venvroot.ns tests: who runs a test (root or the unprivileged user), roots they
can write to, and the command line of ``venvroot chroot``."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import as_user, build_busybox_root


class Who:
    """Runs commands as root or as the unprivileged test user."""

    def __init__(self, name: str, user: pwd.struct_passwd | None) -> None:
        self.name = name
        self.user = user

    @property
    def uid(self) -> int:
        return 0 if self.user is None else self.user.pw_uid

    @property
    def gid(self) -> int:
        return 0 if self.user is None else self.user.pw_gid

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` as this user. setpriv execs (runuser forks), so a signal sent to the process
        we start reaches venvroot itself."""
        if self.user is None or os.getuid() == self.user.pw_uid:
            return argv
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return as_user(self.user, argv)
        return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *argv]

    def run(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("cwd", "/")  # not the checkout: CI's may be unreadable to the test user
        return subprocess.run(self.argv(argv), **kwargs)  # type: ignore[call-overload]

    def popen(self, argv: list[str], **kwargs: object) -> subprocess.Popen:
        return subprocess.Popen(self.argv(argv), **kwargs)  # type: ignore[call-overload]

    def python(self, code: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
        """Run Python ``code`` (dedented) as this user, from a file so that tracebacks show lines."""
        fd, path = tempfile.mkstemp(prefix="venvroot-ns-", suffix=".py")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(textwrap.dedent(code))
            os.chmod(path, 0o644)
            return self.run([sys.executable, path, *args], **kwargs)
        finally:
            os.unlink(path)

    def chown(self, path: Path) -> None:
        if self.user is None:
            return
        for top, dirs, files in os.walk(path):
            os.lchown(top, self.uid, self.gid)
            for name in dirs + files:
                os.lchown(os.path.join(top, name), self.uid, self.gid)

    def __repr__(self) -> str:
        return self.name


@pytest.fixture(name="who", params=["root", "user"])
def who_fixture(request: pytest.FixtureRequest) -> Who:
    """Each test using this runs twice: as root and as the unprivileged user (rootless)."""
    if os.getuid() != 0:
        return Who("user", pwd.getpwuid(os.getuid()))
    if request.param == "root":
        return Who("root", None)
    return Who("user", request.getfixturevalue("unprivileged_user"))


def own_root(base: Path, who: Who) -> Path:
    """A busybox root under ``base`` owned by ``who``, so that mount points can be created in it."""
    root = build_busybox_root(base / "root")
    base.chmod(0o755)
    who.chown(root)
    return root


@functools.lru_cache(maxsize=1)
def _top_level_cli_works() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "venvroot", "chroot", "--help"], capture_output=True, text=True, cwd="/"
    )
    return probe.returncode == 0 and "ROOT" in probe.stdout


def chroot_cli(*args: str) -> list[str]:
    """``venvroot chroot ARGS`` (``python -m venvroot chroot`` once the top-level CLI has it)."""
    if _top_level_cli_works():
        return [sys.executable, "-m", "venvroot", "chroot", *args]
    return [sys.executable, "-m", "venvroot.ns.cli", *args]


# Docker (which other test suites start) mounts and unmounts under these at any moment.
_OTHERS = ("/var/lib/docker/", "/run/docker/")


def mountinfo() -> str:
    """The host's mount table, line for line, without the mounts a running Docker Engine manages."""
    with open("/proc/self/mountinfo") as f:
        return "".join(line for line in f if not line.split()[4].startswith(_OTHERS))
