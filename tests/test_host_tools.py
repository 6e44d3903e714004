"""Host tools that install into or run through a venvroot env keep working: uv, pip's editable
installs, poetry with an active env, pipx with the env's Python and pre-commit in an activated env,
each the real tool from the package index against a real host-view ns env (the cheapest ones also
as the unprivileged test user)."""

from __future__ import annotations

import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_envs import destroy, inside, make_env, run, tiny_project, tool
from wheels import build_wheel

USERS = ["invoker", "unprivileged"]


@pytest.fixture(params=USERS)
def user_env(
    request: pytest.FixtureRequest, tmp_path: Path, shared_tmp: Path, unprivileged_user: pwd.struct_passwd
) -> Iterator[tuple[Path, pwd.struct_passwd | None]]:
    """A fresh env in a workspace directory, made by whoever runs the suite or by the test user."""
    user = unprivileged_user if request.param == "unprivileged" else None
    workspace = shared_tmp if user else tmp_path
    env = make_env(workspace / ".venv", user=user)
    yield env, user
    destroy(env, user)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Path]:
    made = make_env(tmp_path / "work" / ".venv")
    yield made
    destroy(made)


def site_packages(env: Path) -> Path:
    (found,) = env.glob("lib/python3*/site-packages")
    return found


def test_uv_pip_install_with_virtual_env_and_with_python(
    user_env: tuple[Path, pwd.struct_passwd | None],
) -> None:
    env, user = user_env
    uv = tool("uv")
    wheels = env.parent / "wheels"
    wheels.mkdir()
    wheels.chmod(0o755)
    one = build_wheel(wheels, "uvone", "uvone", "print(sys.prefix)")
    two = build_wheel(wheels, "uvtwo", "uvtwo", "print(sys.prefix)")
    run([uv, "pip", "install", "--offline", str(one)], env={"VIRTUAL_ENV": str(env)}, user=user)
    run([uv, "pip", "install", "--offline", "--python", str(env / "bin" / "python"), str(two)], user=user)
    for name in ("uvone", "uvtwo"):
        assert (site_packages(env) / name / "__init__.py").is_file(), name
        assert inside(env, f"import {name}; print({name}.__file__)", user=user).startswith(str(env))
        # The console script runs the env's python through its shim: inside the root.
        assert run([str(env / "bin" / name)], user=user).strip() == str(env)


def test_pip_install_editable(user_env: tuple[Path, pwd.struct_passwd | None]) -> None:
    env, user = user_env
    project = tiny_project(env.parent / "edproj", "edproj", user=user)
    run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "-e", "."], cwd=project, user=user)
    where = inside(env, "import edproj; print(edproj.__file__)", user=user)
    assert where == str(project / "src" / "edproj" / "__init__.py")
    # Editable: a change to the source is what the env imports next, with no reinstall.
    (project / "src" / "edproj" / "__init__.py").write_text("VALUE = 'edited'\n")
    assert inside(env, "import edproj; print(edproj.VALUE)", user=user) == "edited"


def test_poetry_install_goes_into_the_active_env(env: Path, tmp_path: Path) -> None:
    project = tiny_project(env.parent / "poproj", "poproj", backend="poetry")
    poetry_venvs = tmp_path / "poetry-venvs"
    settings = {
        "VIRTUAL_ENV": str(env),
        "PATH": f"{env / 'bin'}:{tool('poetry').rsplit('/', 1)[0]}:/usr/bin:/bin",
        "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
        "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
        "POETRY_VIRTUALENVS_PATH": str(poetry_venvs),
    }
    run([tool("poetry"), "install", "--no-interaction"], cwd=project, env=settings)
    assert run([tool("poetry"), "env", "info", "--path"], cwd=project, env=settings).strip() == str(env)
    assert inside(env, "import poproj; print(poproj.__file__)").startswith(str(project))
    assert run([str(env / "bin" / "poproj")]).strip() == str(env)
    assert not poetry_venvs.exists() or not any(poetry_venvs.iterdir()), "poetry made a venv of its own"


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_pipx_install_with_the_envs_python(tmp_path: Path, backend: str) -> None:
    pipx_home, pipx_bin = tmp_path / "pipx-home", tmp_path / "pipx-bin"
    pipx_home.mkdir()
    # pipx's pip backend makes its venv by running `E/bin/python -m venv`, so inside: its home must be
    # mapped read-write to land on the host (the uv backend makes it from the host).
    mapping = ["--directory", f"{pipx_home}:rw"] if backend == "pip" else []
    env = make_env(tmp_path / "work" / ".venv", *mapping)
    try:
        project = tiny_project(env.parent / "pxproj", "pxproj")
        settings = {"PIPX_HOME": str(pipx_home), "PIPX_BIN_DIR": str(pipx_bin)}
        python = str(env / "bin" / "python")
        run([tool("pipx"), "install", "--backend", backend, "--python", python, str(project)], env=settings)
        app_venv = pipx_home / "venvs" / "pxproj"
        assert run([str(pipx_bin / "pxproj")]).strip() == str(app_venv)
        version = inside(env, "import sys; print('%d.%d' % sys.version_info[:2])")
        assert (app_venv / "lib" / f"python{version}" / "site-packages" / "pxproj").is_dir()
    finally:
        destroy(env)


PRE_COMMIT_CONFIG = """\
repos:
- repo: local
  hooks:
  - id: system-hook
    name: system-hook
    entry: python -c "import sys, pathlib; pathlib.Path('system.out').write_text(sys.prefix)"
    language: system
    pass_filenames: false
  - id: python-hook
    name: python-hook
    entry: python -c "import sys, pathlib; pathlib.Path('python.out').write_text(sys.version[:4])"
    language: python
    pass_filenames: false
"""


def test_pre_commit_in_an_activated_env(env: Path, tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is not installed (.ci/setup installs it)")
    repo = env.parent / "repo"
    repo.mkdir()
    (repo / ".pre-commit-config.yaml").write_text(PRE_COMMIT_CONFIG)
    run([git, "init", "-q"], cwd=repo)
    run([git, "add", "-A"], cwd=repo)
    script = f". {env}/bin/activate && {tool('pre-commit')} run --all-files"
    output = run(["bash", "-c", script], cwd=repo, env={"PRE_COMMIT_HOME": str(tmp_path / "pc")})
    assert "system-hook" in output and "python-hook" in output, output
    # The system hook's `python` is the activated env's, run inside; the python hook's env is
    # built by pre-commit from that interpreter.
    assert (repo / "system.out").read_text() == str(env)
    assert (repo / "python.out").read_text() == inside(env, "import sys; print(sys.version[:4])")
