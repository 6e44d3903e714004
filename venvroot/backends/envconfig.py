"""Reading and writing ``venvroot.cfg`` with nothing but builtins: this is on every shim's hot path.

(``dataclasses``, ``pathlib``, ``json``, ``re`` and ``typing`` each cost 5-10 ms to import, more than
the rest of a shim; they are imported lazily or not at all here.)

The format: ``key = value`` lines, a list is the key repeated; a value that would not survive a
line (surrounding blanks, a newline, a leading quote) is written as a JSON string.
"""

from __future__ import annotations

import os

from ..errors import NotAnEnvironment

CFG_NAME = "venvroot.cfg"
MARKER = "venvroot"


def quote(value: str) -> str:
    if value != value.strip() or "\n" in value or "\r" in value or value.startswith('"'):
        # json (and re): not on the shims' path, which quotes nothing
        import json

        return json.dumps(value, ensure_ascii=False)
    return value


def unquote(raw: str) -> str:
    if raw.startswith('"'):
        # json (and re): only for a quoted value, rare on the shims' path
        import json

        try:
            return str(json.loads(raw))
        except ValueError:
            return raw
    return raw


class EnvConfig:
    """The raw contents of an environment's venvroot.cfg: every key maps to its list of values."""

    __slots__ = ("env_dir", "values")

    def __init__(self, env_dir: str, values: dict[str, list[str]]) -> None:
        self.env_dir = env_dir
        self.values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        found = self.values.get(key)
        return found[-1] if found else default

    def get_list(self, key: str) -> list[str]:
        return list(self.values.get(key, ()))

    def get_bool(self, key: str) -> bool:
        return self.get(key) == "true"

    @property
    def backend(self) -> str:
        return self.get("backend") or "ns"

    @property
    def bin_dir(self) -> str:
        return self.env_dir + "/bin"


def read(env_dir: str) -> EnvConfig:
    """Parse ``<env_dir>/venvroot.cfg``; raise NotAnEnvironment when it is missing or not ours."""
    env_dir = os.path.abspath(env_dir)
    try:
        with open(os.path.join(env_dir, CFG_NAME), encoding="utf-8") as handle:
            text = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        raise _not_ours(env_dir) from None
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition(" = ")
        if not sep:
            key, sep, raw = line.rstrip().partition(" =")  # "key =" with an empty value
        if sep and not key.startswith("#"):
            values.setdefault(key.strip(), []).append(unquote(raw))
    if MARKER not in values:
        raise _not_ours(env_dir)
    return EnvConfig(env_dir, values)


def _not_ours(env_dir: str) -> NotAnEnvironment:
    return NotAnEnvironment(f"{env_dir} is not a venvroot environment (no {CFG_NAME}); check the path")
