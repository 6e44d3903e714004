"""An engine's address as the docker CLI writes it: ``Target``, ``DOCKER_HOST`` and its TLS variables.

Hot path, ``os`` only.
"""

from __future__ import annotations

import os

from ...errors import VenvrootError

DEFAULT_HOST = "unix:///var/run/docker.sock"


class DaemonUnreachableError(VenvrootError):
    """No daemon at the address, or no permission to talk to it."""


class Target:
    """Where an engine is: its address (``unix://``, ``tcp://``, ``ssh://``) and, for TLS, the
    directory of ``ca.pem``, ``cert.pem`` and ``key.pem`` and whether the daemon's certificate is
    verified."""

    __slots__ = ("host", "tls_dir", "verify")

    def __init__(self, host: str, tls_dir: str = "", verify: bool = False) -> None:
        self.host = host
        self.tls_dir = tls_dir
        self.verify = verify

    @property
    def tls(self) -> bool:
        return bool(self.tls_dir) or self.verify


def from_environ() -> Target:
    """The engine that ``DOCKER_HOST``, ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH`` name."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    verify = bool(os.environ.get("DOCKER_TLS_VERIFY"))
    cert_path = os.environ.get("DOCKER_CERT_PATH", "")
    if (verify or cert_path) and host.startswith(("tcp://", "https://")):
        return Target(host, cert_path or os.path.join(os.path.expanduser("~"), ".docker"), verify)
    return Target(host)


def split_hostport(rest: str, default_port: int, scheme: str, what: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` too), or one line naming the problem."""
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        name, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        name, _, port = rest.partition(":")
    else:
        name, port = rest, ""
    if port and not port.isdigit():
        raise DaemonUnreachableError(f"{what}: bad port {port!r}; expected {scheme}://HOST:PORT")
    return name, int(port) if port else default_port
