"""An ssh:// engine, reached as the docker CLI reaches it: ``ssh ... docker system dial-stdio``.

Hot path, standard library only (imported only for an ssh:// engine). The child ``ssh`` gets one
end of a socket pair as its stdin and stdout and this process keeps the other, so the Engine API
and an exec's half-closed stream go through it like through a socket. The child runs in a process
group of its own (a Ctrl-C on the terminal is for the program, which gets it through the Engine
API, not for the pipe), with ``BatchMode`` (a prompt for a password would hang a shim; use keys or
an ssh agent). When the pipe ends before the engine answered, ssh's own words say why.
"""

from __future__ import annotations

import _socket
import os
import time

from .address import DaemonUnreachableError, split_hostport

SSH = "ssh"


def ssh_argv(host: str) -> list[str]:
    """The ssh command line for ``ssh://[USER@]HOST[:PORT]``, or one line naming the problem."""
    rest = host[len("ssh://") :].rstrip("/")
    user, _, hostport = rest.rpartition("@")
    name, port = split_hostport(hostport, 0, "ssh", f"DOCKER_HOST={host}")
    if not name or "/" in hostport:
        raise DaemonUnreachableError(f"DOCKER_HOST={host}: expected ssh://[USER@]HOST[:PORT]")
    argv = [SSH, "-o", "ConnectTimeout=30", "-o", "BatchMode=yes", "-T"]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", str(port)]
    return [*argv, "--", name, "docker", "system", "dial-stdio"]


def spawn(host: str, fd: int, capture: bool = True) -> tuple[int, int]:
    """Start ssh with ``fd`` as its stdin and stdout; return (pid, read end of its stderr, or -1
    when not ``capture``d: then it goes to /dev/null)."""
    argv = ssh_argv(host)
    err_r, err_w = os.pipe() if capture else (-1, os.open(os.devnull, os.O_WRONLY))
    try:
        pid = os.posix_spawnp(
            SSH,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, fd, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setpgroup=0,
        )
    except OSError as exc:
        if err_r >= 0:
            os.close(err_r)
        raise DaemonUnreachableError(
            f"cannot run ssh for DOCKER_HOST={host} ({exc.strerror}); install an OpenSSH client"
        ) from None
    finally:
        os.close(err_w)
    return pid, err_r


class SSHStream:
    def __init__(self, host: str) -> None:
        self.host = host
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            self.pid, self._err = spawn(host, theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.send = ours.send
        self.sendall = ours.sendall
        self.recv = ours.recv
        self.shutdown = ours.shutdown
        self.fileno = ours.fileno
        self.setblocking = ours.setblocking

    def close(self) -> None:
        self.sock.close()
        if self._err >= 0:
            os.close(self._err)
            self._err = -1
        self._reap(2.0)

    def _reap(self, timeout: float) -> int | None:
        if not self.pid:
            return None
        pid_ = self.pid
        self.pid = 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status = os.waitpid(pid_, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid:
                return status
            if time.monotonic() > deadline:
                os.kill(pid_, 15)
                os.waitpid(pid_, 0)
                return None
            time.sleep(0.01)

    def hangup(self) -> str:
        """Why the pipe ended, in one line: from ssh's stderr once it has exited."""
        self._reap(5.0)
        try:
            text = os.read(self._err, 65536).decode("utf-8", "replace")
        except OSError:
            text = ""
        return explain(self.host, text)


def explain(host: str, stderr: str) -> str:
    """ssh's complaint about ``host`` as one line: what failed and what to do."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Warning: Permanently added", "Pseudo-terminal"))]
    last = lines[-1] if lines else "no message"
    text = " ".join(lines).lower()
    if "permission denied" in text or "too many authentication failures" in text:
        return (
            f"ssh authentication to {host} failed ({last}); load your key into an ssh agent or name it in "
            "~/.ssh/config, and check with `ssh HOST docker version`"
        )
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return (
            f"ssh to {host} refused the server's host key ({last}); check it and add it to ~/.ssh/known_hosts"
        )
    if any(w in text for w in ("dial-stdio", "not a docker command", "unknown command", "unknown flag")):
        return (
            f"the docker CLI on {host} is too old for `docker system dial-stdio` ({last}); ssh:// needs "
            "Docker 18.09 or newer there: upgrade it, or reach the engine over tcp:// with TLS"
        )
    if "docker: command not found" in text or "docker: not found" in text:
        return f"there is no docker CLI on {host} ({last}); install Docker there, or reach the engine over tcp://"
    if any(
        w in text for w in ("could not resolve", "connection refused", "no route", "timed out", "unreachable")
    ):
        return (
            f"cannot reach {host} over ssh ({last}); check the host name, the port and that sshd runs there"
        )
    return f"ssh to {host} ended before the Docker Engine answered ({last})"
