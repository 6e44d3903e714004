"""The docker backend's standard-library Engine API client: its JSON against the json module, its
HTTP against the real daemon, and the address taken from DOCKER_HOST."""

from __future__ import annotations

import hashlib
import json
import random
import socket
from pathlib import Path

import pytest
from docker_helpers import daemon_fixture  # noqa: F401 - the daemon fixture

from venvroot.backends.docker import engine, layout, ssh, transport
from venvroot.backends.docker.engine import Connection, DaemonUnreachableError, EngineError

SAMPLES = [
    {},
    [],
    "",
    {"Id": "abc", "Running": False, "ExitCode": 0, "Pid": 1234, "Nothing": None, "F": 1.5e3, "N": -7},
    {"nested": {"list": [1, [2, {"x": "y"}], True, False, None], "empty": {}, "s": 'a"b\\c/d'}},
    "tab\there\nnewline\r\x00\x01\x1f del\x7f é 漢字 😀 \u2028",
    ["spaces  ", " ", "quotes '\" ", "$HOME", "(", "-n", "\\n literal"],
]


@pytest.mark.parametrize("value", SAMPLES)
def test_json_round_trips_like_the_json_module(value: object) -> None:
    assert json.loads(engine.dumps(value)) == value
    assert engine.loads(json.dumps(value)) == value
    assert engine.loads(json.dumps(value, ensure_ascii=False, indent=2)) == value


def test_json_random_strings() -> None:
    rng = random.Random(5)
    for _ in range(300):
        ranges = [(0, 128), (128, 0xD800), (0xE000, 0x110000)]
        text = "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(0, 40)))
        assert json.loads(engine.dumps(text)) == text
        assert engine.loads(json.dumps(text)) == text


def test_json_rejects_garbage() -> None:
    for bad in ('{"a" 1}', "[1 2]", '"open', "nope", '{"a":1} x'):
        with pytest.raises((ValueError, IndexError, KeyError)):
            engine.loads(bad)


def test_requests_and_errors_against_the_daemon(daemon: None) -> None:
    conn = Connection()
    try:
        status, body = conn.request("GET", "/_ping")
        assert (status, body) == (200, b"OK")
        version = conn.call("GET", "/version")  # keep-alive: the same connection again
        assert isinstance(version, dict) and version["ApiVersion"]
        listed = conn.call("GET", "/containers/json?all=1")  # large answers come chunked
        assert isinstance(listed, list)
        with pytest.raises(EngineError) as caught:
            conn.call("GET", "/containers/venvroot-no-such-container/json")
        assert caught.value.status == 404 and "No such container" in str(caught.value)
    finally:
        conn.close()


def test_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert transport.from_environ().host == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.1.2.3:2375")
    assert not transport.from_environ().tls
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", "/certs")
    found = transport.from_environ()
    assert (found.host, found.tls_dir, found.verify) == ("tcp://10.1.2.3:2375", "/certs", True)
    argv = ssh.ssh_argv("ssh://me@box:2222")
    assert argv[0] == "ssh" and "-T" in argv and argv[argv.index("-l") + 1] == "me"
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-4:] == ["box", "docker", "system", "dial-stdio"]
    assert "-l" not in ssh.ssh_argv("ssh://box") and "-p" not in ssh.ssh_argv("ssh://box")
    with pytest.raises(DaemonUnreachableError, match="is not supported"):
        transport.connect(transport.Target("npipe:////./pipe/docker_engine"))
    with pytest.raises(DaemonUnreachableError, match="bad port"):
        ssh.ssh_argv("ssh://me@box:22x")


def test_tcp_without_a_daemon_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a free port: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    with pytest.raises(
        DaemonUnreachableError, match=f"cannot reach the Docker daemon at tcp://127.0.0.1:{port}"
    ):
        Connection()


def test_names_are_valid_for_docker() -> None:
    for env in ("/home/u/My Project/.venv", "/tmp/x_-_y/.venv", "/a/b/ünï côdé/env", "/tmp/-/_"):
        name = layout.container_name(env)
        assert name.startswith("venvroot-") and all(c.isalnum() or c in "_.-" for c in name)
        repo = layout.image_repository(env)
        assert repo == repo.lower() and "--" not in repo and "-_" not in repo
        assert layout.container_name(env) != layout.container_name(env + "2")


def test_the_engine_is_found_as_the_docker_cli_finds_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DOCKER_HOST over DOCKER_CONTEXT over currentContext; a context's meta and TLS files found by
    the sha256 of its name; an unknown context is one line."""
    from venvroot.backends.docker import endpoint
    from venvroot.errors import UsageError

    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert endpoint.resolve().host == "unix:///var/run/docker.sock"
    for name, host in (("build", "tcp://build:2376"), ("box", "ssh://me@box")):
        digest = hashlib.sha256(name.encode()).hexdigest()
        meta = tmp_path / "contexts" / "meta" / digest
        meta.mkdir(parents=True)
        (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))
    (tmp_path / "contexts" / "tls" / hashlib.sha256(b"build").hexdigest() / "docker").mkdir(parents=True)
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "box"}))
    found = endpoint.resolve()
    assert (found.host, found.source, found.target.tls) == ("ssh://me@box", "context box", False)
    assert not found.is_local()
    monkeypatch.setenv("DOCKER_CONTEXT", "build")
    found = endpoint.resolve()
    assert (found.host, found.source, found.target.verify) == ("tcp://build:2376", "context build", True)
    assert found.target.tls_dir.endswith("/docker")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    found = endpoint.resolve()
    assert (found.host, found.source) == ("tcp://127.0.0.1:2375", "DOCKER_HOST") and found.is_local()
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    with pytest.raises(UsageError, match="docker context 'nope' \\(from DOCKER_CONTEXT\\) does not exist"):
        endpoint.resolve()
    for host, local in (("unix:///x.sock", True), ("ssh://me@localhost:22", True), ("tcp://[::1]:2376", True),
                        ("tcp://10.0.0.5:2376", False), ("ssh://build", False)):  # fmt: skip
        assert endpoint.Endpoint(transport.Target(host), "t").is_local() is local, host
