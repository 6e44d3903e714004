"""The docker backend's agent (agent.c) against the real daemon: shims that reach their program
through the agent in the container (no Engine API), signals, a killed shim, a terminal with job
control, big binary output, exit statuses, the socket's owner check, bad requests, the linger of a
non-persistent env's container, and the Engine API path of a container made without an agent."""

from __future__ import annotations

import hashlib
import os
import pwd
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import missing, need
from docker_helpers import (
    as_docker_user,
    busybox_image_fixture,  # noqa: F401 - the busybox_image fixture
    container_of,
    container_state,
    daemon_fixture,  # noqa: F401 - the daemon fixture
    docker,
    project_dir,
    top,
    user_env,
    venvroot,
)

import venvroot.backends.docker.agentpath as agentpath

PROGRAMS = ("cat", "sleep", "true", "kill", "stty")


@pytest.fixture(scope="module")
def project(busybox_image: str) -> Iterator[Path]:
    if not agentpath.available():
        missing("the docker agent was not built (no C compiler at install)")
    yield from project_dir("venvroot-agent-")


@pytest.fixture(scope="module")
def env(project: Path, busybox_image: str) -> Path:
    path = project / ".venv"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--persistent", "--link", "sh")
    for program in PROGRAMS:
        venvroot("link", str(path), program)
    assert run(path, "true").returncode == 0  # the container runs, its agent listens
    return path


def run(env_dir: Path, name: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 60)
    # An Engine API call would fail: whatever runs here went through the agent.
    kwargs.setdefault("env", {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    return subprocess.run([str(env_dir / "bin" / name), *args], **kwargs)  # type: ignore[call-overload]


def wait_for(what: str, container: str, present: bool = True, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while (what in top(container)) != present:
        assert time.monotonic() < deadline, f"{what!r} {'never started' if present else 'still runs'}"
        time.sleep(0.05)


def test_the_container_runs_the_agent_and_shims_need_no_engine_api(env: Path) -> None:
    assert "/.venvroot/agent --serve" in top(container_of(env))
    sock = env / ".venvroot" / "docker" / "agent.sock"
    assert sock.is_socket() and sock.stat().st_mode & 0o777 == 0o600
    out = run(env, "sh", "-c", 'echo "$PWD $0 $1"; cat /proc/self/status', "a b", "c\nd", cwd=env.parent)
    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.decode().splitlines()
    assert first == f"{env.parent} a b c"
    # the terminal filter is installed in every program (seccomp mode 2)
    assert "Seccomp:\t2" in rest


def test_exit_statuses_as_the_shell_reports_them(env: Path) -> None:
    assert run(env, "sh", "-c", "exit 42").returncode == 42
    assert run(env, "sh", "-c", "kill -KILL $$").returncode == 128 + 9
    assert run(env, "sh", "-c", "kill -USR2 $$").returncode == 128 + signal.SIGUSR2
    # `venvroot run`: the Python path hands over to the agent, which looks the program up
    for program, code, text in (
        ("no-such-program", 127, "command not found"),
        ("/etc/passwd", 126, "permission denied"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "venvroot", "run", str(env), "--", program], capture_output=True
        )
        assert done.returncode == code and f"venvroot: {program}: {text}".encode() in done.stderr


def test_fifty_megabytes_of_binary_stdout(env: Path) -> None:
    data = os.urandom(50 * 1024 * 1024)
    blob = env.parent / "blob.bin"
    blob.write_bytes(data)
    try:
        out = run(env, "cat", str(blob))
        assert out.returncode == 0
        assert hashlib.sha256(out.stdout).digest() == hashlib.sha256(data).digest()
    finally:
        blob.unlink()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR2])
def test_signals_reach_the_program(env: Path, signum: int) -> None:
    trap = f"trap 'echo got{int(signum)}; exit 3' {signum.name[3:]}"
    script = f"{trap}; echo ready; while :; do sleep 0.1; done"
    proc = subprocess.Popen([str(env / "bin" / "sh"), "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    assert proc.stdout.read() == f"got{int(signum)}\n"
    assert proc.wait(timeout=20) == 3


def test_sigkill_of_the_shim_ends_the_program_within_a_second(env: Path) -> None:
    name = container_of(env)
    proc = subprocess.Popen([str(env / "bin" / "sleep"), "4321"])
    wait_for("sleep 4321", name)
    proc.kill()
    proc.wait()
    wait_for("sleep 4321", name, present=False, within=1.0)


def _state_inside(container: str, what: str) -> str:
    for line in docker("top", container, "-o", "pid,stat,args").stdout.splitlines():
        if what in line:
            return line.split()[1]
    return ""


def test_tstp_stops_the_program_and_cont_resumes_it(env: Path) -> None:
    name = container_of(env)
    proc = subprocess.Popen([str(env / "bin" / "sleep"), "4322"])
    wait_for("sleep 4322", name)
    proc.send_signal(signal.SIGTSTP)
    deadline = time.monotonic() + 10
    while not _state_inside(name, "sleep 4322").startswith("T"):
        assert time.monotonic() < deadline, "the program was not stopped"
        time.sleep(0.05)
    proc.send_signal(signal.SIGCONT)
    while _state_inside(name, "sleep 4322").startswith("T"):
        assert time.monotonic() < deadline, "the program was not resumed"
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(timeout=10) == -signal.SIGTERM


def tty_environ(**extra: str) -> dict[str, str]:
    # pytest exports COLUMNS/LINES, which busybox prefers to the tty's real size.
    return {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, **extra}


def test_terminal_job_control_ctrl_c_and_resize(env: Path) -> None:
    child = pexpect.spawn(
        str(env / "bin" / "sh"), ["-i"], dimensions=(20, 80), timeout=20, encoding="utf-8",
        env=tty_environ(PS1="IN> ", DOCKER_HOST="unix:///nonexistent/docker.sock"),
    )  # fmt: skip
    child.expect("IN> ")
    child.sendline("tty; stty size")
    child.expect("/dev/pts/")
    child.expect("20 80")
    child.setwinsize(41, 121)
    time.sleep(0.3)
    child.sendline("stty size")
    child.expect("41 121")
    child.sendline("sleep 30")
    time.sleep(0.5)
    child.sendcontrol("z")  # a job of the shell inside stops; the shell prompts again
    child.expect("IN> ")
    child.sendline("jobs")
    child.expect("sleep 30")
    child.expect("IN> ")
    child.sendline("fg")
    child.expect("sleep 30")
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect("IN> ")
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5


TIOCSTI_PROGRAM = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
int main(void) {
    char c = 'x';
    int r = ioctl(0, TIOCSTI, &c);
    printf("TIOCSTI %s\n", r == 0 ? "worked" : strerror(errno));
    return 0;
}
"""


def test_a_program_cannot_type_into_the_terminal(env: Path) -> None:
    cc = need("gcc")
    source = env.parent / "sti.c"
    source.write_text(TIOCSTI_PROGRAM)
    binary = env.parent / "sti"
    subprocess.run([cc, "-static", "-o", str(binary), str(source)], check=True)
    child = pexpect.spawn(str(env / "bin" / "sh"), ["-c", str(binary)], timeout=20, encoding="utf-8")
    child.expect(pexpect.EOF)
    assert "TIOCSTI Operation not permitted" in child.before


def _request(argv: list[str], cwd: str = "/") -> bytes:
    body = struct.pack("<IIHH", len(argv), 0, 0, 0) + b"".join(s.encode() + b"\0" for s in [cwd, *argv])
    return struct.pack("<I", len(body)) + body


def _agent_reply(sock: socket.socket) -> tuple[int, int, bytes]:
    head = b""
    while len(head) < 8:
        got = sock.recv(8 - len(head))
        if not got:
            break
        head += got
    kind, value = struct.unpack("<ii", head)
    text = sock.recv(4096) if kind == 3 else b""
    return kind, value, text


def _connect(env_dir: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(str(env_dir / ".venvroot" / "docker" / "agent.sock"))
    return sock


def test_garbage_and_truncated_requests_get_an_error_and_the_agent_serves_on(env: Path) -> None:
    with _connect(env) as sock:
        sock.sendall(b"\xff\xff\xff\xff garbage")
        assert _agent_reply(sock)[2] == b"malformed request: bad length"
    with _connect(env) as sock:
        sock.sendall(_request(["true"])[:9])
        sock.shutdown(socket.SHUT_WR)
        assert _agent_reply(sock)[2] == b"truncated request"
    with _connect(env) as sock:  # no fds passed along
        sock.sendall(_request(["true"]))
        assert b"fds 0, 1, 2 must come with it" in _agent_reply(sock)[2]
    with _connect(env) as sock, open(os.devnull, "rb+") as null:
        fds = [null.fileno()] * 3
        body = _request(["/bin/true"])[4:].replace(b"/\0", b"rel\0", 1)
        socket.send_fds(sock, [struct.pack("<I", len(body)) + body], fds)
        assert b"not absolute" in _agent_reply(sock)[2]
    assert run(env, "sh", "-c", "echo still").stdout == b"still\n"


def test_another_users_connection_is_refused(env: Path, unprivileged_user: pwd.struct_passwd) -> None:
    sock_path = env / ".venvroot" / "docker" / "agent.sock"
    probe = (
        "import socket, struct, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit('EACCES')\n"
        "h = s.recv(8)\n"
        "print(s.recv(4096).decode() if len(h) == 8 else 'closed')\n"
    )
    argv = [sys.executable, "-c", probe, str(sock_path)]
    kwargs = {"env": user_env(unprivileged_user), "cwd": "/", "capture_output": True, "text": True}
    denied = subprocess.run(as_docker_user(unprivileged_user, argv, with_docker=False), **kwargs)
    assert denied.stderr.strip() == "EACCES"  # the socket's mode keeps them out
    os.chmod(sock_path, 0o666)  # and were the mode wrong, the peer check still would
    try:
        refused = subprocess.run(as_docker_user(unprivileged_user, argv, with_docker=False), **kwargs)
    finally:
        os.chmod(sock_path, 0o600)
    assert refused.stdout.strip() == "connection refused: this environment belongs to another user"


def test_non_persistent_container_lingers_then_stops(project: Path, busybox_image: str) -> None:
    path = project / "lingering"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--link", "sh")
    name = container_of(path)
    assert container_state(name) == "exited"
    assert run(path, "sh", "-c", "echo a", env=os.environ).stdout == b"a\n"  # started on demand
    assert container_state(name) == "running"
    started = time.monotonic()
    assert run(path, "sh", "-c", "echo b").stdout == b"b\n"  # through the agent, no start
    deadline = started + agentpath.LINGER + 10
    while container_state(name) == "running":
        assert time.monotonic() < deadline, "the container never stopped"
        time.sleep(0.2)
    assert time.monotonic() - started >= agentpath.LINGER - 0.5
    venvroot("destroy", str(path))


def test_a_container_made_without_the_agent_runs_through_the_engine_api(
    project: Path, busybox_image: str
) -> None:
    from venvroot.backends.docker.backend import KEEPER
    from venvroot.backends.docker.engine import encode, loads

    path = project / "older"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--persistent", "--link", "sh")
    # What an older venvroot made: the keeper as the main process, no agent, no shim fragment.
    state = path / ".venvroot" / "docker"
    spec = loads((state / "container.json").read_text())
    spec["Entrypoint"] = ["/bin/sh", "-c", KEEPER]
    spec["HostConfig"]["Mounts"] = [m for m in spec["HostConfig"]["Mounts"] if "agent" not in m["Target"]]
    (state / "container.json").write_bytes(encode(spec))
    (path / ".venvroot" / "shim.sh").unlink()
    docker("rm", "-f", container_of(path))
    out = run(path, "sh", "-c", "echo via engine; exit 3", env=os.environ)
    assert (out.returncode, out.stdout, out.stderr) == (3, b"via engine\n", b"")
    assert "--serve" not in top(container_of(path))
    venvroot("destroy", str(path))


def test_an_agent_that_cannot_listen_is_reported_and_the_engine_api_takes_over(
    project: Path, busybox_image: str
) -> None:
    path = project / "deaf"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--persistent", "--link", "sh")
    docker("stop", "-t", "1", container_of(path))
    (path / ".venvroot" / "docker" / "agent.sock").mkdir()  # where the agent's socket would go
    out = run(path, "sh", "-c", "echo x", env=os.environ)
    assert (out.returncode, out.stdout) == (0, b"x\n")
    assert out.stderr.decode() == (
        f"venvroot: the agent in the container {container_of(path)} does not answer; running sh "
        f"through the Engine API instead (`venvroot reset {path}` remakes the container)\n"
    )
    assert "--serve" in top(container_of(path))  # it keeps the container up all the same
    venvroot("destroy", str(path))
