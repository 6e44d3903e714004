"""Activation of docker environments in real bash shells: the container runs while the env is
active, stops (with everything in it) when the last shell deactivates or exits unless the env is
persistent, and the on-activate/on-deactivate commands run inside."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import need
from docker_helpers import (
    busybox_image_fixture,  # noqa: F401 - the busybox_image fixture
    container_of,
    container_state,
    daemon_fixture,  # noqa: F401 - the daemon fixture
    top,
    venvroot,
)

PROMPT = "VR-PROMPT> "


@pytest.fixture
def project() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="venvroot-docker-session-"))
    yield base
    for env in base.iterdir():
        if (env / "venvroot.cfg").is_file():
            venvroot("destroy", str(env), check=False)
    shutil.rmtree(base, ignore_errors=True)


def make_env(project: Path, image: str, *options: str) -> Path:
    path = project / "env"
    venvroot(str(path), "--backend", "docker", "--image", image, "--link", "sh", *options)
    return path


class Shell:
    """An interactive bash in the project directory."""

    def __init__(self, cwd: Path) -> None:
        need("bash")
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["PS1"] = PROMPT
        self.child = pexpect.spawn(
            "bash", ["--norc", "--noprofile"], cwd=str(cwd), env=env, encoding="utf-8", timeout=60
        )
        self.child.expect(PROMPT)
        self.run("bind 'set enable-bracketed-paste off' 2>/dev/null")

    def run(self, command: str) -> str:
        """Run ``command``; its output, without the echoed command line and the prompt's prefix."""
        self.child.sendline(command)
        self.child.expect(PROMPT)
        lines = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", self.child.before).replace("\r", "").split("\n")
        return "\n".join(lines[1:-1])

    def close(self) -> None:
        self.child.close(force=True)


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_activation_runs_the_container_and_deactivate_stops_everything(
    project: Path, busybox_image: str
) -> None:
    env = make_env(project, busybox_image)
    name = container_of(env)
    assert container_state(name) == "exited"
    shell = Shell(project)
    try:
        shell.run("source env/bin/activate")
        assert container_state(name) == "running"
        # (With a tty, a program's background children get SIGHUP when it ends, as from any
        # terminal that closes; without one they live on, until the session ends.)
        assert shell.run("sh -c 'sleep 321 >/dev/null 2>&1 &' </dev/null; echo started").strip() == "started"
        assert "sleep 321" in top(name)
        shell.run("deactivate")
        assert container_state(name) == "exited"  # and so is the background sleep
        shell.run("source env/bin/activate")
        assert "sleep 321" not in top(name)
        shell.run("deactivate")
    finally:
        shell.close()


def test_persistent_env_keeps_running_after_deactivate(project: Path, busybox_image: str) -> None:
    env = make_env(project, busybox_image, "--persistent")
    name = container_of(env)
    shell = Shell(project)
    try:
        shell.run("source env/bin/activate")
        shell.run("sh -c 'sleep 322 >/dev/null 2>&1 &' </dev/null")
        shell.run("deactivate")
        assert container_state(name) == "running"
        assert "sleep 322" in top(name)
    finally:
        shell.close()


def test_hooks_run_inside_in_order(project: Path, busybox_image: str) -> None:
    log = project / "hooks.log"
    env = make_env(
        project,
        busybox_image,
        "--on-activate", f"echo a1 $(id -un) >> '{log}'",
        "--on-activate", f"echo a2 >> '{log}'; test -e /r && echo inside >> '{log}'",
        "--on-deactivate", f"echo d1 >> '{log}'",
        "--on-deactivate", f"echo d2 >> '{log}'",
    )  # fmt: skip
    user = pwd.getpwuid(os.getuid()).pw_name
    shell = Shell(project)
    try:
        shell.run("source env/bin/activate")
        assert log.read_text() == f"a1 {user}\na2\ninside\n"
        shell.run("deactivate")
        assert log.read_text() == f"a1 {user}\na2\ninside\nd1\nd2\n"
        assert container_state(container_of(env)) == "exited"
    finally:
        shell.close()


def test_shells_share_the_container_until_the_last_deactivates(project: Path, busybox_image: str) -> None:
    log = project / "hooks.log"
    env = make_env(project, busybox_image, "--on-activate", f"echo up >> '{log}'")
    name = container_of(env)
    first, second = Shell(project), Shell(project)
    try:
        first.run("source env/bin/activate")
        second.run("source env/bin/activate")
        assert log.read_text() == "up\n"  # the session started once
        first.run("deactivate")
        assert container_state(name) == "running"
        assert second.run("sh -c 'echo still here'").strip() == "still here"
        second.run("deactivate")
        assert container_state(name) == "exited"
    finally:
        first.close()
        second.close()


def test_a_shell_that_exits_without_deactivating_ends_its_session(project: Path, busybox_image: str) -> None:
    log = project / "hooks.log"
    env = make_env(project, busybox_image, "--on-deactivate", f"echo down >> '{log}'")
    name = container_of(env)
    shell = Shell(project)
    shell.run("source env/bin/activate")
    assert container_state(name) == "running"
    shell.close()  # the terminal goes away: no deactivate
    assert wait_for(lambda: container_state(name) == "exited"), "the container outlived its last shell"
    assert log.read_text() == "down\n"
