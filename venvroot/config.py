"""``.venvroot.conf``: TOML defaults for ``venvroot create``, checked key by key."""

from __future__ import annotations

from .errors import UsageError
from .options import OPTIONS, check

DEFAULT_NAME = ".venvroot.conf"


def _line_of(text: str, key: str) -> int:
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
        import tomllib
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
