"""The docker backend against the real daemon: containers, user and path mapping, shims (stdio,
arguments, exit codes, signals, tty), reset and destroy, and the errors of a missing daemon or image.

Images are built by the tests (``docker import`` of a busybox-static root with no user tools)."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import missing
from docker_helpers import (
    as_docker_user,
    busybox_image_fixture,  # noqa: F401 - the busybox_image fixture
    cfg_value,
    container_of,
    container_state,
    daemon_fixture,  # noqa: F401 - the daemon fixture
    docker,
    leftovers,
    top,
    user_env,
    venvroot,
)

import venvroot.backends.docker.agentpath as agentpath


@pytest.fixture(scope="module")
def project(busybox_image: str) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="venvroot-docker-"))
    base.chmod(0o755)
    proj = base / "my project"
    proj.mkdir()
    yield proj
    for env in proj.iterdir():  # (.venv too: glob would skip hidden names)
        if (env / "venvroot.cfg").is_file():
            venvroot("destroy", str(env), check=False)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def env(project: Path, busybox_image: str) -> Path:
    """A persistent env (its container keeps running between the tests' shims)."""
    path = project / ".venv"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--persistent", "--link", "sh")
    for program in ("cat", "printf", "sleep", "pwd", "id", "env", "true", "yes"):
        venvroot("link", str(path), program)
    return path


def shim(env_dir: Path, name: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 60)
    return subprocess.run([str(env_dir / "bin" / name), *args], **kwargs)  # type: ignore[call-overload]


def sh(env_dir: Path, script: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("text", True)
    return shim(env_dir, "sh", "-c", script, "sh", *args, **kwargs)


# -- the container ---------------------------------------------------------------------------------


def test_container_is_named_and_labelled_for_its_env(env: Path) -> None:
    name = container_of(env)
    assert name.startswith("venvroot-my-project-venv-")
    listed = docker("ps", "--filter", f"label=io.venvroot.env={env}", "--format", "{{.Names}}").stdout.split()
    assert listed == [name]
    owner = docker("inspect", "-f", '{{index .Config.Labels "io.venvroot.owner"}}', name).stdout.strip()
    assert owner == pwd.getpwuid(os.getuid()).pw_name


def test_image_has_no_user_tools(env: Path) -> None:
    found = sh(env, "for t in useradd adduser groupadd addgroup; do command -v $t; done; true")
    assert found.stdout == ""


# -- user mapping ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_env_dir(unprivileged_user: pwd.struct_passwd, busybox_image: str) -> Iterator[Path]:
    """An env created by the unprivileged user (a member of the docker group for this)."""
    base = Path(tempfile.mkdtemp(prefix="venvroot-docker-user-"))
    base.chmod(0o755)
    proj = base / "proj"
    proj.mkdir()
    os.chown(proj, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    path = proj / ".venv"
    made = subprocess.run(
        as_docker_user(
            unprivileged_user,
            [
                sys.executable,
                "-m",
                "venvroot",
                str(path),
                "--backend",
                "docker",
                "--image",
                busybox_image,
                "--persistent",
                "--link",
                "sh",
            ],
        ),
        capture_output=True,
        text=True,
        env=user_env(unprivileged_user),
        cwd=proj,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    yield path
    subprocess.run(
        as_docker_user(unprivileged_user, [str(path / "bin" / "destroy")]),
        env=user_env(unprivileged_user),
        cwd=unprivileged_user.pw_dir,
    )
    shutil.rmtree(base, ignore_errors=True)


def run_as(user: pwd.struct_passwd, argv: list[str], with_docker: bool = True, **kwargs: object):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    kwargs.setdefault("cwd", user.pw_dir)  # not the checkout: CI's may be unreadable to the user
    return subprocess.run(as_docker_user(user, argv, with_docker), env=user_env(user), **kwargs)  # type: ignore


def test_caller_identity_inside(user_env_dir: Path, unprivileged_user: pwd.struct_passwd) -> None:
    u = unprivileged_user
    script = "id -u; id -g; id -un; whoami; echo ~; cd ~ && pwd; stat -c %u:%g ~; id -Gn"
    out = run_as(u, [str(user_env_dir / "bin" / "sh"), "-c", script], cwd=user_env_dir.parent)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:6] == [str(u.pw_uid), str(u.pw_gid), u.pw_name, u.pw_name, u.pw_dir, u.pw_dir]
    assert lines[6] == f"{u.pw_uid}:{u.pw_gid}"  # the home exists inside and is the caller's
    assert u.pw_name in lines[7].split()  # the primary group has a name too


def test_file_written_in_project_is_owned_by_caller(
    user_env_dir: Path, unprivileged_user: pwd.struct_passwd
) -> None:
    target = user_env_dir.parent / "written-inside"
    out = run_as(unprivileged_user, [str(user_env_dir / "bin" / "sh"), "-c", f"echo hi > '{target}'"])
    assert out.returncode == 0, out.stderr
    st = target.stat()
    assert (st.st_uid, st.st_gid) == (unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    assert target.read_text() == "hi\n"


def test_host_root_is_read_only_at_r(user_env_dir: Path, unprivileged_user: pwd.struct_passwd) -> None:
    out = run_as(
        unprivileged_user, [str(user_env_dir / "bin" / "sh"), "-c", "cat /r/etc/os-release; touch /r/tmp/x"]
    )
    assert out.stdout == Path("/etc/os-release").read_text()
    assert out.returncode != 0 and "Read-only file system" in out.stderr
    assert not Path("/tmp/x").exists()


def test_socket_permission_error_is_one_clear_line(
    user_env_dir: Path, unprivileged_user: pwd.struct_passwd
) -> None:
    # The same user without the docker group: the env's agent serves its owner all the same while
    # the container runs; once it is stopped, starting it needs the daemon's socket, which refuses.
    if os.getuid() != 0:
        missing("only root can run the test user without the docker group")
    shim_sh = [str(user_env_dir / "bin" / "sh"), "-c", "true"]
    run_as(unprivileged_user, shim_sh)  # the container runs
    assert run_as(unprivileged_user, shim_sh, with_docker=False).returncode == 0
    docker("stop", "-t", "1", container_of(user_env_dir))
    out = run_as(unprivileged_user, shim_sh, with_docker=False)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert "permission denied on the Docker socket" in out.stderr and "docker' group" in out.stderr


def test_signals_reach_a_program_running_as_another_user(
    user_env_dir: Path, unprivileged_user: pwd.struct_passwd, busybox_image: str
) -> None:
    # The caller may not signal a root program itself: the shim signals it from inside.
    path = user_env_dir.parent / "as-root"
    made = run_as(unprivileged_user, [sys.executable, "-m", "venvroot", str(path), "--backend", "docker",
                  "--image", busybox_image, "--user", "root", "--persistent", "--link", "sleep"])  # fmt: skip
    assert made.returncode == 0, made.stderr
    try:
        name = container_of(path)
        proc = subprocess.Popen(as_docker_user(unprivileged_user, [str(path / "bin" / "sleep"), "4321"]),
                                env=user_env(unprivileged_user))  # fmt: skip
        deadline = time.monotonic() + 20
        while "sleep 4321" not in top(name):
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.05)
        assert top(name).count("sleep 4321") == 1
        os.kill(proc.pid, signal.SIGTERM)  # runuser passes it on to the shim
        proc.wait(timeout=20)
        deadline = time.monotonic() + 10
        while "sleep 4321" in top(name):
            assert time.monotonic() < deadline, "the root program outlived its shim"
            time.sleep(0.05)
    finally:
        run_as(unprivileged_user, [sys.executable, "-m", "venvroot", "destroy", str(path)])


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ("root", "0 0 root /root"),
        ("alice", "{uid} {gid} alice /home/alice"),
        ("4321:bob", "4321 4321 bob /home/bob"),
        ("system:svc", "999 999 svc /home/svc"),
    ],
)
def test_user_specs(project: Path, busybox_image: str, spec: str, expect: str) -> None:
    path = project / f"user-{spec.replace(':', '-')}"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--user", spec, "--link", "sh")
    out = sh(path, 'echo "$(id -u) $(id -g) $(id -un) $HOME"; cd ~ && touch ~/ok', cwd=project)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expect.format(uid=os.getuid(), gid=os.getgid())
    venvroot("destroy", str(path))


# -- paths and arguments ---------------------------------------------------------------------------


def test_cwd_is_kept_or_seen_under_r(env: Path, project: Path) -> None:
    sub = project / "a dir" / "deeper"
    sub.mkdir(parents=True, exist_ok=True)
    assert sh(env, "pwd", cwd=sub).stdout == f"{sub}\n"
    assert sh(env, "pwd", cwd=env).stdout == f"{env}\n"
    outside = Path(tempfile.mkdtemp(prefix="venvroot-outside-"))
    try:
        assert sh(env, "pwd; ls", cwd=outside).stdout == f"/r{outside}\n"
        (outside / "seen").write_text("x")
        assert sh(env, "ls", cwd=outside).stdout == "seen\n"
    finally:
        shutil.rmtree(outside)


def test_cwd_that_cannot_be_seen_inside_is_a_clear_error(env: Path, project: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="venvroot-cwd-"))
    try:
        # Deleted under our feet.
        gone = base / "gone"
        gone.mkdir()
        ran = subprocess.run(
            ["sh", "-c", f"cd '{gone}' && rmdir '{gone}' && exec '{env}/bin/pwd'"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 1
        last = ran.stderr.splitlines()[-1]  # (the shim's own sh may complain first)
        assert last.startswith("venvroot: the current directory does not exist any more; cd to ")
        # On a mount the daemon cannot see (made in a private mount namespace).
        hidden = base / "hidden"
        hidden.mkdir()
        if shutil.which("unshare") is None or os.getuid() != 0:
            return
        ran = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs none '{hidden}' && mkdir '{hidden}/sub' && cd '{hidden}/sub' "
                f"&& exec '{env}/bin/pwd'",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 1 and ran.stdout == ""
        assert ran.stderr == (
            f"venvroot: cannot enter /r{hidden}/sub inside the environment {env}; cd into a mapped directory "
            "(the project, or the host under /r)\n"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_directory_mappings(project: Path, busybox_image: str) -> None:
    data, out_dir = project / "data", project.parent / "out"
    data.mkdir()
    out_dir.mkdir()
    (data / "in.txt").write_text("data\n")
    path = project / "mapped"
    venvroot(
        str(path),
        "--backend",
        "docker",
        "--image",
        busybox_image,
        "--link",
        "sh",
        "--directory",
        f"{data}:/data",
        "--directory",
        f"{out_dir}:/out:rw",
    )
    ran = sh(path, "cat /data/in.txt; touch /data/no 2>/dev/null || echo ro; pwd > /out/where", cwd=out_dir)
    assert ran.stdout == "data\nro\n", ran.stderr
    assert (out_dir / "where").read_text() == "/out\n"  # the cwd went through the mapping
    assert not (data / "no").exists()
    venvroot("destroy", str(path))


def test_arguments_come_through_byte_for_byte(env: Path) -> None:
    args = ["a b", "", "it's", 'say "hi"', "line1\nline2", "(", "$HOME", "*", "-n", "tab\there", "ünï"]
    out = shim(env, "printf", "%s\\0", *args)
    assert out.returncode == 0
    assert out.stdout.split(b"\0")[:-1] == [a.encode() for a in args]


def test_environment_passes_with_path_set_for_the_image(env: Path) -> None:
    extra = {
        "VENVROOT_TEST_VAR": "x y\nz",
        "LD_PRELOAD": "/nonexistent.so",
        "PATH": "/nowhere:" + os.environ["PATH"],
    }
    out = sh(
        env, 'printf "%s|" "$VENVROOT_TEST_VAR" "${LD_PRELOAD-unset}" "$PATH"', env={**os.environ, **extra}
    )
    var, preload, path = out.stdout.split("|")[:3]
    assert (var, preload) == ("x y\nz", "unset")
    assert path.split(":")[0] == f"{env}/bin" and "/nowhere" not in path


# -- stdio -----------------------------------------------------------------------------------------


def test_ten_megabytes_of_binary_stdin_round_trip(env: Path) -> None:
    data = os.urandom(10 * 1024 * 1024) + bytes(range(256)) + b"\r\n\r\0"
    out = shim(env, "cat", input=data)
    assert out.returncode == 0
    assert hashlib.sha256(out.stdout).digest() == hashlib.sha256(data).digest()


def test_piped_output_has_no_cr_and_stderr_stays_apart(env: Path) -> None:
    out = shim(env, "sh", "-c", "printf 'a\\nb\\n'; printf 'err\\n' >&2")
    assert out.stdout == b"a\nb\n" and out.stderr == b"err\n"


def test_a_closed_output_pipe_ends_the_program_like_a_local_one(env: Path) -> None:
    ran = subprocess.run(
        ["bash", "-c", f"'{env}/bin/yes' | head -2; echo ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ran.stdout == "y\ny\n141\n"  # SIGPIPE, as for a local yes
    assert " yes" not in top(container_of(env))


def test_stdin_pipe_reaches_the_program_and_eof_ends_it(env: Path) -> None:
    out = sh(env, 'read a; read b; echo "$b-$a"; cat', input="one\ntwo\nrest\n")
    assert out.stdout == "two-one\nrest\n"


def test_exit_codes(env: Path) -> None:
    assert sh(env, "exit 0").returncode == 0
    assert sh(env, "exit 7").returncode == 7
    missing = subprocess.run(
        [sys.executable, "-m", "venvroot", "run", str(env), "--", "no-such-program", "x"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 127
    assert missing.stderr == f"venvroot: no-such-program: command not found in {env}\n"
    noexec = subprocess.run(
        [sys.executable, "-m", "venvroot", "run", str(env), "--", "/etc/passwd"],
        capture_output=True,
        text=True,
    )
    assert noexec.returncode == 126
    assert noexec.stderr.startswith("venvroot: /etc/passwd: permission denied")
    assert sh(env, "kill -USR1 $$").returncode == 128 + signal.SIGUSR1


def test_sigterm_to_a_shim_ends_its_program_in_the_container(env: Path) -> None:
    name = container_of(env)
    proc = subprocess.Popen([str(env / "bin" / "sleep"), "1234"])
    deadline = time.monotonic() + 20
    while "sleep 1234" not in top(name):
        assert time.monotonic() < deadline, "the program never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM  # the shim dies of the program's death
    assert "sleep 1234" not in top(name)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGUSR1])
def test_signals_reach_the_program(env: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [
            str(env / "bin" / "sh"),
            "-c",
            f"trap 'echo got{int(signum)}; exit 3' {signum.name[3:]}; echo ready; "
            "while :; do sleep 0.1; done",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    assert proc.stdout.read() == f"got{int(signum)}\n"
    assert proc.wait(timeout=20) == 3


def tty_environ(**extra: str) -> dict[str, str]:
    # pytest exports COLUMNS/LINES, which busybox prefers to the tty's real size.
    return {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, **extra}


def test_a_tty_only_when_stdin_and_stdout_are_terminals(env: Path) -> None:
    child = pexpect.spawn(
        str(env / "bin" / "sh"),
        ["-c", "tty; stty size; [ -t 0 ] && [ -t 1 ] && echo both"],
        dimensions=(33, 101),
        timeout=30,
        encoding="utf-8",
        env=tty_environ(),
    )
    child.expect(pexpect.EOF)
    child.close()
    lines = child.before.splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1:] == ["33 101", "both"]
    assert child.exitstatus == 0
    # stdout piped: no tty, even from a terminal (it would turn \n into \r\n)
    piped = pexpect.spawn(
        "sh", ["-c", f"'{env}/bin/sh' -c 'tty; printf \"a\\nb\\n\"' | cat -v"], timeout=30, encoding="utf-8"
    )
    piped.expect(pexpect.EOF)
    assert piped.before.split() == ["not", "a", "tty", "a", "b"]  # cat -v would show a CR as ^M


def test_interactive_tty_resizes_and_keeps_ctrl_c_inside(env: Path) -> None:
    child = pexpect.spawn(
        str(env / "bin" / "sh"),
        ["-i"],
        dimensions=(20, 80),
        timeout=30,
        encoding="utf-8",
        env=tty_environ(PS1="IN> "),
    )
    child.expect("IN> ")
    child.setwinsize(40, 120)
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect("40 120")
    child.sendline("sleep 30")
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect("IN> ")  # the sleep was interrupted, the shell lives on
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4


# -- lifecycle -------------------------------------------------------------------------------------


def test_stopped_container_starts_on_demand(env: Path) -> None:
    docker("stop", "-t", "1", container_of(env))
    assert sh(env, "echo up").stdout == "up\n"
    assert container_state(container_of(env)) == "running"  # persistent: it stays up


def test_non_persistent_env_runs_only_while_used(project: Path, busybox_image: str) -> None:
    path = project / "short-lived"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--link", "sh")
    name = container_of(path)
    assert container_state(name) == "exited"
    # Through the agent, the container lingers a moment after its last program (agentpath.LINGER).
    stops = wait_for_exit if agentpath.available() else lambda name: container_state(name) == "exited"
    assert sh(path, "echo in").stdout == "in\n"
    assert stops(name)
    # Concurrent shims: the first to end leaves the container to the second.
    slow = subprocess.Popen(
        [str(path / "bin" / "sh"), "-c", "sleep 2; echo slow"], stdout=subprocess.PIPE, text=True
    )
    time.sleep(1)
    assert sh(path, "echo quick").stdout == "quick\n"
    assert container_state(name) == "running"
    assert slow.communicate(timeout=30)[0] == "slow\n"
    assert stops(name)
    venvroot("destroy", str(path))


def wait_for_exit(name: str) -> bool:
    deadline = time.monotonic() + agentpath.LINGER + 15
    while container_state(name) != "exited":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_reset_discards_root_changes_and_recreates_on_use(project: Path, busybox_image: str) -> None:
    path = project / "to-reset"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--persistent", "--link", "sh")
    assert sh(path, "echo changed > /etc/marker && id -un").returncode == 0
    images = leftovers(path)[1]
    venvroot("reset", str(path))
    assert leftovers(path) == ("", images)  # no container; the base image only, nothing new
    assert container_state(container_of(path)) == "absent"
    out = sh(path, "cat /etc/marker 2>/dev/null || echo fresh; id -un")
    assert out.stdout == f"fresh\n{pwd.getpwuid(os.getuid()).pw_name}\n"  # the user mapping survives
    venvroot("destroy", str(path))


def test_destroy_leaves_no_container_image_or_directory(project: Path, busybox_image: str) -> None:
    path = project / "doomed"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--persistent", "--link", "sh")
    assert sh(path, "true").returncode == 0
    base = cfg_value(path, "docker-base-image")
    assert all(leftovers(path))
    done = subprocess.run([str(path / "bin" / "destroy")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert leftovers(path) == ("", "")
    assert docker("image", "inspect", base, check=False).returncode != 0
    assert not path.exists()
    assert docker("image", "inspect", busybox_image, check=False).returncode == 0  # not the user's image


# -- errors ----------------------------------------------------------------------------------------


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_image_is_one_clear_line_and_leaves_nothing(project: Path) -> None:
    path = project / "no-image"
    made = venvroot(str(path), "--backend", "docker", "--image", "venvroot-test/no-such-image:1", check=False)
    assert made.returncode == 1
    line = one_line(made)
    assert "image venvroot-test/no-such-image:1 is not on this machine and pulling it failed" in line
    assert not path.exists() and leftovers(path) == ("", "")


def test_python_the_image_lacks_is_one_clear_line(project: Path, busybox_image: str) -> None:
    path = project / "no-python"
    made = venvroot(
        str(path), "--backend", "docker", "--image", busybox_image, "-p", "python3.12", check=False
    )
    assert made.returncode == 2
    assert f"-p python3.12: no such interpreter in the image {busybox_image}" in one_line(made)
    assert not path.exists() and leftovers(path) == ("", "")


def test_image_without_sh_is_one_clear_line(project: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="venvroot-nosh-"))
    try:
        (base / "bin").mkdir()
        shutil.copy2(shutil.which("busybox") or "/bin/busybox", base / "bin" / "busybox")
        tar = subprocess.Popen(["tar", "-C", str(base), "-c", "."], stdout=subprocess.PIPE)
        image = "venvroot-test/no-shell:1"
        subprocess.run(["docker", "import", "-", image], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
        path = project / "no-shell"
        made = venvroot(str(path), "--backend", "docker", "--image", image, check=False)
        assert made.returncode == 1
        assert "its image has no /bin/sh, which venvroot's docker backend needs" in one_line(made)
        assert not path.exists() and leftovers(path) == ("", "")
    finally:
        docker("rmi", image, check=False)
        shutil.rmtree(base)


def test_shell_gone_from_a_running_container_is_one_clear_line(project: Path, busybox_image: str) -> None:
    """What an exec meets when it wins the race with a shell-less container's stop: the engine cannot
    start /bin/sh. Finding a program then says so, never "no such program"."""
    path = project / "shell-gone"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image)
    try:
        venvroot("run", str(path), "/bin/busybox", "rm", "/bin/sh")
        linked = venvroot("link", str(path), "ls", check=False)
        assert linked.returncode == 1
        assert "cannot start /bin/sh: its image has no /bin/sh, which venvroot's docker" in one_line(linked)
        assert not (path / "bin" / "ls").exists()
    finally:
        venvroot("destroy", str(path), check=False)


@pytest.fixture
def dead_socket() -> Iterator[str]:
    """What a stopped daemon leaves: a socket file nobody listens on."""
    base = Path(tempfile.mkdtemp(prefix="venvroot-deadsock-"))
    path = str(base / "docker.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()
    yield path
    shutil.rmtree(base)


def test_daemon_down_is_one_clear_line_at_create_and_in_a_shim(
    project: Path,
    env: Path,
    busybox_image: str,
    dead_socket: str,
) -> None:
    for host in (f"unix://{dead_socket}", f"unix://{dead_socket}.absent"):
        environ = {**os.environ, "DOCKER_HOST": host}
        path = project / "no-daemon"
        made = venvroot(str(path), "--backend", "docker", "--image", busybox_image, env=environ, check=False)
        assert made.returncode == 1
        assert f"cannot reach the Docker daemon at {host}" in one_line(made)
        assert "is dockerd running?" in one_line(made)
        assert not path.exists()
        docker("stop", "-t", "1", container_of(env))  # a running agent would need no daemon
        # A shim goes to the env's own engine (recorded at create), whatever DOCKER_HOST says...
        ran = sh(env, "echo works", env=environ)
        assert (ran.returncode, ran.stdout) == (0, "works\n"), ran.stderr
        # ... and says so in one line when that engine is down.
        docker("stop", "-t", "1", container_of(env))
        cfg = env / "venvroot.cfg"
        saved = cfg.read_text()
        try:
            cfg.write_text(
                saved.replace("docker-host = unix:///var/run/docker.sock", f"docker-host = {host}")
            )
            ran = sh(env, "echo never")
            assert ran.returncode == 1 and ran.stdout == ""
            assert one_line(ran).startswith(f"venvroot: cannot reach the Docker daemon at {host}")
        finally:
            cfg.write_text(saved)


def test_unsupported_docker_host_is_named(project: Path, busybox_image: str) -> None:
    path = project / "npipe"
    environ = {**os.environ, "DOCKER_HOST": "npipe:////./pipe/docker_engine"}
    made = venvroot(str(path), "--backend", "docker", "--image", busybox_image, env=environ, check=False)
    assert made.returncode == 1 and not path.exists()
    assert "DOCKER_HOST=npipe:////./pipe/docker_engine is not supported" in one_line(made)
