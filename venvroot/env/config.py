"""``.venvroot.conf`` (TOML) and ``VENVROOT_*`` variables: defaults for a create, checked key by key."""

from __future__ import annotations

import os

from ..errors import UsageError
from .options import OPTIONS, check

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_NAME = ".venvroot.conf"


def _line_of(text: str, key: str) -> int:
    # re: only for an error's line number, not on a plain create's path
    import re

    pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def load(path: str) -> dict[str, object]:
    """Return ``{option key: checked value}`` from a config file, or raise one clear UsageError."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    # Imported only when there is a file to read: it costs ~5 ms of every create.
    try:
        import tomllib  # (see above)
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    out: dict[str, object] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("_", "-")
        where = f"{path}:{_line_of(text, raw_key)}: key {raw_key!r}"
        opt = OPTIONS.get(key)
        if opt is None:
            known = ", ".join(sorted(OPTIONS))
            raise UsageError(f"{where}: unknown key; known keys are {known}")
        if not _type_ok(opt.kind, key, value):
            want = {bool: "true or false", str: "a string", list: "a string or a list of strings"}[opt.kind]
            raise UsageError(f"{where}: expected {want}, got {value!r}")
        try:
            out[key] = check(key, value)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return out


def _type_ok(kind: type, key: str, value: object) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# The settings that VENVROOT_<KEY> variables give (VENVROOT_ON_ACTIVATE for on-activate): the
# environment's own, not virtualenv's flags, which its own VIRTUALENV_* variables carry.
ENV_KEYS = (
    "backend",
    "root",
    "image",
    "user",
    "directory",
    "link",
    "persistent",
    "on-activate",
    "on-deactivate",
    "hostname",
    "activators",
    "python",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def env_name(key: str) -> str:
    return "VENVROOT_" + key.upper().replace("-", "_")


def from_environ(environ: Mapping[str, str]) -> dict[str, object]:
    """``{option key: checked value}`` from the VENVROOT_* variables that are set; a list takes
    comma- or newline-separated items, a switch 1/0, true/false, yes/no or on/off."""
    out: dict[str, object] = {}
    for key in ENV_KEYS:
        name = env_name(key)
        raw = environ.get(name)
        if raw is None:
            continue
        kind = OPTIONS[key].kind
        value: object = raw
        if kind is bool:
            if raw.strip().lower() not in _TRUE + _FALSE:
                raise UsageError(f"{name}={raw!r}: expected 1 or 0 (true/false, yes/no, on/off)")
            value = raw.strip().lower() in _TRUE
        elif kind is list:
            value = [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]
        try:
            out[key] = check(key, value)
        except UsageError as exc:
            raise UsageError(f"{name}: {exc}") from None
    return out


def find(start: str) -> str | None:
    """The nearest ``.venvroot.conf`` in ``start`` or a directory above it, as tox finds tox.ini."""
    here = os.path.abspath(start)
    while True:
        candidate = os.path.join(here, DEFAULT_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
