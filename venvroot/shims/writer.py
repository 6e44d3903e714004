"""Writes and removes shims (and the session hook) from ``shim.tmpl`` and ``manage.tmpl``."""

from __future__ import annotations

import os
import sys

from ..errors import UsageError
from ..util import templates
from ..util.shquote import quote
from .marker import COMPILED, ENTRY, is_shim

HERE = os.path.dirname(os.path.abspath(__file__))
SESSION_HOOK = ".venvroot-session"
# Files the environment itself owns in bin/: a shim must never replace them.
RESERVED = ("activate", "destroy", SESSION_HOOK, COMPILED)


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


def _render(template: str, env_dir: str, name: str, **values: str | bool) -> str:
    values = {"python": sys.executable, "entry": ENTRY, "env_dir": env_dir, **values}
    text = templates.render(HERE, template, quote, values)
    path, tmp = f"{env_dir}/bin/{name}", f"{env_dir}/bin/.{name}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)  # atomic: a shim running now never sees half a file
    return path


def write_shim(env_dir: str, program: str) -> str:
    """Write (or replace) ``bin/NAME`` for ``program``; return its path. Where the backend put a
    compiled shim in bin/, a program name gets a link to it (it finds its env and program from the
    link's path: an env moved whole keeps working links, and a root without a C library runs it);
    a program given as a path, or any program without one, gets the sh shim."""
    name = shim_name(program)
    if name != program or not os.access(f"{env_dir}/bin/{COMPILED}", os.X_OK):
        return _render("shim.tmpl", env_dir, name, program=program)
    path, tmp = f"{env_dir}/bin/{name}", f"{env_dir}/bin/.{name}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(COMPILED, tmp)
    os.replace(tmp, path)  # atomic, as a rendered shim
    return path


def write_manage_script(env_dir: str, name: str, verb: str) -> str:
    """``bin/destroy`` and the session hook: run a management verb of this environment."""
    return _render("manage.tmpl", env_dir, name, verb=verb, activation_hook=verb == "session")


def remove_shim(env_dir: str, program: str) -> str:
    name = shim_name(program)
    path = f"{env_dir}/bin/{name}"
    if not os.path.exists(path):
        raise UsageError(f"no shim {name!r} in {env_dir}/bin; `venvroot info` lists the linked programs")
    if not is_shim(path):
        raise UsageError(f"{path} is not a venvroot shim; not removing it")
    os.unlink(path)
    return path


def linked_programs(env_dir: str) -> list[str]:
    """The programs that have shims, read back from the shims themselves."""
    found = []
    for name in sorted(os.listdir(f"{env_dir}/bin")):
        path = f"{env_dir}/bin/{name}"
        if os.path.isfile(path) and is_shim(path):
            found.append(name)
    return found
