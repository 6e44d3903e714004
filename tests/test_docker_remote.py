"""Docker envs on another engine: a second dockerd reached over tcp:// with TLS, over ssh:// (an
sshd on loopback whose sessions reach it) and through docker contexts naming either. Each env's
container must be on the engine it names and not on the local one; its shims must reach that
engine whatever DOCKER_HOST says when they run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import (
    busybox_image_fixture,  # noqa: F401 - the busybox_image fixture
    cfg_value,
    container_of,
    daemon_fixture,  # noqa: F401 - the daemon fixture
    debian_image_fixture,  # noqa: F401 - the debian_image fixture
    docker,
    project_dir,
    venvroot,
)
from remote_engines import Engine, engine_fixture, make_certs  # noqa: F401 - the engine fixture


def local_only(**extra: str) -> dict[str, str]:
    """The caller's environment with no DOCKER_* at all: the local engine, as far as it knows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def project(busybox_image: str) -> Iterator[Path]:
    yield from project_dir("venvroot-remote-")


def make_env(path: Path, image: str, environ: dict[str, str], *extra: str) -> Path:
    venvroot(str(path), "--backend", "docker", "--image", image, "--persistent", *extra, env=environ)
    for program in ("sh", "cat", "sleep"):
        venvroot("link", str(path), program, env=environ)
    return path


@pytest.fixture(scope="module")
def tls_env(project: Path, busybox_image: str, engine: Engine) -> Path:
    # --remote: 127.0.0.1 is this machine, where the env would get bind mounts and the agent; this
    # one is made as for a server elsewhere, so its shims speak the Engine API over TLS.
    return make_env(project / "tls", busybox_image, engine.tls_environ(), "--remote")


@pytest.fixture(scope="module")
def ssh_env(project: Path, busybox_image: str, engine: Engine) -> Path:
    return make_env(project / "ssh", busybox_image, local_only(DOCKER_HOST=engine.ssh))


def on_engine(engine: Engine, env: Path) -> str:
    """The env's container's state on the second engine; and it must not be on the local one."""
    assert docker("inspect", container_of(env), check=False).returncode != 0, "container on the local engine"
    found = engine.cli("inspect", "-f", "{{.State.Status}}", container_of(env), check=False)
    return found.stdout.strip() if found.returncode == 0 else "absent"


def shim(env_dir: Path, name: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 60)
    kwargs.setdefault("env", local_only(DOCKER_HOST="unix:///nonexistent/docker.sock"))
    kwargs.setdefault("cwd", env_dir.parent)  # the project directory: mapped on every engine
    return subprocess.run([str(env_dir / "bin" / name), *args], **kwargs)  # type: ignore[call-overload]


@pytest.fixture(params=["tls", "ssh"])
def remote_env(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"{request.param}_env")


def test_env_records_its_engine_and_lives_there(
    remote_env: Path, engine: Engine, tls_env: Path, ssh_env: Path
) -> None:
    assert on_engine(engine, remote_env) == "running"
    host = cfg_value(remote_env, "docker-host")
    assert host == (engine.tcp if remote_env == tls_env else engine.ssh)
    info = venvroot("info", str(remote_env), env=local_only()).stdout
    assert "engine" in info and host in info, info
    if remote_env == tls_env:
        assert cfg_value(remote_env, "docker-tls-verify") == "true"
        assert "TLS verified" in info


def test_shims_reach_the_envs_engine_whatever_docker_host_says(remote_env: Path, engine: Engine) -> None:
    for environ in (local_only(), local_only(DOCKER_HOST="unix:///nonexistent/docker.sock")):
        ran = shim(remote_env, "sh", "-c", "echo out; echo err >&2; exit 7", env=environ)
        assert (ran.returncode, ran.stdout, ran.stderr) == (7, b"out\n", b"err\n")


def test_stdin_round_trips_and_its_end_reaches_the_program(remote_env: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    ran = shim(remote_env, "cat", input=data)
    assert ran.returncode == 0 and ran.stdout == data  # cat ends: stdin's end (close_notify, EOF) came


def test_sigterm_to_a_shim_reaches_its_program(remote_env: Path) -> None:
    proc = subprocess.Popen(
        [
            str(remote_env / "bin" / "sh"),
            "-c",
            "trap 'echo got TERM; exit 42' TERM; echo up; sleep 30 & wait",
        ],
        stdout=subprocess.PIPE,
        env=local_only(),
        cwd=remote_env.parent,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert out == b"got TERM\n" and proc.returncode == 42


def test_kill_9_of_a_shim_ends_its_program_and_leaves_no_pipe(remote_env: Path, engine: Engine) -> None:
    marker = f"venvroot-kill9-{os.getpid()}-{remote_env.name}"
    proc = subprocess.Popen(
        [str(remote_env / "bin" / "sh"), "-c", f"echo up; exec sleep 300 {marker}"],
        stdout=subprocess.PIPE, env=local_only(), cwd=remote_env.parent,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        inside = engine.cli("top", container_of(remote_env), "-o", "pid,args").stdout
        pipes = subprocess.run(["pgrep", "-f", "docker system dial-stdio"], capture_output=True, text=True)
        ours = [p for p in pipes.stdout.split() if _started_for(p, engine)]
        if marker not in inside and not ours:
            break
        time.sleep(0.2)
    assert marker not in inside, inside
    assert not ours, "an ssh pipe outlived its shim"
    assert shim(remote_env, "sh", "-c", "echo again").stdout == b"again\n"  # and the next call works


def _started_for(pid: str, engine: Engine) -> bool:
    """Whether process ``pid`` is a client ssh to the test engine's sshd (not the sshd's own side)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return args[:1] == [b"ssh"] and engine.ssh_alias.encode() in args


def test_parallel_shims_and_a_removed_container(remote_env: Path, engine: Engine) -> None:
    """Four shims at once all run; after the container is removed on the engine, the next shim
    makes it again from its spec, and the files in the env's volumes are still there."""
    procs = [
        subprocess.Popen(
            [str(remote_env / "bin" / "sh"), "-c", f"echo {i} > par-{remote_env.name}-{i}; echo {i}"],
            stdout=subprocess.PIPE,
            env=local_only(),
            cwd=remote_env.parent,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert outs == [f"{i}\n".encode() for i in range(4)] and all(p.returncode == 0 for p in procs)
    engine.cli("rm", "-f", container_of(remote_env))
    ran = shim(remote_env, "sh", "-c", f"cat par-{remote_env.name}-3")
    assert (ran.returncode, ran.stdout) == (0, b"3\n"), ran.stderr
    assert on_engine(engine, remote_env) == "running"


def test_activation_sessions_reach_the_envs_engine(remote_env: Path) -> None:
    script = f". {remote_env}/bin/activate && echo through | cat && deactivate && echo out"
    ran = subprocess.run(["sh", "-c", script], capture_output=True, env=local_only(), cwd=remote_env.parent,
                         timeout=60)  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, b"through\nout\n"), ran.stderr


def test_docker_contexts_name_the_engine(
    project: Path, busybox_image: str, engine: Engine, tmp_path: Path
) -> None:
    config = tmp_path / "docker-config"
    environ = local_only(DOCKER_CONFIG=str(config))
    certs = engine.certs
    tls = f"host={engine.tcp},ca={certs}/ca.pem,cert={certs}/cert.pem,key={certs}/key.pem"
    docker("context", "create", "vr-tls", "--docker", tls, env=environ)
    docker("context", "create", "vr-ssh", "--docker", f"host={engine.ssh}", env=environ)
    docker("context", "use", "vr-ssh", env=environ)  # currentContext in config.json
    made = []
    for name, extra in (("ctx-tls", {"DOCKER_CONTEXT": "vr-tls"}), ("ctx-ssh", {})):
        env = project / name
        venvroot(str(env), "--backend", "docker", "--image", busybox_image, "-q", env={**environ, **extra})
        made.append(env)
        assert on_engine(engine, env) in ("running", "exited", "created")
        context = extra.get("DOCKER_CONTEXT", "vr-ssh")
        assert cfg_value(env, "docker-engine-source") == f"context {context}"
        # A loopback address is this machine (bind mounts); an ssh host by name is another one.
        assert cfg_value(env, "docker-remote") == ("false" if name == "ctx-tls" else "true")
        ran = venvroot("run", str(env), "--", "echo", "hello", env=local_only(), cwd=project)
        assert ran.stdout == "hello\n"
    assert cfg_value(made[0], "docker-host") == engine.tcp
    assert cfg_value(made[1], "docker-host") == engine.ssh
    for env in made:
        name = container_of(env)
        venvroot("destroy", str(env), env=local_only())
        assert engine.cli("inspect", name, check=False).returncode != 0
        assert not engine.cli("images", "-q", "--filter", f"label=io.venvroot.env={env}").stdout.strip()


# -- remote-safe mappings ------------------------------------------------------------------------


def mounts_on(engine: Engine, env: Path) -> list[tuple[str, str]]:
    found = engine.cli(
        "inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Destination}}\n{{end}}", container_of(env)
    )
    return sorted(tuple(line.split(" ", 1)) for line in found.stdout.splitlines() if line)  # type: ignore[misc]


def test_remote_envs_get_volumes_and_no_bind_mount(remote_env: Path, engine: Engine) -> None:
    assert cfg_value(remote_env, "docker-remote") == "true"
    found = mounts_on(engine, remote_env)
    assert {kind for kind, _ in found} == {"volume"}
    assert {str(remote_env.parent), str(remote_env)} <= {target for _, target in found}
    assert not (remote_env / ".venvroot" / "shim.sh").exists()  # no agent: its socket cannot cross machines
    assert (
        "mappings         volumes on the engine" in venvroot("info", str(remote_env), env=local_only()).stdout
    )


def test_another_engines_container_roots_are_no_host_mounts(tls_env: Path, engine: Engine) -> None:
    """A local env binds the host's mounts at /r; another engine's running containers' roots (its
    data root is not /var/lib/docker) come and go with them and must not be among them."""
    from venvroot.backends.docker import mounts

    assert on_engine(engine, tls_env) == "running"
    table = Path("/proc/self/mountinfo").read_text()
    assert f"{engine.base}/data/overlay2/" in table  # the case at hand: its container's root is mounted
    roots = (f"{engine.base}/data/overlay2/", f"{engine.base}/data/containers/")
    assert not [p for p in mounts.host_mounts() if p.startswith(roots)]


def test_local_overrides_an_ssh_host_by_name(project: Path, busybox_image: str, engine: Engine) -> None:
    path = project / "ssh-local"
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, "--local", "-q",
             env=local_only(DOCKER_HOST=engine.ssh))  # fmt: skip
    try:
        assert cfg_value(path, "docker-remote") == "false"
        assert ("bind", str(path)) in mounts_on(engine, path)
    finally:
        venvroot("destroy", str(path), env=local_only())


@pytest.mark.parametrize("how", ["tls", "ssh"])
def test_push_and_pull_copy_through_the_archive_api(
    project: Path, busybox_image: str, engine: Engine, how: str
) -> None:
    data = project.parent / f"data-{how}"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "in.bin").write_bytes(os.urandom(300_000))
    path = project / "pushpull"
    # TLS on loopback is remote by --remote; the ssh host, named by an alias, is remote by itself.
    tls = how == "tls"
    environ = engine.tls_environ() if tls else local_only(DOCKER_HOST=engine.ssh)
    venvroot(str(path), "--backend", "docker", "--image", busybox_image, *(["--remote"] if tls else []),
             "--link", "sh", "-q", "--directory", f"{data}:/data:rw", env=environ)  # fmt: skip
    (project / "made.txt").unlink(missing_ok=True)
    (project / "notes.txt").write_text("from here\n")
    try:
        assert {kind for kind, _ in mounts_on(engine, path)} == {"volume"}
        inside = "cat notes.txt 2>&1; ls /data; test -e pushpull/venvroot.cfg && echo env-dir-copied; true"
        before = shim(path, "sh", "-c", inside)
        assert b"from here" not in before.stdout and before.returncode == 0
        venvroot("push", str(path), env=local_only())
        after = shim(path, "sh", "-c", inside)
        assert after.stdout == b"from here\nsub\n", after
        changed = (
            "cmp /data/sub/in.bin /data/sub/in.bin && echo there > made.txt && echo d > /data/sub/out.txt"
        )
        assert shim(path, "sh", "-c", changed).returncode == 0
        assert not (project / "made.txt").exists()
        venvroot("pull", str(path), str(project / "made.txt"), env=local_only())
        assert (project / "made.txt").read_text() == "there\n"
        assert not (data / "sub" / "out.txt").exists()
        venvroot("pull", str(path), env=local_only())  # every mapping
        assert (data / "sub" / "out.txt").read_text() == "d\n"
        elsewhere = shim(path, "sh", "-c", "pwd", cwd="/")
        assert elsewhere.returncode == 1 and elsewhere.stdout == b""
        line = elsewhere.stderr.decode().strip()
        assert (
            line.startswith("venvroot: the current directory / is not mapped into")
            and "--directory /" in line
        )
        bad = venvroot("push", str(path), "/etc/hostname", env=local_only(), check=False)
        assert bad.returncode == 2 and "not in a mapping of the env" in bad.stderr
    finally:
        venvroot("destroy", str(path), env=local_only())
    label = f"label=io.venvroot.env={path}"
    assert not engine.cli("volume", "ls", "-q", "--filter", label).stdout.strip()
    assert not engine.cli("ps", "-aq", "--filter", label).stdout.strip()


def test_a_python_env_on_a_remote_engine(project: Path, debian_image: str, engine: Engine) -> None:
    """The env's Python is made on the engine, in the env's volume; its programs get shims here."""
    engine.cli_load(debian_image)
    path = project / "py"
    venvroot(
        str(path), "--backend", "docker", "--image", debian_image, "--remote", "-q", env=engine.tls_environ()
    )
    try:
        assert (path / "bin" / "python").is_file() and (path / "bin" / "pip").is_file()
        assert not (path / "pyvenv.cfg").exists()  # on the engine only
        ran = shim(path, "python", "-c", "import sys; print(sys.prefix)")
        assert (ran.returncode, ran.stdout.decode()) == (0, f"{path}\n"), ran.stderr
        assert "yes (in its volume on the engine)" in venvroot("info", str(path), env=local_only()).stdout
    finally:
        venvroot("destroy", str(path), env=local_only())


# -- failures: one line, exit 1, nothing made -----------------------------------------------------


def fails(project: Path, image: str, environ: dict[str, str], engine: Engine, name: str = "bad") -> str:
    path = project / name
    made = venvroot(str(path), "--backend", "docker", "--image", image, env=environ, check=False)
    lines = made.stderr.strip().splitlines()
    assert made.returncode != 0 and len(lines) == 1, made.stderr
    assert not path.exists()
    assert not engine.cli("ps", "-aq", "--filter", f"label=io.venvroot.env={path}").stdout.strip()
    return lines[0]


def test_unknown_context(project: Path, busybox_image: str, engine: Engine, tmp_path: Path) -> None:
    line = fails(
        project, busybox_image, local_only(DOCKER_CONFIG=str(tmp_path), DOCKER_CONTEXT="nope"), engine
    )
    assert "docker context 'nope' (from DOCKER_CONTEXT) does not exist" in line


def test_tls_certificate_of_another_ca(
    project: Path, busybox_image: str, engine: Engine, tmp_path: Path
) -> None:
    _server, client = make_certs(tmp_path, "other")
    line = fails(project, busybox_image, engine.tls_environ(DOCKER_CERT_PATH=str(client)), engine)
    assert f"the TLS certificate of the Docker daemon at {engine.tcp} does not verify" in line


def test_unreachable_hosts(project: Path, busybox_image: str, engine: Engine) -> None:
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    line = fails(project, busybox_image, engine.tls_environ(DOCKER_HOST=f"tcp://127.0.0.1:{port}"), engine)
    assert f"cannot reach the Docker daemon at tcp://127.0.0.1:{port}" in line
    line = fails(
        project, busybox_image, local_only(DOCKER_HOST=f"ssh://root@{engine.ssh_alias}:{port}"), engine
    )
    assert f"cannot reach ssh://root@{engine.ssh_alias}:{port} over ssh" in line


def test_ssh_authentication_failure(project: Path, busybox_image: str, engine: Engine) -> None:
    host = f"ssh://nobody@{engine.ssh_alias}:{engine.ssh_port}"
    line = fails(project, busybox_image, local_only(DOCKER_HOST=host), engine)
    assert f"ssh authentication to {host} failed (" in line and "Permission denied" in line


def test_engine_too_old_for_dial_stdio(project: Path, busybox_image: str, engine: Engine) -> None:
    host = f"ssh://root@{engine.ssh_alias}-old:{engine.ssh_port}"
    line = fails(project, busybox_image, local_only(DOCKER_HOST=host), engine)
    assert f"the docker CLI on {host} is too old for `docker system dial-stdio`" in line
