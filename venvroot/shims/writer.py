"""Writes and removes shims (and the session hook) from ``shim.tmpl`` and ``manage.tmpl``."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from .. import templates
from ..errors import UsageError

HERE = Path(__file__).parent
ENTRY = HERE / "entry.py"
SESSION_HOOK = ".venvroot-session"
MARK = "# venvroot shim:"
# Files the environment itself owns in bin/: a shim must never replace them.
RESERVED = ("activate", "destroy", SESSION_HOOK)


def shim_name(program: str) -> str:
    """The file name in bin/ for ``program`` (a name, or an absolute path inside the root)."""
    name = program.rstrip("/").rpartition("/")[2]
    if not name or name in (".", "..") or any(ord(c) < 32 for c in program):
        raise UsageError(f"cannot make a shim for {program!r}: give a program name or an absolute path")
    if name in RESERVED or name.startswith("activate"):
        raise UsageError(
            f"cannot make a shim named {name!r}: it would replace the environment's own bin/{name}; "
            "link the program under another path"
        )
    return name


def _render(template: str, path: Path, **values: str | bool) -> Path:
    text = templates.render(
        str(HERE), template, shlex.quote, {"python": sys.executable, "entry": str(ENTRY), **values}
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)  # atomic: a shim running now never sees half a file
    return path


def write_shim(env_dir: Path, program: str) -> Path:
    return _render("shim.tmpl", env_dir / "bin" / shim_name(program), env_dir=str(env_dir), program=program)


def write_manage_script(env_dir: Path, name: str, verb: str) -> Path:
    """``bin/destroy`` and the session hook: run a management verb of this environment."""
    path = env_dir / "bin" / name
    return _render("manage.tmpl", path, env_dir=str(env_dir), verb=verb, activation_hook=verb == "session")


def is_shim(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            handle.readline()
            return handle.readline().startswith(MARK)
    except OSError:
        return False


def remove_shim(env_dir: Path, program: str) -> Path:
    path = env_dir / "bin" / shim_name(program)
    if not path.exists():
        raise UsageError(f"no shim {path.name!r} in {env_dir}/bin; `venvroot info` lists the linked programs")
    if not is_shim(path):
        raise UsageError(f"{path} is not a venvroot shim; not removing it")
    path.unlink()
    return path


def linked_programs(env_dir: Path) -> list[str]:
    """The programs that have shims, read back from the shims themselves."""
    found = []
    for path in sorted((env_dir / "bin").iterdir()):
        if path.is_file() and is_shim(path):
            found.append(path.name)
    return found
