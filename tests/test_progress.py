"""Progress lines of long work, read through a real pty: unpacking a tarball root and taking and
restoring a snapshot draw one line rewritten with \\r, as root and as the unprivileged user, and so
does unpacking a docker image for the ns backend; with stderr not a terminal, or with -q, nothing
is printed."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pexpect
import pytest
from conftest import as_user, build_busybox_root
from docker_helpers import busybox_image_fixture, daemon_fixture  # noqa: F401 - fixtures

VENVROOT = [sys.executable, "-m", "venvroot"]


def make_tarball(base: Path) -> Path:
    root = build_busybox_root(base / "rootdir")
    tarball = base / "root.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname=".")
    return tarball


def in_pty(argv: list[str], cwd: Path) -> str:
    """Everything ``argv`` wrote to the terminal (stdout and stderr), once it exited with status 0."""
    child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), encoding="utf-8", timeout=60, dimensions=(24, 200))
    out = child.read()
    child.close()
    assert child.exitstatus == 0, out
    return out


def progress_line(out: str, what: str) -> str:
    """The last state of the progress line for ``what``; it must have been drawn with \\r."""
    match = re.search(rf"\r({re.escape(what)}: \d+ files, [\d.]+ (?:B|KiB|MiB|GiB)), done", out)
    assert match, f"no progress line for {what!r} in {out!r}"
    return match.group(1)


@pytest.fixture(params=["root", "user"])
def who(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, pwd.struct_passwd | None]:
    if request.param == "root":
        return tmp_path, None
    user = request.getfixturevalue("unprivileged_user")
    base = request.getfixturevalue("shared_tmp")
    return base, user


def run_as(user: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    return argv if user is None else as_user(user, argv)


def test_tarball_root_and_snapshots_show_progress_on_a_terminal(who) -> None:
    base, user = who
    tarball = make_tarball(base)
    if user is not None:
        for path in base.rglob("*"):
            os.lchown(path, user.pw_uid, user.pw_gid)
    env = base / "env"
    out = in_pty(run_as(user, [*VENVROOT, str(env), "--root", str(tarball)]), base)
    files = int(progress_line(out, f"unpacking {tarball}").split(": ")[1].split()[0])
    assert files > 100  # busybox's applet links, one per member
    assert "created venvroot environment" in out

    out = in_pty(run_as(user, [*VENVROOT, "snapshot", "create", str(env), "one"]), base)
    progress_line(out, "snapshot of env")
    out = in_pty(run_as(user, [*VENVROOT, "snapshot", "restore", str(env), "one"]), base)
    progress_line(out, "restoring one")
    out = in_pty(run_as(user, [*VENVROOT, "freeze", str(env)]), base)
    progress_line(out, "freezing env")


def test_no_progress_off_a_terminal_or_with_q(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path)
    # stderr a pipe: nothing but errors there.
    made = subprocess.run(
        [*VENVROOT, str(tmp_path / "a"), "--root", str(tarball)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert made.stderr == ""
    snap = subprocess.run(
        [*VENVROOT, "snapshot", "create", str(tmp_path / "a")], capture_output=True, text=True
    )
    assert snap.returncode == 0 and snap.stderr == ""
    # A terminal, but -q: not a byte.
    assert in_pty([*VENVROOT, str(tmp_path / "b"), "--root", str(tarball), "-q"], tmp_path) == ""
    assert in_pty([*VENVROOT, "snapshot", "create", str(tmp_path / "b"), "-q"], tmp_path) == ""
    assert in_pty([*VENVROOT, "snapshot", "restore", str(tmp_path / "b"), "snap-1", "-q"], tmp_path) == ""
    assert in_pty([*VENVROOT, "freeze", str(tmp_path / "b"), "-q"], tmp_path) == ""


def test_docker_image_root_shows_progress(tmp_path: Path, busybox_image: str) -> None:
    env = tmp_path / "env"
    out = in_pty([*VENVROOT, str(env), "--root", f"docker:{busybox_image}"], tmp_path)
    assert int(progress_line(out, f"unpacking the image {busybox_image}").split(": ")[1].split()[0]) > 100
    subprocess.run([*VENVROOT, "destroy", str(env)], check=True, capture_output=True)
