"""The ``--pid`` setting: a PID namespace of the env's own, its holder as init, joins that relay."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ns_backend_helpers import (
    PROMPT,
    Project,
    Shell,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    host_mounts_mention,
    in_environment,
    process_tree,
    processes_with,
    project_fixture,  # noqa: F401 - the project fixture
    wait_for,
)
from ns_helpers import who_fixture  # noqa: F401 - the who fixture
from test_faults import assert_mounted_once, overlay_mounts
from test_ns_backend_cold import record, shim
from test_ns_starter import starter_fixture, stop  # noqa: F401 - the starter fixture

# Lists what the program sees: its own pid, its parent's, and every pid under /proc.
SEEN = (
    "import os; print(os.getpid(), os.getppid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
)


# A minute in short sleeps: Python runs a handler only between bytecodes, so a signal that lands just
# before a long sleep's syscall would wait for the whole sleep.
WAIT = "for _ in range(600): time.sleep(0.1)"


def pid_env(project: Project, *options: str | Path) -> Path:
    return project.create("env", "--pid", "--link", "sh", "--link", "sleep", *options)


def seen(out: subprocess.CompletedProcess) -> tuple[int, int, list[int]]:
    assert out.returncode == 0, out.stderr
    own, parent, pids = out.stdout.split(" ", 2)
    return int(own), int(parent), eval(pids)  # a list of ints the program printed


def test_programs_see_only_the_envs_processes_on_every_way_in(project: Project, starter: str) -> None:
    env = pid_env(project)
    assert "pid" in project.venvroot("info", env).stdout
    cold = seen(shim(project, env, "python", "-c", SEEN))  # a Python start (no start file for --pid)
    holder = record(env)
    assert holder is not None and not (env / ".venvroot" / "ns" / "start").exists()
    warm = seen(shim(project, env, "python", "-c", SEEN))  # the compiled --join
    run = seen(project.venvroot("run", env, "--", "python", "-c", SEEN))  # Python's join
    for own, parent, pids in (cold, warm, run):
        assert parent == 0  # the relay stays outside
        assert 1 in pids and own in pids and max(pids) < 200, pids  # not the host's processes
    assert Path(f"/proc/{holder[0]}/exe").exists()  # the recorded holder is the init, seen from here
    with open(f"/proc/{holder[0]}/status") as f:
        assert "NSpid:" in (line := next(x for x in f if x.startswith("NSpid:"))) and line.split()[-1] == "1"


def test_exit_status_and_signals_pass_through_the_relay(project: Project) -> None:
    env = pid_env(project)
    for _ in range(2):  # cold, then warm
        assert shim(project, env, "sh", "-c", "exit 7").returncode == 7
    assert shim(project, env, "sh", "-c", "kill -TERM $$").returncode == -signal.SIGTERM  # the same death
    done = project.path / "got-term"
    code = f"import signal,sys,time; signal.signal(15, lambda *a: (open({str(done)!r},'w'), sys.exit(3)));"
    proc = project.who.popen(
        [str(env / "bin" / "python"), "-c", code + "print('ready', flush=True)\n" + WAIT],
        cwd=str(project.path), env=project.environ, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)  # to the shim's process: the relay passes it on
    try:
        assert proc.wait(10) == 3 and done.exists()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the relay and its program outlived SIGTERM:\n{process_tree(proc.pid)}")
    finally:
        proc.kill()


def test_a_killed_shim_takes_its_program_with_it(project: Project) -> None:
    env = pid_env(project)
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    proc = project.who.popen([str(env / "bin" / "sleep"), "4711"], cwd=str(project.path), env=project.environ)
    try:
        assert wait_for(lambda: len(processes_with("sleep 4711")) == 2)  # the relay and the program
        proc.kill()
        proc.wait()
        assert wait_for(lambda: processes_with("sleep 4711") == [], 2)
    finally:
        proc.kill()


def test_a_killed_holder_ends_every_program_and_the_next_shim_starts_afresh(
    project: Project, bb_root: Path
) -> None:
    env = pid_env(project, "--root", bb_root)
    sleepers = [
        project.who.popen([str(env / "bin" / "sleep"), "4712"], cwd=str(project.path), env=project.environ)
        for _ in range(3)
    ]
    try:
        assert wait_for(lambda: len(programs("sleep 4712")) == 3)
        holder = record(env)
        assert holder is not None
        os.kill(holder[0], signal.SIGKILL)
        assert wait_for(lambda: processes_with("sleep 4712") == [], 5)  # no orphan: the kernel ends them
        assert [p.wait(5) for p in sleepers] == [-signal.SIGKILL] * 3
        out = shim(project, env, "sh", "-c", "echo again > /etc/vr-pid; cat /etc/vr-pid")
        assert (out.returncode, out.stdout) == (0, "again\n"), out.stderr
        assert record(env) is not None and record(env) != holder
        assert_mounted_once(env)
        assert project.venvroot("destroy", env).returncode == 0
        assert not env.exists() and host_mounts_mention(env) == [] and not overlay_mounts(env)
    finally:
        for p in sleepers:
            p.kill()


def test_stopping_the_env_ends_everything_inside(project: Project) -> None:
    env = pid_env(project)
    bg = shim(project, env, "sh", "-c", "sleep 4713 >/dev/null 2>&1 & echo started")  # left running inside
    assert bg.stdout == "started\n" and wait_for(lambda: len(programs("sleep 4713 ")) == 1)
    stop(project, env)
    assert wait_for(lambda: programs("sleep 4713 ") == [] and in_environment(env) == [], 5)


def test_nsenter_joins_the_pid_namespace_too(project: Project) -> None:
    made = project.venvroot(project.path / "env", "--pid", env=dict(project.environ, VENVROOT_NO_STARTER="1"))
    assert made.returncode == 0, made.stderr
    env = project.path / "env"
    assert "nsenter" in (env / ".venvroot" / "shim.sh").read_text()
    for _ in range(2):
        _, parent, pids = seen(shim(project, env, "python", "-c", SEEN))
        assert 1 in pids and max(pids) < 200 and parent == 0


def test_job_control_through_the_relay(project: Project) -> None:
    env = pid_env(project)
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    shell = Shell(project.who, project.path, project.environ)
    try:
        shell.child.sendline(f"{env}/bin/sleep 4714")
        assert wait_for(lambda: len(processes_with("sleep 4714")) == 2)
        shell.child.sendcontrol("z")
        shell.child.expect("Stopped")
        shell.child.expect(PROMPT)
        assert all(_state(p) == "T" for p in processes_with("sleep 4714"))
        shell.child.sendline("fg")
        time.sleep(0.5)
        assert all(_state(p) in "SR" for p in processes_with("sleep 4714"))
        shell.child.sendcontrol("c")
        shell.child.expect(PROMPT)
        code, _ = shell.status("true")
        assert code == 0 and wait_for(lambda: processes_with("sleep 4714") == [], 2)
    finally:
        shell.close()


def programs(text: str) -> list[int]:
    """The programs (not relays, nor the holder's processes) with ``text`` in their command line."""
    found = []
    for pid in processes_with(text):
        try:
            with open(f"/proc/{pid}/status") as f:
                depth = len(next(x for x in f if x.startswith("NSpid:")).split()) - 1
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if depth == 2 and b"entry.py" not in cmdline:
            found.append(pid)
    return found


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


@pytest.fixture(autouse=True)
def _no_leftovers(project: Project) -> object:
    yield
    for text in ("sleep 4711", "sleep 4712", "sleep 4713", "sleep 4714"):
        for pid in processes_with(text):
            os.kill(pid, signal.SIGKILL)
