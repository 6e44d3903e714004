"""Faults under the docker backend, against the real daemon: the env's container removed or
stopped while a shim runs (one line, a non-zero exit, and the next shim works), and a shim killed
with SIGKILL (its program must not run on in the container)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import (
    busybox_image_fixture,  # noqa: F401 - the busybox_image fixture
    container_of,
    container_state,
    daemon_fixture,  # noqa: F401 - the daemon fixture
    docker,
    top,
    venvroot,
)
from ns_backend_helpers import wait_for

import venvroot.backends.docker.agentpath as agentpath


@pytest.fixture(name="make_env")
def make_env_fixture(busybox_image: str) -> Iterator:
    base = Path(tempfile.mkdtemp(prefix="venvroot-dfaults-"))
    made: list[Path] = []

    def make(name: str, *options: str) -> Path:
        path = base / name
        venvroot(
            str(path),
            "--backend",
            "docker",
            "--image",
            busybox_image,
            "--link",
            "sleep",
            "--link",
            "sh",
            *options,
        )
        made.append(path)
        return path

    yield make
    for env in made:
        venvroot("destroy", str(env), check=False)
    shutil.rmtree(base, ignore_errors=True)


def running_in(name: str, text: str) -> bool:
    return container_state(name) == "running" and text in top(name)


@pytest.mark.parametrize("how", ["rm -f", "stop"])
def test_the_container_gone_under_a_shim_is_one_line_and_the_next_shim_works(make_env, how: str) -> None:
    env = make_env("gone", "--persistent")
    name = container_of(env)
    proc = subprocess.Popen([str(env / "bin" / "sleep"), "4321"], stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: running_in(name, "sleep 4321"), 30)
    docker(*(["rm", "-f"] if how == "rm -f" else ["stop", "-t", "0"]), name)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    # The agent's caller cannot tell a stop from a removal (the Engine API path can).
    word = "stopped or removed" if agentpath.available() else "removed" if how == "rm -f" else "stopped"
    assert len(lines) == 1 and f"the container {name} was {word} while sleep ran" in lines[0], err
    out = subprocess.run(
        [str(env / "bin" / "sh"), "-c", "echo back"], capture_output=True, text=True, timeout=60
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "back\n", "")
    assert container_state(name) == "running"


@pytest.mark.parametrize("persistent", [True, False])
def test_a_shim_killed_with_sigkill_leaves_no_program_running(make_env, persistent: bool) -> None:
    env = make_env("killed", *(["--persistent"] if persistent else []))
    name = container_of(env)
    proc = subprocess.Popen([str(env / "bin" / "sleep"), "5678"])
    assert wait_for(lambda: running_in(name, "sleep 5678"), 30)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    if persistent:
        assert wait_for(lambda: "sleep 5678" not in top(name), 10)
        assert container_state(name) == "running"
    else:  # and the container stops as after the shim's own end: it was the only user
        assert wait_for(lambda: container_state(name) == "exited", 20), top(name)
    # An orderly end leaves the guard nothing to do: a quick program's exit is its own.
    started = time.monotonic()
    out = subprocess.run([str(env / "bin" / "sh"), "-c", "exit 7"], timeout=60)
    assert out.returncode == 7 and time.monotonic() - started < 30


def test_a_host_mount_gone_since_the_container_was_made_does_not_keep_it_from_starting(make_env) -> None:
    """The host view binds every host mount point; one unmounted meanwhile (a removable disk) is
    dropped when the container next starts, and the rest of the env is as it was."""
    point = Path(tempfile.mkdtemp(prefix="venvroot-gone-mount-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "gone", str(point)], check=True)
    try:
        env = make_env("mounts", "--persistent")
        name = container_of(env)
        out = subprocess.run(
            [str(env / "bin" / "sh"), "-c", f"ls -d /r{point}"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr.decode()  # the mount point is in the host view
        docker("stop", "-t", "0", name)
    finally:
        subprocess.run(["umount", str(point)], check=True)
        point.rmdir()
    out = subprocess.run(
        [str(env / "bin" / "sh"), "-c", f"echo back; ls -d /r{point} 2>/dev/null"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (out.returncode, out.stdout, out.stderr) == (1, "back\n", "")
    assert container_state(name) == "running"
