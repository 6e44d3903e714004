"""Image pulls of the docker backend, from a registry the test serves itself (tests/registry.py):
on a terminal a progress line counts the layers and bytes, off a terminal or with -q nothing is
drawn, the pulled image makes a working env, and a tag the registry lacks is one clear line with
nothing left behind."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import build_busybox_root
from docker_helpers import daemon_fixture, docker, venvroot  # noqa: F401 - fixtures
from registry import Registry


@pytest.fixture(scope="module")
def registry(daemon: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = build_busybox_root(tmp_path_factory.mktemp("pull") / "root")
    with Registry() as served:
        served.add("venvroot-test/pull", "one", root)
        yield served


def _forget(ref: str, env: Path) -> None:
    """Remove the env, then the image, so that the next pull of it is a real one."""
    if env.exists():
        venvroot("destroy", str(env), check=False)
    docker("rmi", "--force", ref, check=False)


def _pty(argv: list[str], cwd: Path) -> tuple[int, str]:
    child = pexpect.spawn(
        argv[0], argv[1:], cwd=str(cwd), encoding="utf-8", timeout=120, dimensions=(24, 200)
    )
    out = child.read()
    child.close()
    return child.exitstatus, out


def test_pull_draws_layers_and_bytes_on_a_terminal(registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/venvroot-test/pull:one"
    env = tmp_path / "env"
    _forget(ref, env)
    try:
        status, out = _pty(
            [sys.executable, "-m", "venvroot", str(env), "--backend", "docker", "--image", ref], tmp_path
        )
        assert status == 0, out
        match = re.search(rf"\rpulling {re.escape(ref)}: (\d+) layers, ([\d.]+) (B|KiB|MiB), done", out)
        assert match, out
        assert match.group(1) == "1", out
        layer = max(len(blob) for blob in registry.blobs.values())  # the gzipped layer, the config is tiny
        shown = float(match.group(2)) * {"B": 1, "KiB": 1024, "MiB": 1024**2}[match.group(3)]
        assert abs(shown - layer) <= 0.001 * layer + 52, (shown, layer)  # to the rounding drawn
        assert any("/blobs/sha256:" in path for path in registry.requests)  # a real pull, not a cache
        ran = venvroot("run", str(env), "--", "sh", "-c", "echo from-the-pulled-image; cat /etc/hostname")
        assert ran.stdout.splitlines()[0] == "from-the-pulled-image"
    finally:
        _forget(ref, env)


def test_no_pull_progress_off_a_terminal_or_with_q(registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/venvroot-test/pull:one"
    quiet = tmp_path / "quiet"
    piped = tmp_path / "piped"
    try:
        _forget(ref, piped)
        made = venvroot(str(piped), "--backend", "docker", "--image", ref)
        assert "pulling" not in made.stderr and made.stderr == ""
        _forget(ref, piped)
        status, out = _pty(
            [sys.executable, "-m", "venvroot", str(quiet), "--backend", "docker", "--image", ref, "-q"],
            tmp_path,
        )
        assert status == 0 and out == ""
    finally:
        _forget(ref, quiet)


def test_a_tag_the_registry_lacks_is_one_line_and_leaves_nothing(registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/venvroot-test/pull:absent"
    env = tmp_path / "env"
    done = venvroot(str(env), "--backend", "docker", "--image", ref, check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"image {ref} is not on this machine and pulling it failed" in lines[0]
    assert "manifest unknown" in lines[0] and f"docker pull {ref}" in lines[0]
    assert not env.exists()
    leftovers = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"ancestor={ref}", "-q"], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == ""
