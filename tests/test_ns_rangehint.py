"""Without a subordinate id range, apt and dpkg fail in a ``--user root`` env, and venvroot adds ONE
line naming the user's missing /etc/subuid entry and the administrator's fix, after the program's
own errors: as a second unprivileged user that has no range (.ci/setup makes it), through
``venvroot run`` and a linked shim while the namespaces run. The program's exit status, and a death
by signal, pass unchanged; a success, another program, an env where you are not root inside, or
a user with a range get no line."""

from __future__ import annotations

import pwd
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import need
from ns_backend_helpers import VENVROOT, Project, processes_with, wait_for
from ns_helpers import Who
from test_ns_subids import debian_root, local_repository


@pytest.fixture(name="project")
def project_fixture(rangeless_user: pwd.struct_passwd) -> Project:
    for tool in ("apt-get", "dpkg-deb", "dpkg-scanpackages"):
        need(tool)
    project = Project(Who("user", rangeless_user), prefix="venvroot-norange-")
    yield project
    project.close()


def venvroot_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("venvroot:")]


def hint_of(project: Project, program: str, status: int) -> str:
    name = project.who.user.pw_name
    return (
        f"venvroot: {program} failed (exit status {status}), likely because {name} has no subordinate "
        f"ids in /etc/subuid and /etc/subgid: root inside this environment cannot chown files or call "
        f"setgroups (apt-get and dpkg fail); an administrator can add them: `usermod --add-subuids "
    )


def make_env(project: Project, *options: str) -> Path:
    env = project.path / "E"
    root = debian_root(project)
    made = project.venvroot(env, "--root", root, "--without-pip", "--directory", "/usr:/usr:ro", *options)
    assert made.returncode == 0, made.stderr
    return env


def test_apt_and_dpkg_failing_for_want_of_a_range_get_one_line_with_the_fix(project: Project) -> None:
    local_repository(project)
    env = make_env(project, "--user", "root")
    update = project.venvroot("run", env, "--", "apt-get", "update", timeout=120)
    assert update.returncode == 100, update.stderr
    assert "setgroups" in update.stderr  # apt's own error first
    (line,) = venvroot_lines(update)
    assert update.stderr.rstrip("\n").endswith(line)
    assert line.startswith(hint_of(project, "apt-get", 100)) and line.endswith(
        f" {project.who.user.pw_name}`"
    )
    # dpkg cannot give a package's file to daemon.
    deb = next((project.path / "repo").glob("*.deb"))
    dpkg = project.venvroot("run", env, "--", "dpkg", "-i", deb, timeout=120)
    assert dpkg.returncode != 0 and "ownership" in dpkg.stderr, dpkg.stderr
    (line,) = venvroot_lines(dpkg)
    assert line.startswith(hint_of(project, "dpkg", dpkg.returncode))
    # A linked apt-get while the namespaces run (the shims' sh path would join them directly).
    wrapper = project.path / "root/opt/bin/apt-get"  # the root's /usr is the host's, which link does not see
    wrapper.parent.mkdir()
    wrapper.write_text('#!/bin/sh\nexec /usr/bin/apt-get "$@"\n')
    wrapper.chmod(0o755)
    assert project.venvroot("link", env, "/opt/bin/apt-get").returncode == 0
    assert project.venvroot("run", env, "--", "true").returncode == 0  # started; they linger
    shim = project.run([env / "bin/apt-get", "update"], timeout=120)
    assert shim.returncode == 100
    (line,) = venvroot_lines(shim)
    assert line.startswith(hint_of(project, "apt-get", 100))
    # No line for what succeeds, or for other programs.
    version = project.venvroot("run", env, "--", "apt-get", "--version")
    assert version.returncode == 0 and venvroot_lines(version) == []
    other = project.venvroot("run", env, "--", "sh", "-c", "exit 3")
    assert other.returncode == 3 and venvroot_lines(other) == []


def test_the_watched_program_keeps_its_status_and_its_signals(project: Project) -> None:
    env = make_env(project, "--user", "root")
    tool = project.path / "root/opt/dpkg"  # a program named dpkg, under the test's control
    tool.write_text(
        '#!/bin/sh\n[ "$1" = wait ] && { echo ready; exec sleep 3022; }\necho out; echo err >&2\nexit "$1"\n'
    )
    tool.chmod(0o755)
    done = project.venvroot("run", env, "--", "/opt/dpkg", "7")
    assert (done.returncode, done.stdout) == (7, "out\n")
    assert done.stderr.splitlines()[0] == "err" and venvroot_lines(done)[0].startswith(
        hint_of(project, "dpkg", 7)
    )
    # SIGTERM to the shim's process reaches the program; the shim ends by it, with no line. A
    # SIGKILL of the shim's process takes the program with it (as the program itself would die).
    for sent in (signal.SIGTERM, signal.SIGKILL):
        argv = [*VENVROOT, "run", str(env), "--", "/opt/dpkg", "wait"]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        proc = project.who.popen(argv, env=project.environ, text=True, cwd="/", **pipes)
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)
        proc.send_signal(sent)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == -sent and "venvroot:" not in err
        assert wait_for(lambda: processes_with("sleep 3022") == [], timeout=5)


def test_no_line_where_the_range_is_not_the_cause(
    project: Project, unprivileged_user: pwd.struct_passwd
) -> None:
    # You are yourself inside: apt fails for want of root, which a range would not change.
    env = make_env(project)
    update = project.venvroot("run", env, "--", "apt-get", "update", timeout=120)
    assert update.returncode == 100 and venvroot_lines(update) == [], update.stderr
    # A user with a range: apt works; its own failures (no such package) get no line.
    ranged = Project(Who("user", unprivileged_user), prefix="venvroot-ranged-")
    try:
        env = make_env(ranged, "--user", "root")
        missing = ranged.venvroot(
            "run", env, "--", "apt-get", "install", "-y", "no-such-package", timeout=120
        )
        assert missing.returncode == 100 and venvroot_lines(missing) == [], missing.stderr
    finally:
        ranged.close()
