"""A second Docker Engine for the remote-engine tests, shared by the whole session: its own data root,
exec root, pid file and bridge, listening on a loopback TCP port with TLS (certificates made here with
openssl) and on a unix socket; and an sshd on another loopback port whose sessions reach that engine,
so that ``ssh://`` goes to it too. Everything is stopped and removed at the end: no daemon, bridge,
container, volume or ssh configuration is left behind.

The second engine gets a bridge of its own: started with ``--bridge=none`` a dockerd deletes the
first engine's ``docker0`` at start, after which no container of the first engine starts."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import missing, need
from docker_helpers import docker

# What a docker CLI without dial-stdio (before 18.09) answers `docker system dial-stdio` with.
OLD_DOCKER = "docker: 'system dial-stdio' is not a docker command.\nSee 'docker --help'"


class Engine:
    """The second engine: ``tcp`` (TLS, verified), ``unix``, ``certs`` (ca.pem, cert.pem, key.pem)."""

    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.tcp = f"tcp://127.0.0.1:{port}"
        self.unix = f"unix://{base}/docker.sock"
        self.certs = base / "client"
        self.ssh = ""  # ssh://root@ALIAS:PORT once the sshd runs
        self.ssh_alias = ""
        self.ssh_port = 0

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The docker CLI against this engine."""
        return docker("-H", self.unix, *args, check=check)

    def cli_load(self, image: str) -> None:
        """Copy ``image`` from the local engine into this one (there is no registry)."""
        if self.cli("image", "inspect", image, check=False).returncode == 0:
            return
        saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", self.unix, "load"], stdin=saved.stdout, capture_output=True, check=True
        )
        assert saved.wait() == 0

    def tls_environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({"DOCKER_HOST": self.tcp, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.certs)})
        env.update(extra)
        return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(*argv: str, **kwargs: object) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60, **kwargs)  # type: ignore[call-overload]


def make_certs(base: Path, name: str = "ca") -> tuple[Path, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate: (server dir, client dir)."""
    need("openssl")
    server, client = base / f"{name}-server", base / f"{name}-client"
    server.mkdir()
    client.mkdir()
    ca_key, ca = base / f"{name}-key.pem", base / f"{name}.pem"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN=venvroot test {name}", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    for where, cn, ext in (
        (server, "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        (client, "client", "extendedKeyUsage=clientAuth"),
    ):
        (where / "ext.cnf").write_text(ext + "\n")
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", str(where / "key.pem"), "-out", str(where / "req.csr"))  # fmt: skip
        _run("openssl", "x509", "-req", "-in", str(where / "req.csr"), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-extfile", str(where / "ext.cnf"),
             "-out", str(where / "cert.pem"))  # fmt: skip
        shutil.copy(ca, where / "ca.pem")
        (where / "key.pem").chmod(0o600)
    return server, client


def _wait(check, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _start_dockerd(base: Path, engine: Engine, bridge: str, server: Path) -> subprocess.Popen:
    log = base / "dockerd.log"
    octet = secrets.randbelow(200) + 20
    _run("ip", "link", "add", bridge, "type", "bridge")
    _run("ip", "addr", "add", f"10.231.{octet}.1/24", "dev", bridge)
    _run("ip", "link", "set", bridge, "up")
    argv = [
        need("dockerd"), "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
        "--pidfile", str(base / "docker.pid"), "-H", engine.unix, "-H", engine.tcp,
        "--tlsverify", "--tlscacert", str(server / "ca.pem"), "--tlscert", str(server / "cert.pem"),
        "--tlskey", str(server / "key.pem"), f"--bridge={bridge}", "--iptables=false", "--ip6tables=false",
        "--ip-masq=false", "--userland-proxy=false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    _wait(lambda: engine.cli("version", check=False).returncode == 0 or proc.poll() is not None,
          "the second dockerd", log)  # fmt: skip
    if proc.poll() is not None:
        raise AssertionError(f"the second dockerd exited: {log.read_text()[-2000:]}")
    return proc


def _start_sshd(base: Path, engine: Engine) -> subprocess.Popen:
    """sshd on a loopback port for root with a key made here; its sessions' DOCKER_HOST is the
    second engine. A second key stands for a host whose docker CLI is too old for dial-stdio."""
    sshd = need("sshd") if shutil.which("sshd") else "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        missing("openssh-server (sshd) is not installed")
    ssh_dir = base / "ssh"
    ssh_dir.mkdir()
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    for key in ("host", "user", "old"):
        _run(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"venvroot-test-{key}",
            "-f",
            str(ssh_dir / key),
        )
    user_pub = (ssh_dir / "user.pub").read_text().strip()
    old_pub = (ssh_dir / "old.pub").read_text().strip()
    old = ssh_dir / "old-docker"
    old.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{OLD_DOCKER}\nEOF\nexit 1\n")
    old.chmod(0o755)
    (ssh_dir / "authorized_keys").write_text(f'{user_pub}\ncommand="{old}" {old_pub}\n')
    port = _free_port()
    config = ssh_dir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {ssh_dir / 'host'}\nPidFile {ssh_dir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"AllowUsers root\nSetEnv DOCKER_HOST={engine.unix}\n"
    )
    alias = f"venvroot-test-{secrets.token_hex(3)}"
    known = ssh_dir / "known_hosts"
    host_pub = (ssh_dir / "host.pub").read_text()
    known.write_text(f"{alias} {host_pub}[{alias}]:{port} {host_pub}")
    engine.ssh_alias, engine.ssh_port = alias, port  # (the fixture's teardown removes the file)
    client_conf = Path(f"/etc/ssh/ssh_config.d/{alias}.conf")
    client_conf.write_text(
        f"Host {alias} {alias}-old\n  HostName 127.0.0.1\n  UserKnownHostsFile {known}\n"
        f"  HostKeyAlias {alias}\n  IdentitiesOnly yes\nHost {alias}\n  IdentityFile {ssh_dir / 'user'}\n"
        f"Host {alias}-old\n  IdentityFile {ssh_dir / 'old'}\n"
    )
    log = base / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)], stdout=out, stderr=out, start_new_session=True
        )

    def answers() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    _wait(answers, "sshd", log, 20)
    engine.ssh = f"ssh://root@{alias}:{port}"
    return proc


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def second_engine(image: str, with_ssh: bool = True) -> Iterator[Engine]:
    """The second engine with ``image`` loaded (copied from the first), and the sshd in front of it;
    everything stopped and removed when the block ends."""
    base = Path(tempfile.mkdtemp(prefix="vr-engine-", dir="/tmp"))
    base.chmod(0o755)
    engine = Engine(base, _free_port())
    bridge = f"vrbr{secrets.token_hex(3)}"
    dockerd = sshd = None
    try:
        server, client = make_certs(base)
        shutil.copytree(client, engine.certs)
        dockerd = _start_dockerd(base, engine, bridge, server)
        saved = subprocess.run(["docker", "save", image], capture_output=True, check=True, timeout=120)
        subprocess.run(
            ["docker", "-H", engine.unix, "load"], input=saved.stdout, capture_output=True, check=True
        )
        if with_ssh:
            sshd = _start_sshd(base, engine)
        yield engine
    finally:
        if dockerd is not None and dockerd.poll() is None:
            ids = engine.cli("ps", "-aq", check=False).stdout.split()
            if ids:
                engine.cli("rm", "-f", *ids, check=False)
            volumes = engine.cli("volume", "ls", "-q", check=False).stdout.split()
            if volumes:
                engine.cli("volume", "rm", "-f", *volumes, check=False)
        _stop(sshd)
        _stop(dockerd)
        if engine.ssh_alias:
            Path(f"/etc/ssh/ssh_config.d/{engine.ssh_alias}.conf").unlink(missing_ok=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        for tree in ("data", "exec"):
            subprocess.run(["umount", "-R", str(base / tree)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", name="engine")
def engine_fixture(daemon: None, busybox_image: str) -> Iterator[Engine]:
    """The second engine (with the busybox image loaded) and the sshd in front of it, for one module:
    its mounts under /tmp must be gone before the host-view tests of other modules look at /tmp."""
    if os.getuid() != 0:
        missing("a second dockerd needs root")
    need("ip")
    need("ssh")
    with second_engine(busybox_image) as engine:
        yield engine
