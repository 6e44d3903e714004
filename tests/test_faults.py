"""Faults injected into real ns environments, as root and as the unprivileged user: a holder, a
brain or a shim killed with SIGKILL at varied moments of a cold start, a killed holder under a
running program, 200 cold shims at once, a full disk, an env moved with mv. After each: the next
shim works, no overlay upper directory is mounted twice, nothing leaks into the host's mount
table, and nothing of the env runs after it is stopped or destroyed."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from docker_helpers import as_docker_user, busybox_image_fixture, daemon_fixture  # noqa: F401 - fixtures
from ns_backend_helpers import (
    VENVROOT,
    Project,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    host_mounts_mention,
    in_environment,
    namespaces_of,
    processes_with,
    project_fixture,  # noqa: F401 - the project fixture
    wait_for,
)
from ns_helpers import who_fixture  # noqa: F401 - the who fixture
from test_ns_backend_cold import record, shim
from test_ns_backend_sources import _tarball
from test_ns_starter import exe, start_file, starter_fixture, stop  # noqa: F401 - the starter fixture


def overlay_mounts(env: Path) -> dict[str, set[tuple[int, str]]]:
    """Each upper directory of ``env`` mounted anywhere -> the (mount namespace, superblock) pairs
    it is mounted in, read from every process's mount table."""
    seen: dict[str, set[tuple[int, str]]] = {}
    needle = f"upperdir={env}/.venvroot/ns/"
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{name}/ns/mnt").st_ino
            with open(f"/proc/{name}/mountinfo") as handle:
                table = handle.read()
        except OSError:
            continue
        for line in table.splitlines():
            if needle in line:
                upper = re.search(r"upperdir=([^,\s]+)", line)
                assert upper is not None, line
                seen.setdefault(upper.group(1), set()).add((ns, line.split()[2]))
    return seen


def assert_mounted_once(env: Path) -> None:
    """One namespace, one superblock per upper directory: never two overlays on one upper dir."""
    mounts = overlay_mounts(env)
    twice = {upper: where for upper, where in mounts.items() if len({sb for _, sb in where}) > 1}
    assert not twice, f"upper directories mounted in two superblocks: {twice}"
    assert len({ns for where in mounts.values() for ns, _ in where}) <= 1, mounts


def assert_ended(project: Project, env: Path) -> None:
    """Stopped as deactivating stops it: nothing of the env runs, nothing is mounted."""
    stop(project, env)
    assert wait_for(lambda: in_environment(env) == [] and not overlay_mounts(env), 10)
    assert host_mounts_mention(env) == []


def make_env(project: Project, kind: str, bb_root: Path, image: str = "") -> Path:
    """An env of every root kind: the host view, a directory, a tarball, a docker image."""
    root: list[str | Path] = []
    if kind == "dir":
        root = ["--root", bb_root]
    elif kind == "tarball":
        root = ["--root", _tarball(bb_root, project.path, "")]
    elif kind == "image":
        argv = [
            *VENVROOT,
            str(project.path / "env"),
            "--root",
            f"docker:{image}",
            "--link",
            "sh",
            "--link",
            "sleep",
        ]
        if project.who.user is not None:
            argv = as_docker_user(project.who.user, argv)
        made = subprocess.run(argv, capture_output=True, text=True, env=project.environ, cwd=project.path)
        assert made.returncode == 0, made.stderr
        return project.path / "env"
    return project.create("env", *root, "--link", "sh", "--link", "sleep")


@pytest.mark.parametrize("kind", ["host", "dir", "tarball", "image"])
@pytest.mark.parametrize("first", ["python", "compiled"])
def test_a_killed_holder_leaves_its_session_to_be_adopted_never_mounted_twice(
    project: Project, bb_root: Path, starter: str, kind: str, first: str, request: pytest.FixtureRequest
) -> None:
    image = request.getfixturevalue("busybox_image") if kind == "image" else ""
    env = make_env(project, kind, bb_root, image)
    assert shim(project, env, "sh", "-c", "true").returncode == 0  # writes the start file
    stop(project, env)
    if first == "python":
        start_file(env).unlink()
    sleeper = project.who.popen(
        [str(env / "bin" / "sleep"), "60"], cwd=str(project.path), env=project.environ, start_new_session=True
    )
    try:
        assert wait_for(lambda: record(env) is not None and sleeper.pid in in_environment(env), 20)
        holder, token = record(env)  # type: ignore[misc]
        assert (exe(holder) == starter) == (first == "compiled")
        os.kill(holder, signal.SIGKILL)
        assert wait_for(lambda: not os.path.exists(f"/proc/{holder}"))
        assert sleeper.poll() is None  # the program outlives its holder
        out = shim(project, env, "sh", "-c", "echo adopted > /etc/vr-adopted; echo ran")
        assert (out.returncode, out.stdout, out.stderr) == (0, "ran\n", "")
        adopted = record(env)
        assert adopted is not None and adopted[1] == token and adopted[0] != holder
        assert namespaces_of([sleeper.pid, adopted[0]]) and len(namespaces_of([sleeper.pid, adopted[0]])) == 1
        # The new shim ran in the sleeper's session: what it wrote is what the sleeper sees.
        assert Path(f"/proc/{sleeper.pid}/root/etc/vr-adopted").read_text() == "adopted\n"
        assert_mounted_once(env)
        assert project.venvroot("destroy", env).returncode == 0
        assert sleeper.wait(10) is not None  # ended with the env
        assert not env.exists() and host_mounts_mention(env) == [] and not overlay_mounts(env)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_killed_holder_and_its_brain_are_adopted_too(project: Project, bb_root: Path, starter: str) -> None:
    env = make_env(project, "dir", bb_root)
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    stop(project, env)
    sleeper = project.who.popen(
        [str(env / "bin" / "sleep"), "60"], env=project.environ, start_new_session=True
    )
    try:
        assert wait_for(lambda: record(env) is not None and sleeper.pid in in_environment(env), 20)
        anchor = record(env)[0]  # type: ignore[index]
        # The brain's Python starts once the first program ended, or after 50 ms.
        assert wait_for(lambda: len(processes_with(f"--brain {env} ")) == 1, 5)
        brains = processes_with(f"--brain {env} ")
        assert exe(anchor) == starter and len(brains) == 1
        for pid in (brains[0], anchor):
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not os.path.exists(f"/proc/{anchor}"))
        assert shim(project, env, "sh", "-c", "true").returncode == 0
        assert_mounted_once(env)
        assert len(namespaces_of([sleeper.pid, record(env)[0]])) == 1  # type: ignore[index]
        assert_ended(project, env)
        assert sleeper.wait(10) is not None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_kill_9_at_every_stage_of_a_cold_start(project: Project, bb_root: Path, starter: str) -> None:
    """40 cold starts, each with the holder, the brain or the shim killed after a random delay
    (either starter: the compiled one replays, every third start goes through Python)."""
    env = make_env(project, "dir", bb_root)
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    stop(project, env)
    rng = random.Random(13)
    for i in range(40):
        if i % 3 == 0 and start_file(env).exists():
            start_file(env).unlink()
        victim = ("holder", "brain", "shim")[i % 3]
        delay = rng.uniform(0, 0.08)
        first = project.who.popen(
            [str(env / "bin" / "sh"), "-c", "echo first; sleep 1"],
            cwd=str(project.path),
            env=project.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        pids = {
            "shim": [first.pid],
            "holder": [found[0]] if (found := record(env)) else [],
            "brain": processes_with(f"--brain {env} "),
        }[victim]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        out = shim(project, env, "sh", "-c", "echo next")
        where = f"iteration {i}: {victim} killed after {delay * 1000:.0f} ms"
        assert (out.returncode, out.stdout) == (0, "next\n"), f"{where}: {out.stderr}"
        assert_mounted_once(env)
        first.kill()
        first.wait()
        assert_ended(project, env)


def test_200_parallel_cold_shims_all_run(project: Project, bb_root: Path) -> None:
    env = make_env(project, "dir", bb_root)
    procs = [
        project.who.popen(
            [str(env / "bin" / "sh"), "-c", f"echo ran-{i}"],
            cwd=str(project.path),
            env=project.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(200)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 200, [err for _, err in results if err][:3]
    assert sorted(out for out, _ in results) == sorted(f"ran-{i}\n" for i in range(200))
    assert_mounted_once(env)
    assert_ended(project, env)


@pytest.fixture(name="small_disk")
def small_disk_fixture(project: Project) -> Path:
    """A 20 MB tmpfs owned by the test's user, mounted in the host's namespace for the test."""
    where = project.path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", str(where)], check=True)
    os.chown(where, project.who.uid, project.who.gid)
    yield where
    for env in where.iterdir():
        if (env / "venvroot.cfg").is_file():
            project.venvroot("destroy", env)
    subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_full_disk_says_so_and_works_again_once_freed(
    project: Project, bb_root: Path, small_disk: Path
) -> None:
    env = small_disk / "env"
    assert project.venvroot(env, "--root", bb_root, "--link", "sh").returncode == 0
    out = shim(project, env, "sh", "-c", "dd if=/dev/zero of=/big bs=1M count=40 2>&1; echo status=$?")
    assert out.returncode == 0 and "No space left on device" in out.stdout, out.stdout + out.stderr
    assert "status=0" not in out.stdout
    # Full from the host's side too: another env cannot be made there, and nothing of it is left.
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    made = project.venvroot(small_disk / "other", "--root", bb_root)
    assert made.returncode != 0
    lines = made.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], made.stderr
    assert not (small_disk / "other").exists()
    filler.unlink()
    out = shim(project, env, "sh", "-c", "rm /big && echo fine > /etc/f && cat /etc/f")
    assert (out.returncode, out.stdout) == (0, "fine\n"), out.stderr
    assert_mounted_once(env)
    assert_ended(project, env)


def test_a_moved_env_says_so_in_one_line(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    stop(project, env)
    moved = project.path / "moved"
    shutil.move(env, moved)
    out = shim(project, moved, "sh", "-c", "echo hi")
    if out.returncode == 0:
        assert out.stdout == "hi\n"
    else:
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "moved" in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not env.exists()  # nothing written to the old path
    shutil.move(moved, env)
    assert shim(project, env, "sh", "-c", "echo back").stdout == "back\n"
