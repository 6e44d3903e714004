"""Which engine a new env belongs to, found as the docker CLI finds it; recorded in venvroot.cfg.

Precedence: ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``), then the context
``DOCKER_CONTEXT`` names, then ``currentContext`` in ``$DOCKER_CONFIG/config.json`` (default
``~/.docker``), else the local socket. A context's endpoint is in
``contexts/meta/<sha256 of its name>/meta.json`` and its TLS files in
``contexts/tls/<sha256 of its name>/docker/``. Management path only: shims read what was recorded.
"""

from __future__ import annotations

import hashlib
import json
import os

from ...errors import UsageError
from . import engine
from .address import DEFAULT_HOST, Target, from_environ

# Hosts of this machine: an engine there sees our files, so bind mounts work.
LOOPBACK = ("localhost", "127.0.0.1", "::1", "ip6-localhost")


class Endpoint:
    """An engine's address (a transport Target) and where it was found (for ``venvroot info``)."""

    def __init__(self, target: Target, source: str) -> None:
        self.target = target
        self.source = source

    @property
    def host(self) -> str:
        return self.target.host

    def is_local(self) -> bool:
        """Whether the engine runs on this machine (and so sees its files): a unix socket, or a
        tcp:// or ssh:// address of a loopback host."""
        host = self.host
        if host.startswith("unix://"):
            return True
        rest = host.split("://", 1)[-1].rpartition("@")[2]
        name = rest[1:].partition("]")[0] if rest.startswith("[") else rest.rpartition(":")[0] or rest
        return name in LOOPBACK or name.startswith("127.")

    def record(self, extra: dict[str, str]) -> None:
        extra[engine.CFG_HOST] = self.host
        extra[CFG_SOURCE] = self.source
        if self.target.tls:
            extra[engine.CFG_TLS_DIR] = os.path.abspath(self.target.tls_dir)  # shims run from anywhere
            extra[engine.CFG_TLS_VERIFY] = "true" if self.target.verify else "false"

    def describe(self) -> str:
        tls = ", TLS verified" if self.target.verify else ", TLS" if self.target.tls else ""
        return f"{self.host} ({self.source}{tls})"


CFG_SOURCE = "docker-engine-source"


def recorded(extra: dict[str, str]) -> Endpoint | None:
    host = extra.get(engine.CFG_HOST)
    if not host:
        return None
    target = Target(host, extra.get(engine.CFG_TLS_DIR, ""), extra.get(engine.CFG_TLS_VERIFY) == "true")
    return Endpoint(target, extra.get(CFG_SOURCE, "recorded"))


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def resolve() -> Endpoint:
    """The engine the docker CLI would use here and now, or one line naming a bad context."""
    if os.environ.get("DOCKER_HOST"):
        return Endpoint(from_environ(), "DOCKER_HOST")
    name = os.environ.get("DOCKER_CONTEXT")
    where = "DOCKER_CONTEXT"
    if not name:
        name = _current_context()
        where = f"currentContext in {os.path.join(config_dir(), 'config.json')}"
    if not name or name == "default":
        return Endpoint(Target(DEFAULT_HOST), "default")
    return Endpoint(context_target(name, where), f"context {name}")


def _current_context() -> str | None:
    path = os.path.join(config_dir(), "config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path} ({exc}); fix it or set DOCKER_HOST") from None
    name = found.get("currentContext") if isinstance(found, dict) else None
    return name if isinstance(name, str) else None


def context_target(name: str, where: str) -> Target:
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta_path = os.path.join(config_dir(), "contexts", "meta", digest, "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except FileNotFoundError:
        raise UsageError(
            f"docker context {name!r} (from {where}) does not exist; see `docker context ls`, or "
            "create it with `docker context create`"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read docker context {name!r} ({meta_path}: {exc})") from None
    docker = (meta.get("Endpoints") or {}).get("docker") or {}
    host = docker.get("Host") or DEFAULT_HOST
    tls_dir = os.path.join(config_dir(), "contexts", "tls", digest, "docker")
    if not os.path.isdir(tls_dir) or host.startswith(("unix://", "ssh://")):
        return Target(host)
    return Target(host, tls_dir, not docker.get("SkipTLSVerify", False))
