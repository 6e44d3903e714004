"""Root sources of the ns backend (a directory, tarballs, a docker image) and bad input, through the
real CLI, as root and as the unprivileged user: the source stays pristine, the env's changes stay
in its own writable layer, and every bad input is one clear line with nothing left behind."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import need
from docker_helpers import as_docker_user, busybox_image_fixture, daemon_fixture  # noqa: F401 - fixtures
from ns_backend_helpers import (
    VENVROOT,
    Project,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    in_environment,
    one_error_line,
    project_fixture,  # noqa: F401 - the project fixture
)
from ns_helpers import Who, who_fixture  # noqa: F401 - the who fixture


def tree(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            out[os.path.relpath(os.path.join(top, name), path)] = (st.st_mode, st.st_mtime_ns)
    return out


def check_root(project: Project, env: Path) -> None:
    """The busybox root runs, and changes to it stay in the env's writable layer until reset.
    (Rootless, files the host's root owns cannot be changed inside either: new ones are made.)"""
    # A busybox root, not the host (docker's export empties /etc/hostname: look at the files).
    script = (
        "test -x /bin/busybox -a ! -e /usr/lib/os-release && echo busybox-root; "
        "echo changed > /etc/vr-change && id -un"
    )
    out = project.run([env / "bin" / "sh", "-c", script])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["busybox-root", project.who.user.pw_name if project.who.user else "root"]
    assert project.run([env / "bin" / "sh", "-c", "cat /etc/vr-change"]).stdout == "changed\n"
    assert project.venvroot("reset", env).returncode == 0
    assert project.run([env / "bin" / "sh", "-c", "cat /etc/vr-change"]).returncode == 1


def test_directory_root_stays_pristine(project: Project, bb_root: Path) -> None:
    before = tree(bb_root)
    env = project.create("env", "--root", bb_root, "--link", "sh")
    check_root(project, env)
    assert tree(bb_root) == before
    assert not (bb_root / "etc" / "vr-change").exists()
    info = project.venvroot("info", env).stdout
    assert f"directory ({bb_root})" in info and "env python" in info and "none" in info


def _tarball(root: Path, dest: Path, compression: str) -> Path:
    if compression == "zst":
        plain = _tarball(root, dest, "")
        subprocess.run([need("zstd"), "-q", "--rm", str(plain), "-o", f"{plain}.zst"], check=True)
        return Path(f"{plain}.zst")
    path = dest / ("root.tar" + (f".{compression}" if compression else ""))
    with tarfile.open(path, f"w:{compression}" if compression else "w") as tar:
        tar.add(root, arcname=".")
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("compression", ["", "gz", "xz", "zst"])
def test_tarball_root_is_unpacked_once(project: Project, bb_root: Path, compression: str) -> None:
    tarball = _tarball(bb_root, project.path, compression)
    env = project.create("env", "--root", tarball, "--link", "sh")
    tarball.unlink()  # unpacked once: the env no longer needs it
    check_root(project, env)


def test_zst_without_the_zstd_tool_is_a_clear_error(project: Project, bb_root: Path) -> None:
    tarball = _tarball(bb_root, project.path, "zst")
    environ = dict(project.environ, PATH="/nonexistent")
    result = project.venvroot(project.path / "env", "--root", tarball, env=environ)
    assert result.returncode == 1
    assert "zstd tool, which is not installed" in one_error_line(result)
    assert sorted(p.name for p in project.path.iterdir()) == [tarball.name]


def test_docker_image_root(project: Project, busybox_image: str) -> None:
    argv = [*VENVROOT, str(project.path / "env"), "--root", f"docker:{busybox_image}", "--link", "sh"]
    if project.who.user is not None:
        argv = as_docker_user(project.who.user, argv)
    result = subprocess.run(argv, capture_output=True, text=True, env=project.environ, cwd=project.path)
    assert result.returncode == 0, result.stderr
    check_root(project, project.path / "env")


def _bad(project: Project, *args: str | Path, code: int = 2) -> str:
    result = project.venvroot(project.path / "env", *args)
    assert result.returncode == code, result.stderr
    line = one_error_line(result)
    assert not (project.path / "env").exists()
    assert in_environment(project.path / "env") == []
    return line


def test_bad_roots_are_one_clear_line(project: Project) -> None:
    assert "root /nonexistent-root does not exist" in _bad(project, "--root", "/nonexistent-root")
    assert "root tarball /nope/root.tar.gz does not exist" in _bad(project, "--root", "/nope/root.tar.gz")
    junk = project.path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b\x08 this is not gzip data at all" * 10)
    assert "not a valid tarball" in _bad(project, "--root", junk, code=1)
    empty = project.path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    assert "the tarball is empty" in _bad(project, "--root", empty, code=1)
    assert "--root docker: needs an image name" in _bad(project, "--root", "docker:")


def test_unsafe_tarballs_write_nothing_outside(project: Project) -> None:
    victim = project.path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious")

    def member(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        data = b"pwned\n" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    cases = {
        "dotdot.tar": [("etc/../../victim/keep", tarfile.REGTYPE, "")],
        "through-symlink.tar": [("etc", tarfile.SYMTYPE, str(victim)), ("etc/keep", tarfile.REGTYPE, "")],
        "hardlink-out.tar": [("bad", tarfile.LNKTYPE, "../victim/keep")],
        "hardlink-through-symlink.tar": [
            ("v", tarfile.SYMTYPE, str(victim)),
            ("bad", tarfile.LNKTYPE, "v/keep"),
        ],
    }
    for name, members in cases.items():
        path = project.path / name
        with tarfile.open(path, "w") as tar:
            for entry in members:
                member(tar, *entry)
        assert "refusing to unpack" in _bad(project, "--root", path, code=1), name
    assert (victim / "keep").read_text() == "precious"
    # Replacing a symlink by a file removes the link; nothing is written through it.
    path = project.path / "replace.tar"
    with tarfile.open(path, "w") as tar:
        member(tar, "bin", tarfile.DIRTYPE)
        member(tar, "bin/sh", tarfile.SYMTYPE, str(victim / "keep"))
        member(tar, "bin/sh")
    env = project.create("env", "--root", path)
    assert (victim / "keep").read_text() == "precious"
    assert (env / ".venvroot" / "ns" / "lower" / "bin" / "sh").read_text() == "pwned\n"


def test_bad_users_and_links_are_one_clear_line(project: Project, bb_root: Path) -> None:
    assert "bad --user spec" in _bad(project, "--root", bb_root, "--user", "1:2:3:x")
    assert "bad --user spec" in _bad(project, "--root", bb_root, "--user", "no such user")
    assert "cannot link 'python3'" in _bad(project, "--root", bb_root, "--link", "python3")
    assert "-p python3.99" in _bad(project, "--python", "python3.99")


def test_python_is_skipped_when_the_root_has_none(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root)
    assert not (env / "bin" / "python").exists() and not (env / "pyvenv.cfg").exists()
    shutil.rmtree(env / ".venvroot" / "ns" / "shells")  # a broken env still reports clearly
    out = project.venvroot("info", env)
    assert out.returncode == 0 and "none (the root has no Python)" in out.stdout
