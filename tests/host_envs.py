"""Real host-view environments and tiny local projects for the tests of host tools working on an
env (uv, pip, poetry, pipx, pre-commit, Jupyter, IDE discovery)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

from conftest import as_user, missing

# The tools come from the test venv (the package's test extras), next to this interpreter.
TOOLS = Path(sys.executable).parent
VENVROOT = [sys.executable, "-m", "venvroot"]


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        missing(f"{name} is not installed in the test venv (pip install '.[test]')")
    return str(path)


def run(
    argv: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: pwd.struct_passwd | None = None,
) -> str:
    """Run ``argv`` (as ``user`` when given), fail the test with its output if it fails."""
    base = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # no env unless asked
    full = {**base, "PATH": f"{TOOLS}{os.pathsep}{base.get('PATH', '')}", **(env or {})}
    if user is not None and user.pw_uid != os.getuid():
        argv = as_user(user, argv)  # runuser keeps the environment; HOME is the user's
        full["HOME"] = user.pw_dir
    # Not the checkout by default: `-m venvroot` would import its sources, and CI's checkout may be
    # unreadable to the test user.
    done = subprocess.run(argv, cwd=cwd or "/", env=full, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def make_env(path: Path, *args: str, user: pwd.struct_passwd | None = None) -> Path:
    """A host-view ns environment at ``path`` (default root), made by ``user`` when given."""
    run([*VENVROOT, str(path), "-q", *args], user=user)
    return path


def destroy(env: Path, user: pwd.struct_passwd | None = None) -> None:
    command = [str(env / "bin" / "destroy")]
    if (env / "bin" / "destroy").exists():
        subprocess.run(as_user(user, command) if user else command, capture_output=True, timeout=60)


def inside(env: Path, code: str, user: pwd.struct_passwd | None = None) -> str:
    """What ``code`` prints when run by the env's own ``bin/python``."""
    return run([str(env / "bin" / "python"), "-c", code], user=user).strip()


def tiny_project(
    dest: Path, name: str, backend: str = "setuptools", user: pwd.struct_passwd | None = None
) -> Path:
    """``dest``: a pure-Python project ``name`` (src layout) with a console script ``name`` that prints
    its interpreter's ``sys.prefix``; built by setuptools or poetry-core (fetched from the index).
    Owned by ``user`` when given (a build writes into it)."""
    package = dest / "src" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import sys\n\n\ndef main():\n    print(sys.prefix)\n")
    if backend == "poetry":
        build = 'requires = ["poetry-core>=2"]\nbuild-backend = "poetry.core.masonry.api"\n'
        extra = f'\n[tool.poetry]\npackages = [{{include = "{name}", from = "src"}}]\n'
    else:
        build = 'requires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        extra = ""
    (dest / "pyproject.toml").write_text(
        f'[build-system]\n{build}\n[project]\nname = "{name}"\nversion = "0.1"\n'
        f'requires-python = ">=3.10"\ndependencies = []\n\n[project.scripts]\n{name} = "{name}:main"\n{extra}'
    )
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
    return dest
