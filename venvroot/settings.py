"""An environment's settings: one schema shared by the CLI, the config file and venvroot.cfg.

Management code uses this; the shim's hot path reads venvroot.cfg through envconfig instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from . import envconfig
from .envconfig import MARKER, quote
from .version import __version__

BACKENDS = ("ns", "docker")
ALL_ACTIVATORS = ("bash", "fish", "cshell", "xonsh")


@dataclass
class Settings:
    """Everything that defines an environment. Field names map to option names (``_`` -> ``-``)."""

    path: Path
    backend: str = "ns"
    root: str | None = None
    image: str | None = None
    user: str = ""
    directory: list[str] = field(default_factory=list)
    link: list[str] = field(default_factory=list)
    persistent: bool = False
    on_activate: list[str] = field(default_factory=list)
    on_deactivate: list[str] = field(default_factory=list)
    hostname: str | None = None
    prompt: str | None = None
    activators: list[str] = field(default_factory=lambda: list(ALL_ACTIVATORS))
    python: str | None = None
    no_vcs_ignore: bool = False
    # Backend-owned facts recorded at create time (e.g. the root layer in use).
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env_name(self) -> str:
        return self.path.name

    @property
    def effective_prompt(self) -> str:
        return self.prompt if self.prompt else self.env_name

    def to_cfg(self) -> str:
        """Render ``venvroot.cfg``: ``key = value`` lines, repeated keys for lists."""
        lines = [f"{MARKER} = {__version__}", f"path = {quote(str(self.path))}"]
        for f in fields(self):
            if f.name in ("path", "extra"):
                continue
            value = getattr(self, f.name)
            key = f.name.replace("_", "-")
            if isinstance(value, list):
                if f.name == "activators":
                    lines.append(f"{key} = {','.join(value)}")
                else:
                    lines.extend(f"{key} = {quote(v)}" for v in value)
            elif isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif value is not None and value != "":
                lines.append(f"{key} = {quote(str(value))}")
        lines.extend(f"{k} = {quote(v)}" for k, v in sorted(self.extra.items()))
        return "\n".join(lines) + "\n"

    def to_envconfig(self) -> envconfig.EnvConfig:
        """These settings as the hot path sees them once written (management code runs programs
        through the backends' hot-path functions, which take an EnvConfig)."""
        values: dict[str, list[str]] = {}
        for line in self.to_cfg().splitlines():
            key, sep, raw = line.partition(" = ")
            if sep:
                values.setdefault(key, []).append(envconfig.unquote(raw))
        return envconfig.EnvConfig(str(self.path), values)

    @classmethod
    def from_cfg(cls, path: Path) -> Settings:
        """Read ``<path>/venvroot.cfg`` (written by :meth:`to_cfg`)."""
        cfg = envconfig.read(str(path))
        kinds = {f.name.replace("_", "-"): f.name for f in fields(cls) if f.name not in ("path", "extra")}
        defaults = cls(path)
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
            elif isinstance(getattr(defaults, name), list):
                values[name] = list(items)
            elif isinstance(getattr(defaults, name), bool):
                values[name] = items[-1] == "true"
            else:
                values[name] = items[-1]
        return cls(path=path, extra=extra, **values)  # type: ignore[arg-type]
