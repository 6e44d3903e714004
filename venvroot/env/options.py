"""The create options: one table used by the CLI and the config file, with their checks."""

from __future__ import annotations

from ..backends.mapping import DirectoryMapping, UserSpec
from ..backends.settings import ALL_ACTIVATORS, BACKENDS
from ..errors import UsageError
from .compat import check_choice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_LETTERS_DIGITS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_LABEL_INNER = _LETTERS_DIGITS | {"-"}


def check_backend(value: str) -> str:
    if value not in BACKENDS:
        raise UsageError(f"unknown backend {value!r}: choose one of {', '.join(BACKENDS)}")
    return value


def check_activators(value: str | list[str]) -> list[str]:
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip() for n in names if n.strip()]
    # virtualenv calls the tcsh activator "cshell"; accept the shell names people type too.
    aliases = {"csh": "cshell", "tcsh": "cshell", "sh": "bash", "zsh": "bash"}
    out: list[str] = []
    for name in names:
        name = aliases.get(name, name)
        if name not in ALL_ACTIVATORS:
            raise UsageError(f"unknown activator {name!r}: choose from {', '.join(ALL_ACTIVATORS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError(f"no activators given: choose from {', '.join(ALL_ACTIVATORS)}")
    return out


def check_directory(value: str) -> str:
    return str(DirectoryMapping.parse(value))


def check_user(value: str) -> str:
    return str(UserSpec.parse(value))


def _is_hostname(value: str) -> bool:
    """Dot-separated labels of 1 to 63 letters, digits and '-', not starting or ending with '-';
    253 characters at most."""
    if not 0 < len(value) <= 253:
        return False
    return all(
        0 < len(label) <= 63
        and label[0] in _LETTERS_DIGITS
        and label[-1] in _LETTERS_DIGITS
        and all(c in _LABEL_INNER for c in label)
        for label in value.split(".")
    )


def check_hostname(value: str) -> str:
    if not _is_hostname(value):
        raise UsageError(
            f"bad hostname {value!r}: use letters, digits and '-', dot-separated "
            "(an FQDN sets the domain name too)"
        )
    return value


def check_nonempty(value: str) -> str:
    if not value.strip():
        raise UsageError("an empty value is not allowed here")
    return value


def check_link(value: str) -> str:
    if not value or "/" in value.rstrip("/").rpartition("/")[2] or value.endswith("/"):
        raise UsageError(f"bad --link {value!r}: give a program name or an absolute path to a program")
    if "/" in value and not value.startswith("/"):
        raise UsageError(f"bad --link {value!r}: a path must be absolute inside the root")
    return value


def check_pip(value: str) -> str:
    if value not in ("embed", "bundle", "none", "latest") and not (
        value[:1].isdigit() and all(c.isalnum() or c in ".+!-" for c in value)
    ):
        raise UsageError(f"bad --pip {value!r}: give embed, bundle, none, latest or a version such as 24.0")
    return value


def _choice(key: str) -> Callable[[str], str]:
    return lambda value: check_choice(key, value)


class Option:
    """One create option: its config key (the long option without "--"), its kind (str, bool or
    list) and the check of one value."""

    __slots__ = ("check", "key", "kind")

    def __init__(self, key: str, kind: type, check: Callable[[Any], object] | None = None) -> None:
        self.key = key
        self.kind = kind
        self.check = check


OPTIONS: dict[str, Option] = {
    o.key: o
    for o in (
        Option("backend", str, check_backend),
        Option("root", str, check_nonempty),
        Option("image", str, check_nonempty),
        Option("user", str, check_user),
        Option("directory", list, check_directory),
        Option("link", list, check_link),
        Option("persistent", bool),
        Option("pid", bool),
        Option("on-activate", list, check_nonempty),
        Option("on-deactivate", list, check_nonempty),
        Option("hostname", str, check_hostname),
        Option("remote", bool),
        Option("local", bool),
        Option("prompt", str),
        Option("activators", list),
        Option("python", str, check_nonempty),
        Option("no-vcs-ignore", bool),
        Option("system-site-packages", bool),
        Option("pip", str, check_pip),
        Option("try-first-with", list, check_nonempty),
        Option("without-pip", bool),
        Option("download", bool),
        Option("no-download", bool),
        Option("symlinks", bool),
        Option("copies", bool),
        Option("no-setuptools", bool),
        Option("no-wheel", bool),
        Option("app-data", str),
        Option("reset-app-data", bool),
        Option("read-only-app-data", bool),
        Option("symlink-app-data", bool),
        Option("creator", str, _choice("creator")),
        Option("seeder", str, _choice("seeder")),
        Option("discovery", str, _choice("discovery")),
        Option("no-periodic-update", bool),
        Option("upgrade-embed-wheels", bool),
        Option("with-traceback", bool),
        Option("clear", bool),
        Option("quiet", bool),
        Option("verbose", bool),
    )
}


def check(key: str, value: object) -> object:
    """Validate and normalise one option value (as it would come from the CLI)."""
    opt = OPTIONS[key]
    if key == "activators":
        return check_activators(value)  # type: ignore[arg-type]
    if opt.kind is list:
        items = value if isinstance(value, list) else [value]
        return [opt.check(v) if opt.check else v for v in items]
    if opt.check and value is not None:
        return opt.check(value)
    return value
