"""The virtualenv plugin through the real tools: ``virtualenv --creator venvroot``, and tox, nox and
hatch with ``VIRTUALENV_CREATOR=venvroot`` on a tiny project, as root and as the unprivileged user.
Each test command writes to /etc and prints sys.prefix: the file must land in the env's /etc layer
and never on the host; the env's settings come from ``.venvroot.conf`` and ``VENVROOT_*``."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import missing
from ns_backend_helpers import Project
from ns_helpers import Who, who_fixture  # noqa: F401 - the who fixture

from venvroot.backends.ns.layout import State
from venvroot.shims.marker import is_shim

PY = sys.executable


def need_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        missing(f"{name} is not installed in the test venv (the test extras of setup.py install it)")


@pytest.fixture(name="proj")
def proj_fixture(who: Who) -> Iterator[Project]:
    """A project of ``who``'s whose every venvroot env (tox's .tox/py too) is destroyed afterwards."""
    project = Project(who, prefix="venvroot-plugin-")
    project.environ["VIRTUALENV_CREATOR"] = "venvroot"
    for name in ("VIRTUAL_ENV", "VIRTUALENV_PYTHON", "PIP_REQUIRE_VIRTUALENV"):
        project.environ.pop(name, None)
    yield project
    for cfg in list(project.path.glob("**/venvroot.cfg")):
        project.run([cfg.parent / "bin" / "destroy"])
    project.close()


def writer_code(tag: str) -> str:
    return f"import sys; open('/etc/vr-{tag}', 'w').write('{tag}'); print('PREFIX', sys.prefix)"


def assert_isolated(env: Path, tag: str, output: str) -> None:
    """The command ran under the env's Python, and its /etc write went to the env's layer only."""
    leaked = os.path.exists(f"/etc/vr-{tag}")
    if leaked:
        os.unlink(f"/etc/vr-{tag}")  # (only root can have written it) leave the host as it was
    assert not leaked, "the test command wrote to the host's /etc"
    assert f"PREFIX {env}" in output, output
    assert (env / "venvroot.cfg").is_file()
    upper, _ = State(str(env)).layer("/etc")
    assert (Path(upper) / f"vr-{tag}").read_text() == tag


def test_virtualenv_creator_makes_a_venvroot_env_seeded_by_virtualenv(proj: Project) -> None:
    need_module("virtualenv")
    env, tag = proj.path / "env", uuid.uuid4().hex[:8]
    made = proj.run([PY, "-m", "virtualenv", "--creator", "venvroot", "--prompt", "plug", env])
    assert made.returncode == 0, made.stderr + made.stdout
    assert is_shim(str(env / "bin" / "python"))  # a venvroot shim
    assert "venvroot" in (env / "bin" / "activate").read_text().splitlines()[0]  # venvroot's own
    cfg = (env / "pyvenv.cfg").read_text()
    assert "venvroot = " in cfg and "virtualenv = " in cfg
    assert 'prompt = "plug"' in cfg.splitlines()  # as virtualenv writes it
    # virtualenv's seeder put pip in; it runs inside, from the env's site-packages.
    pip = proj.run([env / "bin" / "pip", "--version"])
    assert pip.returncode == 0 and f"{env}/lib/python" in pip.stdout, pip.stderr
    ran = proj.run([env / "bin" / "python", "-c", writer_code(tag)])
    assert ran.returncode == 0, ran.stderr
    assert_isolated(env, tag, ran.stdout)
    # An environment is replaced only with --clear, as virtualenv's own creators do it.
    again = proj.run([PY, "-m", "virtualenv", "--creator", "venvroot", env])
    assert again.returncode != 0 and "use --clear" in again.stdout, again.stdout
    cleared = proj.run([PY, "-m", "virtualenv", "--creator", "venvroot", "--clear", env])
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    assert not (Path(State(str(env)).layer("/etc")[0]) / f"vr-{tag}").exists()  # a new root layer


def test_settings_come_from_venvroot_conf_and_variables(proj: Project) -> None:
    need_module("virtualenv")
    (proj.path / ".venvroot.conf").write_text('link = ["hostname"]\nhostname = "from-conf"\n')
    sub = proj.path / "sub"  # the nearest .venvroot.conf above the working directory counts
    sub.mkdir()
    os.chown(sub, proj.who.uid, proj.who.gid)
    made = proj.run([PY, "-m", "virtualenv", "--creator", "venvroot", proj.path / "a"], cwd=sub)
    assert made.returncode == 0, made.stderr + made.stdout
    assert proj.run([proj.path / "a" / "bin" / "hostname"]).stdout.strip() == "from-conf"
    environ = {**proj.environ, "VENVROOT_HOSTNAME": "from-env"}  # a variable beats the file
    made = proj.run([PY, "-m", "virtualenv", "--creator", "venvroot", proj.path / "b"], env=environ)
    assert made.returncode == 0, made.stderr + made.stdout
    assert proj.run([proj.path / "b" / "bin" / "hostname"]).stdout.strip() == "from-env"
    # A bad value: one line naming the variable, a failure, nothing made.
    bad = {**proj.environ, "VENVROOT_BACKEND": "vm"}
    failed = proj.run([PY, "-m", "virtualenv", "--creator", "venvroot", proj.path / "c"], env=bad)
    assert failed.returncode != 0
    lines = failed.stdout.strip().splitlines()  # virtualenv logs its errors on stdout
    assert len(lines) == 1 and "VENVROOT_BACKEND: unknown backend 'vm'" in lines[0], failed.stdout
    assert not (proj.path / "c").exists()


TOX_INI = """[tox]
env_list = py
[testenv]
package = skip
deps = iniconfig
commands = python -c "import iniconfig; print('DEP', iniconfig.__file__); {code}"
"""


def test_tox_installs_deps_and_runs_its_commands_inside_a_venvroot_env(proj: Project) -> None:
    # deps come from the package index (pytest's own dependency iniconfig: small, always there).
    need_module("tox")
    tag = uuid.uuid4().hex[:8]
    (proj.path / "tox.ini").write_text(TOX_INI.format(code=writer_code(tag)))
    ran = proj.run([PY, "-m", "tox", "-q"], timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    env = proj.path / ".tox" / "py"
    assert_isolated(env, tag, ran.stdout)
    assert f"DEP {env}/lib/python" in ran.stdout  # tox's pip installed the dep into the env
    assert (env / ".tox-info.json").is_file() and (env / "log").is_dir()  # what tox put there first


NOXFILE = """import nox

@nox.session(venv_backend="virtualenv")
def t(session):
    session.run("python", "-c", {code!r})
"""


def test_nox_virtualenv_backend_runs_inside_a_venvroot_env(proj: Project) -> None:
    need_module("nox")
    tag = uuid.uuid4().hex[:8]
    (proj.path / "noxfile.py").write_text(NOXFILE.format(code=writer_code(tag)))
    ran = proj.run([PY, "-m", "nox"], timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_isolated(proj.path / ".nox" / "t", tag, ran.stdout)


PYPROJECT = """[project]
name = "demo"
version = "0.1"

[tool.hatch.envs.default]
skip-install = true
path = ".hatch-env"
"""


def test_hatch_virtual_env_runs_inside_a_venvroot_env(proj: Project) -> None:
    need_module("hatch")
    tag = uuid.uuid4().hex[:8]
    (proj.path / "pyproject.toml").write_text(PYPROJECT)
    (proj.path / "hatch.toml").write_text("")  # hatch's own config, kept in the project
    environ = {
        **proj.environ,
        "HATCH_CONFIG": str(proj.path / "hatch.toml"),
        "HATCH_DATA_DIR": str(proj.path / ".hatch-data"),
        "HATCH_CACHE_DIR": str(proj.path / ".hatch-cache"),
    }
    made = proj.run([PY, "-m", "hatch", "env", "create"], env=environ, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    ran = proj.run([PY, "-m", "hatch", "run", "python", "-c", writer_code(tag)], env=environ, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_isolated(proj.path / ".hatch-env", tag, ran.stdout)


def test_venvroot_command_reads_the_variables_too(proj: Project) -> None:
    environ = {**proj.environ, "VENVROOT_HOSTNAME": "from-env", "VENVROOT_LINK": "hostname,id"}
    made = proj.venvroot(proj.path / "a", env=environ)
    assert made.returncode == 0, made.stderr
    assert proj.run([proj.path / "a" / "bin" / "hostname"]).stdout.strip() == "from-env"
    assert (proj.path / "a" / "bin" / "id").is_file()  # a list: comma-separated
    made = proj.venvroot(proj.path / "b", "--hostname", "from-cli", env=environ)  # the command line wins
    assert made.returncode == 0, made.stderr
    assert proj.run([proj.path / "b" / "bin" / "hostname"]).stdout.strip() == "from-cli"
    bad = proj.venvroot(proj.path / "c", env={**environ, "VENVROOT_PERSISTENT": "maybe"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "VENVROOT_PERSISTENT" in bad.stderr
    assert not (proj.path / "c").exists()
