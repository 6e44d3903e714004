"""Python in a docker environment whose image has one (Debian with python3 from debootstrap): the
env is a real virtual environment at its path, python and pip have shims, and console scripts
installed later get shims that work from outside the env."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import (
    container_of,
    container_state,
    daemon_fixture,  # noqa: F401 - the daemon fixture
    debian_image_fixture,  # noqa: F401 - the debian_image fixture
    venvroot,
)
from wheels import build_wheel


@pytest.fixture(scope="module")
def pyenv(debian_image: str) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="venvroot-docker-py-"))
    path = base / "proj" / ".venv"
    venvroot(str(path), "--backend", "docker", "--image", debian_image, "--persistent")
    yield path
    venvroot("destroy", str(path), check=False)
    shutil.rmtree(base, ignore_errors=True)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 180)
    return subprocess.run(argv, **kwargs)  # type: ignore[call-overload]


def test_the_env_is_a_python_virtual_environment(pyenv: Path) -> None:
    for name in ("python", "python3", "pip", "pip3"):
        assert (pyenv / "bin" / name).is_file(), name
    out = run([str(pyenv / "bin" / "python"), "-c", "import sys; print(sys.prefix); print(sys.base_prefix)"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(pyenv), "/usr"]
    assert (pyenv / "pyvenv.cfg").is_file()
    # The interpreter is the image's, not the host's.
    version = run(
        [
            str(pyenv / "bin" / "python"),
            "-c",
            "import platform; print(platform.freedesktop_os_release()['ID'])",
        ]
    )
    assert version.stdout.strip() == "debian"


def test_pip_install_gives_console_scripts_shims_that_survive_reset(pyenv: Path) -> None:
    wheel = build_wheel(pyenv.parent, "vrdemo", "vrdemo", "print('vrdemo says', sys.prefix, *sys.argv[1:])")
    installed = run(
        [str(pyenv / "bin" / "pip"), "install", "--no-index", "--disable-pip-version-check", str(wheel)]
    )
    assert installed.returncode == 0, installed.stderr
    shim = pyenv / "bin" / "vrdemo"
    assert shim.is_file(), "no shim for the new console script"
    out = run([str(shim), "a b"], cwd="/")  # from outside the env and its project
    assert out.stdout == f"vrdemo says {pyenv} a b\n", out.stderr
    # reset throws the container away; the packages live in the env directory and stay.
    assert run([str(pyenv / "bin" / "python"), "-c", "open('/etc/root-change', 'w')"]).returncode == 0
    venvroot("reset", str(pyenv))
    assert container_state(container_of(pyenv)) == "absent"
    assert run([str(shim), "again"]).stdout == f"vrdemo says {pyenv} again\n"
    gone = run([str(pyenv / "bin" / "python"), "-c", "import os; print(os.path.exists('/etc/root-change'))"])
    assert gone.stdout == "False\n"
