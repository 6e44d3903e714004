"""virtualenv's create flags, given to `venvroot PATH` on real host-view environments: each is
accepted with virtualenv's meaning, one that means nothing here says so in one line (none with
-q), and contradictions or bad values are one clear line with nothing left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_create import one_error_line, venvroot

from venvroot.cli.createargs import OPTIONS, VIRTUALENV

# `virtualenv --help` of virtualenv 20.x: every create flag it has.
VIRTUALENVS_FLAGS = (
    "--system-site-packages", "--symlinks", "--copies", "--always-copy", "--without-pip", "--no-pip",
    "--no-setuptools", "--no-wheel", "--pip", "--seeder", "--download", "--no-download", "--never-download",
    "--app-data", "--reset-app-data", "--read-only-app-data", "--symlink-app-data", "--creator",
    "--discovery", "--try-first-with", "--no-periodic-update", "--upgrade-embed-wheels",
    "--with-traceback", "--clear", "--no-vcs-ignore", "--prompt", "--activators", "-p", "--python",
    "-q", "-v",
)  # fmt: skip


def cfg_of(env: Path) -> dict[str, str]:
    lines = (env / "pyvenv.cfg").read_text().splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines)}


def inside(env: Path, code: str) -> str:
    out = subprocess.run(
        [str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_every_virtualenv_flag_is_in_the_parser() -> None:
    ours = {flag for group, flags, *_ in OPTIONS if group == VIRTUALENV for flag in flags}
    assert set(VIRTUALENVS_FLAGS) <= ours, set(VIRTUALENVS_FLAGS) - ours


def test_flags_that_describe_what_venvroot_does_are_accepted(tmp_path: Path) -> None:
    env = tmp_path / "e"
    result = venvroot(
        env, "--symlinks", "--no-setuptools", "--no-wheel", "--no-download", "--no-periodic-update",
        "--seeder", "app-data", "--creator", "builtin", "--discovery", "builtin", "--app-data", str(tmp_path),
        "--reset-app-data", "--upgrade-embed-wheels",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = result.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in said] == [
        "--app-data",
        "--reset-app-data",
        "--upgrade-embed-wheels",
    ]
    assert all(line.endswith("ignored") for line in said), said
    assert inside(env, "import sys; print(sys.prefix)") == str(env)
    assert not list(env.glob("lib/python3*/site-packages/setuptools"))
    quiet = venvroot(tmp_path / "q", "-q", "--app-data", str(tmp_path), "--copies")
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_without_pip_and_system_site_packages(tmp_path: Path) -> None:
    env = tmp_path / "e"
    result = venvroot(env, "--without-pip", "--system-site-packages")
    assert result.returncode == 0, result.stderr
    assert not (env / "bin" / "pip").exists()
    assert cfg_of(env)["include-system-site-packages"] == "true"
    paths = inside(env, "import sys; print(' '.join(sys.path))").split()
    assert any(p.endswith(("dist-packages", "site-packages")) and not p.startswith(str(env)) for p in paths)
    plain = tmp_path / "plain"
    assert venvroot(plain, "--no-pip").returncode == 0
    assert cfg_of(plain)["include-system-site-packages"] == "false"
    assert not (plain / "bin" / "pip").exists()


def test_try_first_with_picks_that_interpreter(tmp_path: Path) -> None:
    real = Path("/usr/bin/python3").resolve()
    env = tmp_path / "e"
    result = venvroot(
        env, "--try-first-with", "/nonexistent/python", "--try-first-with", str(real), "-p", "python"
    )
    assert result.returncode == 0, result.stderr
    assert inside(env, "import os, sys; print(os.path.realpath(sys._base_executable))") == str(real)


def test_pip_version_is_fetched_from_the_index(tmp_path: Path) -> None:
    env = tmp_path / "e"
    result = venvroot(env, "--pip", "23.3.2")
    assert result.returncode == 0, result.stderr
    assert inside(env, "import pip; print(pip.__version__)") == "23.3.2"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--symlinks", "--copies"], "--symlinks and --copies contradict each other"),
        (["--without-pip", "--pip", "24.0"], "--without-pip and --pip 24.0 contradict each other"),
        (["--download", "--no-download"], "--download and --no-download contradict each other"),
        (["--creator", "conda"], "--creator 'conda': venvroot does this one way"),
        (["--seeder", "uv"], "--seeder 'uv': venvroot does this one way"),
        (["--pip", "1.0; rm -rf /"], "bad --pip"),
    ],
)
def test_contradictions_and_bad_values_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    env = tmp_path / "e"
    result = venvroot(env, *args)
    assert result.returncode == 2, result.stderr
    assert expected in one_error_line(result)
    assert not env.exists()


def test_with_traceback_shows_where_a_failure_came_from(tmp_path: Path) -> None:
    env = tmp_path / "e"
    result = venvroot(env, "--with-traceback", "-p", "no-such-python")
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("venvroot: error: -p no-such-python")
    assert not env.exists()
