"""The byte streams to a Docker Engine: unix and tcp sockets, TLS over tcp, ssh's dial-stdio pipe.

Hot path, standard library only. A local engine (unix socket, plain tcp) costs nothing beyond
``_socket``; ``ssl`` is imported only for a TLS engine and a child ``ssh`` started only for an
ssh:// one. Each stream offers what the Engine API client and the exec pump use of a socket:
``sendall``, ``send``, ``recv``, ``shutdown(SHUT_WR)``, ``setblocking``, ``fileno`` and ``close``.
"""

from __future__ import annotations

import _socket

from .address import DEFAULT_HOST, DaemonUnreachableError, Target, from_environ, split_hostport
from .ssh import SSHStream

__all__ = ["DEFAULT_HOST", "DaemonUnreachableError", "Target", "connect", "from_environ", "reason"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Stream(Protocol):
        """What the Engine API client and the exec pump use of a socket."""

        def sendall(self, data: bytes, /) -> None: ...
        def send(self, data: bytes, /) -> int: ...
        def recv(self, size: int, /) -> bytes: ...
        def shutdown(self, how: int, /) -> None: ...
        def setblocking(self, flag: bool, /) -> None: ...
        def fileno(self) -> int: ...
        def close(self) -> None: ...


def connect(target: Target) -> tuple[Stream, str]:
    """A connected stream to the engine and the text naming it in messages."""
    host = target.host
    if host.startswith("unix://"):
        return _plain(_socket.AF_UNIX, host[7:], host), host
    if host.startswith(("tcp://", "http://", "https://")):
        scheme, rest = host.split("://", 1)
        name, port = split_hostport(rest, 2376 if target.tls else 2375, scheme, f"DOCKER_HOST={host}")
        name = name or "127.0.0.1"
        family = _socket.AF_INET6 if ":" in name else _socket.AF_INET
        if not target.tls and scheme != "https":
            return _plain(family, (name, port), host), host
        # ssl (~10 ms): only for a tcp:// engine, not a local shim's path
        from .tls import TLSStream

        return TLSStream(_plain(family, (name, port), host), name, target, host), host
    if host.startswith("ssh://"):
        return SSHStream(host), host
    raise DaemonUnreachableError(
        f"DOCKER_HOST={host} is not supported by venvroot's docker backend; use unix:///PATH, "
        "tcp://HOST:PORT (with DOCKER_TLS_VERIFY for TLS) or ssh://[USER@]HOST[:PORT]"
    )


def _plain(family: int, addr: str | tuple[str, int], display: str) -> _socket.socket:
    sock = _socket.socket(family, _socket.SOCK_STREAM)
    if family != _socket.AF_UNIX:
        sock.settimeout(10)  # an unreachable host answers nothing: say so in seconds, not minutes
    try:
        sock.connect(addr)
    except (FileNotFoundError, ConnectionRefusedError, _socket.gaierror, TimeoutError) as exc:
        sock.close()
        raise DaemonUnreachableError(
            f"cannot reach the Docker daemon at {display} ({reason(exc)}): is dockerd running? "
            "Start it, or point DOCKER_HOST at it"
        ) from None
    except PermissionError:
        sock.close()
        raise DaemonUnreachableError(
            f"permission denied on the Docker socket {addr}: add your user to the 'docker' group "
            "(then log in again) or run as root"
        ) from None
    except OSError as exc:
        sock.close()
        raise DaemonUnreachableError(f"cannot reach the Docker daemon at {display}: {reason(exc)}") from None
    sock.settimeout(None)
    if family != _socket.AF_UNIX:  # small requests and TLS records: no 40 ms Nagle/delayed-ACK stalls
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    return sock


def reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
