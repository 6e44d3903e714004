"""An environment's settings: one schema shared by the CLI, the config file and venvroot.cfg.

Management code uses this; the shim's hot path reads venvroot.cfg through envconfig instead.
"""

from __future__ import annotations

import os

from ..util.atomicfile import write_text
from ..version import __version__
from . import envconfig
from .envconfig import MARKER, quote

BACKENDS = ("ns", "docker")
ALL_ACTIVATORS = ("bash", "fish", "cshell", "xonsh", "nushell")

# Every setting but ``path`` and ``extra``, in venvroot.cfg's order, with its default (a list default
# is copied for each Settings). Names map to option names (``_`` -> ``-``).
DEFAULTS: dict[str, object] = {
    "backend": "ns",
    "root": None,
    "image": None,
    "user": "",
    "directory": [],
    "link": [],
    "persistent": False,
    "pid": False,
    "on_activate": [],
    "on_deactivate": [],
    "hostname": None,
    "prompt": None,
    "activators": list(ALL_ACTIVATORS),
    "python": None,
    "try_first_with": [],
    "system_site_packages": False,
    "pip": None,
    "no_vcs_ignore": False,
    "mapping": None,
}


class Settings:
    """Everything that defines an environment: ``Settings(path, name=value...)`` with the names of
    :data:`DEFAULTS`. A plain class: ``dataclasses`` would cost every create ~7 ms. ``path`` may be
    given as any path-like and is kept as a ``str`` (absolute once created or opened): pathlib
    costs a create several milliseconds."""

    path: str
    backend: str
    root: str | None
    image: str | None
    user: str
    directory: list[str]
    link: list[str]
    persistent: bool
    pid: bool  # ns: a PID namespace of the env's own, its holder as init
    on_activate: list[str]
    on_deactivate: list[str]
    hostname: str | None
    prompt: str | None
    activators: list[str]
    python: str | None
    try_first_with: list[str]  # interpreters (inside the root) tried before ``python``
    system_site_packages: bool
    pip: str | None  # None (virtualenv's embedded pip), "none", "latest" or a version
    no_vcs_ignore: bool
    # docker: "remote" (named volumes, nothing bound from this machine), "local" (bind mounts), or
    # None: decided by where the engine is (--remote / --local).
    mapping: str | None
    # Backend-owned facts recorded at create time (e.g. the root layer in use).
    extra: dict[str, str]

    def __init__(
        self, path: str | os.PathLike[str], extra: dict[str, str] | None = None, **values: object
    ) -> None:
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise TypeError(f"Settings() got an unknown setting {unknown[0]!r}")
        self.path = os.fspath(path)
        for name, default in DEFAULTS.items():
            if name in values:
                setattr(self, name, values[name])
            else:
                setattr(self, name, list(default) if isinstance(default, list) else default)
        self.extra = {} if extra is None else extra

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{name}={value!r}" for name, value in vars(self).items()) + ")"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    @property
    def env_name(self) -> str:
        return os.path.basename(self.path)

    @property
    def effective_prompt(self) -> str:
        return self.prompt if self.prompt else self.env_name

    def to_cfg(self) -> str:
        """Render ``venvroot.cfg``: ``key = value`` lines, repeated keys for lists."""
        lines = [f"{MARKER} = {__version__}", f"path = {quote(self.path)}"]
        for name in DEFAULTS:
            value = getattr(self, name)
            key = name.replace("_", "-")
            if isinstance(value, list):
                if name == "activators":
                    lines.append(f"{key} = {','.join(value)}")
                else:
                    lines.extend(f"{key} = {quote(v)}" for v in value)
            elif isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif value is not None and value != "":
                lines.append(f"{key} = {quote(str(value))}")
        lines.extend(f"{k} = {quote(v)}" for k, v in sorted(self.extra.items()))
        return "\n".join(lines) + "\n"

    def save(self) -> None:
        """Write ``<path>/venvroot.cfg`` whole: a shim reading it meanwhile sees the old or the new."""
        write_text(f"{self.path}/{envconfig.CFG_NAME}", self.to_cfg())

    def to_envconfig(self) -> envconfig.EnvConfig:
        """These settings as the hot path sees them once written (management code runs programs
        through the backends' hot-path functions, which take an EnvConfig)."""
        values: dict[str, list[str]] = {}
        for line in self.to_cfg().splitlines():
            key, sep, raw = line.partition(" = ")
            if sep:
                values.setdefault(key, []).append(envconfig.unquote(raw))
        return envconfig.EnvConfig(self.path, values)

    @classmethod
    def from_cfg(cls, path: str) -> Settings:
        """Read ``<path>/venvroot.cfg`` (written by :meth:`to_cfg`)."""
        cfg = envconfig.read(path)
        kinds = {name.replace("_", "-"): name for name in DEFAULTS}
        values: dict[str, object] = {}
        extra: dict[str, str] = {}
        for key, items in cfg.values.items():
            if key in (MARKER, "path"):
                continue
            name = kinds.get(key)
            if name is None:
                extra[key] = items[-1]
            elif name == "activators":
                values[name] = [v for v in items[-1].split(",") if v]
            elif isinstance(DEFAULTS[name], list):
                values[name] = list(items)
            elif isinstance(DEFAULTS[name], bool):
                values[name] = items[-1] == "true"
            else:
                values[name] = items[-1]
        return cls(path=path, extra=extra, **values)
