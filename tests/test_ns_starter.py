"""The compiled starter, through real shims, as root and as the unprivileged user: once a Python
start has written the env's start file, a cold shim starts the namespaces without Python (the
recorded holder is the starter's anchor, its parent the brain), runs the program right, and the
brain ends it all after the linger; a start file that no longer matches is left to the Python
starter, which writes it afresh; a start that fails falls back to the Python path and leaves
nothing; the brain runs the on-deactivate commands when the last activated shell dies; and an env
made with the starter turned off never uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ns_backend_helpers import (
    Project,
    Shell,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    host_mounts_mention,
    in_environment,
    processes_with,
    project_fixture,  # noqa: F401 - the project fixture
    wait_for,
)
from ns_helpers import Who, who_fixture  # noqa: F401 - the who fixture
from test_ns_backend_cold import installed_entry, parent_of, record, shim


@pytest.fixture(name="starter", scope="session")
def starter_fixture() -> str:
    """The installed compiled starter (the test user runs the same installation)."""
    code = "from venvroot.backends.ns import startfile as s; print(s.STARTER if s.available() else '')"
    found = subprocess.run([sys.executable, "-I", "-c", code], cwd="/", capture_output=True, text=True)
    if not found.stdout.strip():
        reason = "venvroot was installed without its compiled starter (no C compiler at install)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"required under CI=true: {reason}")
        pytest.skip(reason)
    return found.stdout.strip()


def start_file(env: Path) -> Path:
    return env / ".venvroot" / "ns" / "start"


def stop(project: Project, env: Path) -> None:
    """Stop the env's namespaces as deactivating does when no shell is left."""
    assert project.run([env / "bin" / ".venvroot-session", "stop", "1"]).returncode == 0
    assert record(env) is None


def written_down(project: Project, env: Path) -> None:
    """A first (Python) start writes the start file; then the env is stopped."""
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    assert start_file(env).is_file()
    stop(project, env)


def exe(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/exe")


def anchors_of(env: Path) -> list[int]:
    """Live starter processes of ``env`` in a mount namespace of their own (K, not A or B)."""
    here = os.stat("/proc/self/ns/mnt").st_ino
    found = []
    for pid in processes_with(str(start_file(env))):
        try:
            if os.stat(f"/proc/{pid}/ns/mnt").st_ino != here:
                found.append(pid)
        except OSError:
            continue
    return found


def brain_of(env: Path) -> list[int]:
    return processes_with(f"--brain {env} ")


def test_a_cold_shim_starts_without_python(project: Project, bb_root: Path, starter: str) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    written_down(project, env)
    script = f"id -u; pwd; echo made > {project.path}/made; echo hi > /etc/x && cat /etc/x; exit 7"
    out = shim(project, env, "sh", "-c", script)
    assert (out.returncode, out.stdout) == (7, f"{project.who.uid}\n{project.path}\nhi\n"), out.stderr
    assert os.stat(project.path / "made").st_uid == project.who.uid
    assert not Path("/etc/x").exists()
    found = record(env)
    assert found is not None
    anchor = found[0]
    assert exe(anchor) == starter
    brain = parent_of(anchor)
    assert wait_for(lambda: brain_of(env) == [brain], 5)  # its Python starts after the first program
    # Shims in a row join it; nothing runs: the brain ends it all after the linger.
    assert shim(project, env, "sh", "-c", "echo again").stdout == "again\n"
    assert record(env) == found
    assert wait_for(lambda: record(env) is None, 20)
    assert wait_for(lambda: not brain_of(env) and not os.path.exists(f"/proc/{anchor}"), 5)
    assert wait_for(lambda: in_environment(env) == [], 5)
    assert host_mounts_mention(env) == []
    assert "ended" not in (env / ".venvroot" / "ns" / "holder.log").read_text()


# What a program sees of the tree: host and domain name, each mount point with its options and type.
TREE = (
    "hostname; cat /proc/sys/kernel/domainname; "
    "sed 's/^[^ ]* [^ ]* [^ ]* [^ ]* \\([^ ]*\\) \\([^ ]*\\).* - \\([^ ]*\\) .*/\\1 \\2 \\3/' "
    "/proc/self/mountinfo | sort"
)


def test_both_starters_build_one_tree_from_one_list(project: Project, bb_root: Path, starter: str) -> None:
    """The Python start carries out the list it writes down; the compiled one, replaying it, makes
    the same tree: the same mounts with the same options, the same host and domain names."""
    data = project.path / "data"
    data.mkdir()
    env = project.create(
        "env", "--root", bb_root, "--link", "sh", "--hostname", "box.example.org",
        "--directory", f"{data}:/data:ro",
    )  # fmt: skip
    by_python = shim(project, env, "sh", "-c", TREE)
    found = record(env)
    assert found is not None and exe(found[0]) != starter
    stop(project, env)
    by_starter = shim(project, env, "sh", "-c", TREE)
    found = record(env)
    assert found is not None and exe(found[0]) == starter
    assert by_python.returncode == by_starter.returncode == 0, by_python.stderr + by_starter.stderr
    lines = by_python.stdout.splitlines()
    assert lines[:2] == ["box", "example.org"]
    assert "/data ro," in by_python.stdout and f"{project.path} rw," in by_python.stdout
    assert by_starter.stdout == by_python.stdout
    stop(project, env)


def test_a_step_only_python_carries_out_is_left_to_it(project: Project, bb_root: Path, starter: str) -> None:
    """A start file with a step the compiled starter does not know (a PID namespace's) is stale."""
    env = project.create("env", "--root", bb_root, "--link", "sh")
    written_down(project, env)
    data = start_file(env).read_bytes()
    start_file(env).write_bytes(data.replace(b"\0root-", b"\0pid\x000\0root-", 1))
    assert start_file(env).read_bytes() != data
    assert project.run([starter, start_file(env)]).returncode == 3
    assert record(env) is None and in_environment(env) == []


def test_a_stale_start_file_is_left_to_the_python_starter(
    project: Project, bb_root: Path, starter: str
) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    written_down(project, env)
    before = start_file(env).read_bytes()
    cfg = env / "venvroot.cfg"
    cfg.write_text(cfg.read_text())  # the settings may have changed: same text, a new file
    assert project.run([starter, start_file(env)]).returncode == 3
    assert record(env) is None and in_environment(env) == []
    out = shim(project, env, "sh", "-c", "echo python")
    assert (out.returncode, out.stdout) == (0, "python\n"), out.stderr
    found = record(env)
    assert found is not None and exe(found[0]) != starter  # the Python holder
    assert start_file(env).read_bytes() != before  # written afresh
    stop(project, env)
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    found = record(env)
    assert found is not None and exe(found[0]) == starter
    stop(project, env)
    # Nor is a start whose brain could not run (venvroot moved away): it would leave K alone.
    entry = installed_entry()
    data = start_file(env).read_bytes()
    assert f"\0{entry}\0".encode() in data
    start_file(env).write_bytes(data.replace(entry.encode(), entry.encode() + b".gone"))
    assert project.run([starter, start_file(env)]).returncode == 3
    assert record(env) is None


def test_a_host_mount_made_since_is_left_to_the_python_starter(starter: str, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("mounting on the host needs root")
    project = Project(Who("root", None))
    try:
        env = project.create("env", "--link", "sh")
        written_down(project, env)
        point = tmp_path / "point"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(point)], check=True)
        try:
            assert project.run([starter, start_file(env)]).returncode == 3
        finally:
            subprocess.run(["umount", str(point)], check=True)
        assert project.run([starter, start_file(env)]).returncode == 0
        found = record(env)
        assert found is not None and exe(found[0]) == starter
        assert shim(project, env, "sh", "-c", "test -d /r/usr && echo host").stdout == "host\n"
    finally:
        project.close()


def test_a_failing_compiled_start_falls_back_and_leaves_nothing(
    project: Project, bb_root: Path, starter: str
) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    written_down(project, env)
    (env / ".venvroot" / "ns" / "upper" / "r").rmdir()  # a mount point the Python starter makes again
    failed = project.run([starter, start_file(env)])
    assert failed.returncode == 1 and "/r" in failed.stderr
    # Its process in the half-built namespaces is gone (the starter waits for that before it
    # returns, so that the Python start that follows never mounts the same writable layers twice).
    assert anchors_of(env) == []
    assert record(env) is None
    assert wait_for(lambda: in_environment(env) == [] and not brain_of(env), 5)
    assert host_mounts_mention(env) == []
    out = shim(project, env, "sh", "-c", "test -d /r/usr && echo fell-back")
    assert (out.returncode, out.stdout) == (0, "fell-back\n"), out.stderr


def test_the_brain_runs_the_hooks_when_the_last_shell_dies(
    project: Project, bb_root: Path, starter: str
) -> None:
    log = project.path / "hooks.log"
    env = project.create(
        "env", "--root", bb_root, "--link", "sh", "--on-deactivate", f"echo bye $(id -u) >> {log}"
    )
    written_down(project, env)
    log.unlink()
    shell = Shell(project.who, project.path, project.environ)
    try:
        shell.run(f". {env}/bin/activate")
        shell.run("sh -c 'sleep 300' & echo started")
        assert wait_for(lambda: record(env) is not None and len(in_environment(env)) >= 2, 15)
        found = record(env)
        assert found is not None and exe(found[0]) == starter
    finally:
        shell.close()  # the terminal closes without deactivating
    assert wait_for(lambda: log.exists() and log.read_text() == f"bye {project.who.uid}\n", 20)
    assert wait_for(lambda: record(env) is None and in_environment(env) == [] and not brain_of(env), 15)
    assert host_mounts_mention(env) == []


def test_turned_off_the_starter_is_never_used(project: Project, bb_root: Path, starter: str) -> None:
    project.environ["VENVROOT_NO_STARTER"] = "1"
    env = project.create("env", "--root", bb_root, "--link", "sh")
    fragment = (env / ".venvroot" / "shim.sh").read_text()
    assert starter not in fragment and "nsenter" in fragment  # nsenter joins instead
    for _ in range(2):
        assert shim(project, env, "sh", "-c", "echo ok").stdout == "ok\n"
        found = record(env)
        assert found is not None and exe(found[0]) != starter
        out = shim(project, env, "sh", "-c", "echo joined; cat /proc/$$/comm; pwd")
        assert out.stdout == f"joined\nsh\n{project.path}\n", out.stderr
        assert record(env) == found
        assert not start_file(env).exists()
        stop(project, env)
