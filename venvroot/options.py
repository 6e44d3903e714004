"""The create options: one table used by the CLI and the config file, with their checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import UsageError
from .mapping import DirectoryMapping, UserSpec
from .settings import ALL_ACTIVATORS, BACKENDS

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


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


def check_hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
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


@dataclass(frozen=True)
class Option:
    key: str  # config key == long option without "--"
    kind: type  # str, bool or list
    check: Callable | None = None


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
        Option("on-activate", list, check_nonempty),
        Option("on-deactivate", list, check_nonempty),
        Option("hostname", str, check_hostname),
        Option("prompt", str),
        Option("activators", list),
        Option("python", str, check_nonempty),
        Option("no-vcs-ignore", bool),
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
