"""Activation of ns environments in real interactive bash shells (pexpect), as root and as the
unprivileged user: what runs inside ends with the last deactivation (or closed terminal) unless
the env is persistent, shells share one session, and the hooks run inside, in order."""

from __future__ import annotations

from pathlib import Path

from ns_backend_helpers import (
    Project,
    Shell,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    in_environment,
    processes_with,
    project_fixture,  # noqa: F401 - the project fixture
    wait_for,
)
from ns_helpers import Who, who_fixture  # noqa: F401 - the who fixture


def background(shell: Shell, seconds: int) -> None:
    """Start `sleep SECONDS` inside, in the background, through a shim (it outlives the shim)."""
    shell.run(f"sh -c 'sleep {seconds} >/dev/null 2>&1 &' </dev/null")
    assert wait_for(lambda: bool(processes_with(f"sleep {seconds}")))


def test_deactivate_ends_everything_started_in_the_session(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    shell = Shell(project.who, project.path, project.environ)
    try:
        assert shell.status("source env/bin/activate")[0] == 0
        assert shell.run("sh -c 'cat /etc/hostname'").strip() == "busybox-root"
        background(shell, 4331)
        assert in_environment(env)
        assert shell.status("deactivate")[0] == 0
        assert processes_with("sleep 4331") == []  # gone when deactivate returns
        assert in_environment(env) == []
        # A new activation starts afresh.
        assert shell.status("source env/bin/activate")[0] == 0
        assert shell.run("sh -c 'echo again'").strip() == "again"
        assert shell.status("deactivate")[0] == 0
    finally:
        shell.close()


def test_persistent_env_keeps_running_after_deactivate(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh", "--persistent")
    shell = Shell(project.who, project.path, project.environ)
    try:
        assert shell.status("source env/bin/activate")[0] == 0
        background(shell, 4332)
        assert shell.status("deactivate")[0] == 0
        assert processes_with("sleep 4332")
        assert project.venvroot("destroy", env).returncode == 0
        assert processes_with("sleep 4332") == [] and in_environment(env) == []
    finally:
        shell.close()


def test_shells_share_a_session_and_hooks_run_inside_in_order(project: Project, bb_root: Path) -> None:
    log = project.path / "hooks.log"
    # Each hook proves it ran inside: /r (the host at /r) exists only there.
    hook = "test -d /r/proc && echo {} >> " + str(log)
    env = project.create(
        "env", "--root", bb_root, "--link", "sh",
        "--on-activate", hook.format("on-activate-1"), "--on-activate", "exit 3",
        "--on-activate", hook.format("on-activate-2"),
        "--on-deactivate", hook.format("on-deactivate-1"), "--on-deactivate", hook.format("on-deactivate-2"),
    )  # fmt: skip
    first = Shell(project.who, project.path, project.environ)
    second = Shell(project.who, project.path, project.environ)
    try:
        code, out = first.status("source env/bin/activate")
        assert code == 0, out  # a failing hook is reported; activation goes on
        assert "'exit 3' failed with exit status 3" in out
        background(first, 4333)
        assert second.status("source env/bin/activate")[0] == 0  # joins: no hooks again
        assert first.status("deactivate")[0] == 0
        assert processes_with("sleep 4333")  # the second shell still uses the session
        assert second.run("sh -c 'echo still'").strip() == "still"
        assert second.status("deactivate")[0] == 0
        assert processes_with("sleep 4333") == [] and in_environment(env) == []
        expected = ["on-activate-1", "on-activate-2", "on-deactivate-1", "on-deactivate-2"]
        assert log.read_text().split() == expected
    finally:
        first.close()
        second.close()


def test_a_closed_terminal_ends_its_session(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    shell = Shell(project.who, project.path, project.environ)
    try:
        assert shell.status("source env/bin/activate")[0] == 0
        background(shell, 4334)
    finally:
        shell.close()  # the terminal goes away without deactivate
    assert wait_for(lambda: processes_with("sleep 4334") == [], 15)
    assert wait_for(lambda: in_environment(env) == [], 15)


def test_activate_and_deactivate_with_nothing_run(project: Project, bb_root: Path) -> None:
    """Activation registers the shell without starting anything; nothing is left after."""
    env = project.create("env", "--root", bb_root, "--link", "sh")
    shell = Shell(project.who, project.path, project.environ)
    try:
        assert shell.status("source env/bin/activate")[0] == 0
        assert (env / ".venvroot" / "ns" / "shells" / str(shell.pid)).read_text().strip()
        assert in_environment(env) == []
        assert shell.status("deactivate")[0] == 0
        assert (env / ".venvroot" / "ns" / "shells" / str(shell.pid)).read_text() == ""
        assert in_environment(env) == []
    finally:
        shell.close()
