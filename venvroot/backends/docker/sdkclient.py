"""The docker SDK's client for an env's engine (management path), ssh:// included.

The SDK speaks unix, tcp and TLS itself. Its ssh:// needs paramiko, so for an ssh:// engine this
process serves a private unix socket instead (a directory of mode 0700) and starts, for each
connection the SDK opens to it, ``ssh ... docker system dial-stdio`` with that connection as its
stdin and stdout: the same pipe the shims use, no extra dependency.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import threading
from typing import Any, ClassVar

from ...errors import VenvrootError
from . import ssh
from .address import Target


def make_client(target: Target) -> Any:
    # the docker SDK (~120 ms): only for the calls that need it
    import docker

    try:
        if target.host.startswith("ssh://"):
            return docker.DockerClient(base_url=f"unix://{_SSHRelay.start(target.host).path}")
        tls: Any = False
        if target.tls:
            names = [os.path.join(target.tls_dir, n) for n in ("ca.pem", "cert.pem", "key.pem")]
            cert = (names[1], names[2]) if os.path.exists(names[1]) else None
            tls = docker.tls.TLSConfig(client_cert=cert, ca_cert=names[0] if target.verify else None,
                                       verify=target.verify)  # fmt: skip
        host = target.host.replace("https://", "tcp://", 1)
        # requests lets REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) replace the engine's CA: keep them out.
        saved = {k: os.environ.pop(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if k in os.environ}
        try:
            client = docker.DockerClient(base_url=host, tls=tls)
        finally:
            os.environ.update(saved)
        client.api.trust_env = False
        return client
    except docker.errors.DockerException as exc:
        raise VenvrootError(f"cannot use the Docker daemon at {target.host}: {exc}") from None


class _SSHRelay:
    """A unix socket whose every connection is a new ssh dial-stdio pipe to ``host``."""

    _running: ClassVar[dict[str, _SSHRelay]] = {}

    @classmethod
    def start(cls, host: str) -> _SSHRelay:
        if host not in cls._running:
            cls._running[host] = cls(host)
        return cls._running[host]

    def __init__(self, host: str) -> None:
        ssh.ssh_argv(host)  # a bad address is one line now, not in the relay's thread
        self.host = host
        self.dir = tempfile.mkdtemp(prefix="venvroot-ssh-")
        self.path = os.path.join(self.dir, "docker.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(16)
        self.children: list[int] = []
        threading.Thread(target=self._serve, daemon=True).start()
        atexit.register(self.close)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            try:
                pid, _ = ssh.spawn(self.host, conn.fileno(), capture=False)
                self.children.append(pid)
            except VenvrootError:
                pass  # the SDK sees the connection close; our own client gave the clear line first
            finally:
                conn.close()
            self._reap()

    def _reap(self) -> None:
        for pid in list(self.children):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    self.children.remove(pid)
            except ChildProcessError:
                self.children.remove(pid)

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        for pid in self.children:
            try:
                os.kill(pid, 15)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.children = []
        self._running.pop(self.host, None)
