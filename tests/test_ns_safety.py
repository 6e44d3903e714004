"""Safety of venvroot.ns: mount destinations never leave the root, nothing that existed is removed,
what was created is removed, nothing is mounted in the host, setuid grants nothing rootless."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from ns_helpers import Who, chroot_cli, mountinfo, own_root, who_fixture  # noqa: F401 - fixture

from venvroot.ns import paths


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``root`` with its inode and mode: what "nothing changed" compares."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_ino, st.st_mode)
    return out


def _snapshot(path: str) -> tuple:
    st = os.lstat(path)
    with open(path, "rb") as f:
        return (st.st_ino, st.st_mtime_ns, st.st_size, f.read())


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../../../../../etc/passwd", "/etc/shadow"])
def test_symlinked_destination_cannot_reach_the_host(who: Who, shared_tmp: Path, target: str) -> None:
    """The root's etc/resolv.conf points at a host file: the default resolv.conf mount must land on
    the root's own file (or on one the runner creates there and removes), never on the host's."""
    root = own_root(shared_tmp, who)
    resolv = root / "etc" / "resolv.conf"
    resolv.symlink_to(target)
    os.lchown(resolv, who.uid, who.gid)
    extra: list[str] = []
    source = Path("/etc/resolv.conf")
    if not source.exists():  # the default mount needs the host's file; bind a stand-in instead
        source = shared_tmp / "resolv.conf"
        source.write_text("nameserver 192.0.2.1\n")
        extra = ["-B", f"{source}:/etc/resolv.conf"]
    inner = "/etc/shadow" if "shadow" in target else "/etc/passwd"
    before_host, before_tree, before_mounts = _snapshot(inner), _tree(root), mountinfo()
    before_root_passwd = (root / "etc" / "passwd").read_text()
    result = who.run(
        chroot_cli(*extra, str(root), "/bin/sh", "-c", f"set -e; cat /etc/resolv.conf; echo --; cat {inner}")
    )
    assert result.returncode == 0, result.stderr
    # inside, the mount is on the root's file that the symlink names, resolved in the root
    expected = source.read_text()
    assert result.stdout == f"{expected}--\n{expected}"
    # outside, nothing changed: not the host's file, not the mount table, not the root
    assert _snapshot(inner) == before_host
    assert mountinfo() == before_mounts
    assert _tree(root) == before_tree  # the file created for /etc/shadow inside the root is gone again
    assert (root / "etc" / "passwd").read_text() == before_root_passwd


def test_symlinked_directory_on_the_way_stays_inside(who: Who, shared_tmp: Path) -> None:
    root = own_root(shared_tmp / "base", who)
    (root / "data").symlink_to("/etc")  # inside the root this is the root's /etc
    os.lchown(root / "data", who.uid, who.gid)
    src = shared_tmp / "src"
    src.mkdir()
    before = _tree(root)
    result = who.run(
        chroot_cli("-B", f"{src}:/data/venvroot-mnt", str(root), "/bin/ls", "-d", "/etc/venvroot-mnt")
    )
    assert result.returncode == 0, result.stderr
    assert not os.path.exists("/etc/venvroot-mnt")
    assert _tree(root) == before


def test_existing_directories_survive_created_ones_go(who: Who, shared_tmp: Path) -> None:
    """pychroot removed pre-existing empty directories (and their empty parents)."""
    root = own_root(shared_tmp / "base", who)
    for d in ("mnt/keep", "opt", "srv/empty-parent"):
        (root / d).mkdir(parents=True)
    who.chown(root)
    src = shared_tmp / "src"
    src.mkdir()
    (src / "f").write_text("x")
    before = _tree(root)
    binds = [
        "-B",
        f"{src}:/mnt/keep",
        "-B",
        f"{src}:/opt/new/deep/dir",
        "-B",
        f"{src / 'f'}:/srv/empty-parent/file",
        "-B",
        "tmpfs:/tmp/inside-tmpfs",
        "-B",
        f"{src}:/tmp/inside-tmpfs/nested",
    ]
    result = who.run(
        chroot_cli(
            *binds, str(root), "/bin/sh", "-c", "ls /mnt/keep /opt/new/deep/dir; cat /srv/empty-parent/file"
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/mnt/keep:", "f", "/opt/new/deep/dir:", "f", "x"]
    assert _tree(root) == before


def test_no_mount_leaks_into_the_host_during_a_run(who: Who, busybox_root: Path) -> None:
    before = mountinfo()
    proc = who.popen(
        chroot_cli("-B", "tmpfs:/tmp", str(busybox_root), "/bin/sh", "-c", "echo ready; read x"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "ready\n"  # type: ignore[union-attr]
        assert mountinfo() == before
    finally:
        proc.communicate("done\n", timeout=10)
    assert mountinfo() == before


def test_mount_table_identical_after_200_runs(who: Who, shared_tmp: Path) -> None:
    """Every kind of run: plain exec, a waiting parent that removes created mount points, a PID
    namespace, a Python function, a failing setup."""
    root = own_root(shared_tmp / "base", who)
    src = shared_tmp / "src"
    src.mkdir()
    who.chown(shared_tmp)
    before_tree, before = _tree(root), mountinfo()
    result = who.python(
        r"""
        import json, os, sys
        from venvroot.ns import ChrootError, Mount, run_command, run_function
        root, src = sys.argv[1], sys.argv[2]
        statuses = set()
        for i in range(200):
            kind = i % 5
            if kind == 0:
                statuses.add(run_command(root, ["/bin/true"]))
            elif kind == 1:
                statuses.add(run_command(root, ["/bin/true"], mounts=[Mount.bind(src, "/new/mount/point")]))
            elif kind == 2:
                statuses.add(run_command(root, ["/bin/sh", "-c", "exit 3"], pid=True,
                                         mounts=[Mount.proc(), Mount.tmpfs("/created")]))
            elif kind == 3:
                statuses.add(run_function(root, str.upper, ("ok",), mounts=[Mount.bind(src, "/x")]))
            else:
                try:
                    run_command(root, ["/bin/true"], mounts=[Mount.tmpfs("/a"), Mount.tmpfs("/etc/passwd/x")])
                except ChrootError:
                    statuses.add("error")
        print(json.dumps(sorted(map(str, statuses))))
    """,
        str(root),
        str(src),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"0", "3", "OK", "error"}
    assert mountinfo() == before
    assert _tree(root) == before_tree


def test_no_new_privs_and_setuid_rootless(who: Who, shared_tmp: Path) -> None:
    root = build_root_with_setuid_shell(shared_tmp)
    status = who.run(
        chroot_cli(
            "--user", "self", str(root), "/bin/sh", "-c", "grep NoNewPrivs /proc/self/status; /suid/id -u"
        )
    )
    assert status.returncode == 0, status.stderr
    nnp, uid = status.stdout.split("\n")[:2]
    if who.name == "user":
        assert nnp.split() == ["NoNewPrivs:", "1"]
        assert uid == str(who.uid)  # the setuid-root binary granted nothing
    else:
        assert uid == "0"


def build_root_with_setuid_shell(base: Path) -> Path:
    from conftest import build_busybox_root

    root = build_busybox_root(base / "root")
    (root / "suid").mkdir()
    shutil.copy2(root / "bin" / "busybox", root / "suid" / "id")  # busybox picks the applet from argv[0]
    os.chmod(root / "suid" / "id", 0o4755)  # owned by root, setuid
    return root


# -- the resolver itself, including the fallback walk used where openat2 is missing ----------------


@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inner\n")
    (root / "abs").symlink_to("/etc")
    (root / "rel-escape").symlink_to("../../../../../../etc/passwd")
    (root / "dotdot").symlink_to("etc/../../../../etc")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "dangling").symlink_to("/made/by/walk")
    return root


def _where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@pytest.mark.parametrize("use_openat2", [True, False])
def test_resolution_stays_in_the_root(
    crafted: Path, use_openat2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "_openat2_works", use_openat2)
    root_fd = os.open(crafted, os.O_PATH | os.O_DIRECTORY)
    try:
        assert _where(paths.open_in_root(root_fd, "/abs/passwd")) == str(crafted / "etc" / "passwd")
        assert _where(paths.open_in_root(root_fd, "/rel-escape")) == str(crafted / "etc" / "passwd")
        assert _where(paths.open_in_root(root_fd, "/dotdot")) == str(crafted / "etc")
        assert _where(paths.open_in_root(root_fd, "/../../..")) == str(crafted)
        with pytest.raises(OSError) as loop:
            paths.open_in_root(root_fd, "/loop1")
        assert loop.value.errno == errno.ELOOP
        with pytest.raises(FileNotFoundError):
            paths.open_in_root(root_fd, "/dangling")
        created: list[paths.Created] = []
        fd = paths.resolve_or_create(root_fd, "/dangling", "file", created)
        assert _where(fd) == str(crafted / "made" / "by" / "walk")
        assert not os.path.exists("/made")
        assert [c.shown for c in created] == ["/made", "/made/by", "/made/by/walk"]
        assert paths.remove_created(created) == []
        assert not (crafted / "made").exists()
    finally:
        os.close(root_fd)


def test_removal_spares_what_changed(tmp_path: Path) -> None:
    root_fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        created: list[paths.Created] = []
        os.close(paths.resolve_or_create(root_fd, "/a/b", "dir", created))
        (tmp_path / "a" / "b" / "user-file").write_text("keep me")  # something was put inside
        os.close(paths.resolve_or_create(root_fd, "/c", "file", created))
        (tmp_path / "c").unlink()
        (tmp_path / "c").mkdir()  # replaced by something else: not ours any more
        assert paths.remove_created(created) == []
        assert (tmp_path / "a" / "b" / "user-file").read_text() == "keep me"
        assert stat.S_ISDIR(os.lstat(tmp_path / "c").st_mode)
    finally:
        os.close(root_fd)
