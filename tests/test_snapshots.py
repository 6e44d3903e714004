"""Snapshots, automatic snapshots and freeze: one scenario, run on every backend.

Packages are real wheels built here and installed with pip through the env's shims; sessions are
real bash activations; the docker backend runs on a real Engine with the Debian image the docker
tests build, the ns backend on real namespaces over the host. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import as_user, missing, need
from docker_helpers import (
    daemon_fixture,  # noqa: F401 - the daemon fixture
    debian_image_fixture,  # noqa: F401 - the debian_image fixture
    docker,
    leftovers,
)
from wheels import build_wheel

BACKENDS = ["docker", "ns", "ns-rootless"]
PIP = ("--no-index", "--disable-pip-version-check", "--no-cache-dir", "-q")


# -- environments ------------------------------------------------------------------------------------


class Env:
    """An environment under test and the ways to poke at it, as root or as the unprivileged user."""

    def __init__(self, kind: str, path: Path, user: pwd.struct_passwd | None = None) -> None:
        self.kind = kind
        self.backend = kind.partition("-")[0]
        self.path = path
        self.wheels = path.parent
        self.user = user
        self.environ = dict(os.environ)
        if user is not None:
            self.environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
            self.environ.pop("XDG_RUNTIME_DIR", None)

    def run(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 300)
        kwargs.setdefault("cwd", "/")
        argv = as_user(self.user, argv) if self.user is not None else argv
        return subprocess.run(argv, env=self.environ, **kwargs)  # type: ignore[call-overload]

    def vr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = self.run([sys.executable, "-m", "venvroot", *args])
        if check and done.returncode != 0:
            raise AssertionError(f"venvroot {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def shim(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = self.run([str(self.path / "bin" / program), *args])
        if check and done.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def session(self, script: str) -> subprocess.CompletedProcess:
        """``script`` in a real bash with the env activated, then deactivated."""
        activate = shlex.quote(str(self.path / "bin" / "activate"))
        code = f"source {activate} || exit 99\n{script}\nstatus=$?\ndeactivate\nexit $status\n"
        return self.run(["bash", "--norc", "--noprofile", "-c", code])

    def pip_install(self, name: str) -> subprocess.CompletedProcess:
        return self.shim("pip", "install", *PIP, str(wheel_of(self.wheels, name)))

    def has_package(self, name: str) -> bool:
        return self.shim("python", "-c", f"import {name}", check=False).returncode == 0

    def root_has(self, path: str) -> bool:
        code = f"import os, sys; sys.exit(0 if os.path.exists({path!r}) else 1)"
        return self.shim("python", "-c", code, check=False).returncode == 0

    def write_root(self, *paths: str, data: str = "x") -> None:
        """Write files in the env's root (one program run)."""
        code = (
            "import os, sys\n"
            "for p in sys.argv[2:]:\n"
            "    os.makedirs(os.path.dirname(p), exist_ok=True)\n"
            "    open(p, 'w').write(sys.argv[1])\n"
        )
        self.shim("python", "-c", code, data, *paths)

    def listdir(self, path: str) -> list[str] | bool:
        code = (
            "import json, os, sys; p = sys.argv[1]\n"
            "print(json.dumps(os.path.isdir(p) and sorted(os.listdir(p))))"
        )
        return json.loads(self.shim("python", "-c", code, path).stdout)

    def lower_dir(self) -> str:
        """A directory of the root's pristine lower layer that the env's user may empty and remake
        (rootless, the host's own directories belong to nobody inside: one in the user's home)."""
        if self.user is None:
            return "/usr/share/doc/dpkg"
        return f"{self.user.pw_dir}/.venvroot-snapshot-probe"

    def snapshots(self) -> list[dict]:
        """The snapshots as ``snapshot list`` shows them, each with its meta.json."""
        store = self.path / ".venvroot" / "snapshots"
        listed = self.vr("snapshot", "list", str(self.path)).stdout
        found = []
        for line in listed.splitlines()[1:]:
            cells = line.lstrip("* ").split()
            if cells and (store / cells[0] / "meta.json").is_file():
                meta = json.loads((store / cells[0] / "meta.json").read_text())
                found.append(meta | {"current": line.startswith("*"), "line": line})
        return found

    def names(self) -> list[str]:
        return [s["name"] for s in self.snapshots()]

    def info(self) -> dict[str, str]:
        rows = (line.split(None, 1) for line in self.vr("info", str(self.path)).stdout.splitlines())
        return {row[0]: row[1].strip() for row in rows if len(row) == 2}


def wheel_of(dest: Path, name: str) -> Path:
    """A wheel ``name`` with a console script ``name`` printing "NAME runs" (built once per dir)."""
    wheel = dest / f"{name}-1.0-py3-none-any.whl"
    return wheel if wheel.exists() else build_wheel(dest, name, name, f"print('{name} runs')")


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def create_env(kind: str, path: Path, request: pytest.FixtureRequest) -> Env:
    """``kind``: docker, ns (as root) or ns-rootless (as the unprivileged user)."""
    need("bash")
    user = request.getfixturevalue("unprivileged_user") if kind == "ns-rootless" else None
    if user is not None:
        for directory in (path.parent, path.parent.parent):
            os.chown(directory, user.pw_uid, user.pw_gid)
    env = Env(kind, path, user)
    if kind == "docker":
        env.vr(str(path), "--backend", "docker", "--image", request.getfixturevalue("debian_image"))
    else:
        env.vr(str(path))
    if not (path / "bin" / "pip").is_file():
        missing(f"the {kind} env at {path} has no pip")
    return env


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    base = Path(tempfile.mkdtemp(prefix=f"venvroot-snap-{request.param}-"))
    base.chmod(0o755)
    (base / "proj").mkdir()
    try:
        made = create_env(request.param, base / "proj" / ".venv", request)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    probe = Path(made.lower_dir())
    if made.user is not None:  # a directory of the host, in the user's home, for the env's overlay
        made.run(["mkdir", "-p", str(probe)], check=True)
        made.run(["touch", str(probe / "orig")], check=True)
    yield made
    if (made.path / "venvroot.cfg").is_file():
        made.vr("destroy", str(made.path))  # a failing destroy (a leaked image...) is an error here
    if made.user is not None:
        shutil.rmtree(probe, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)


# -- the scenario ---------------------------------------------------------------------------------------


def test_restore_brings_back_exactly_the_snapshot(env: Env) -> None:
    env.pip_install("vrfirst")
    env.write_root("/opt/vr/first")
    # A file of the lower layer deleted (an overlay whiteout), a directory of it remade (opaque).
    lower = env.lower_dir()
    original = env.listdir(lower)
    assert original and env.root_has("/etc/debian_version")
    code = "import os, shutil, sys; os.remove(sys.argv[1]); shutil.rmtree(sys.argv[2]); os.mkdir(sys.argv[2])"
    env.shim("python", "-c", code, "/etc/debian_version", lower)
    env.write_root(f"{lower}/mine")
    made = env.vr("snapshot", "create", str(env.path), "one")
    assert "snapshot one" in made.stdout
    # Later changes, partly in an activated session.
    done = env.session(f"pip install {' '.join(PIP)} {wheel_of(env.wheels, 'vrsecond')} && vrsecond")
    assert done.returncode == 0 and "vrsecond runs" in done.stdout, done.stderr
    env.write_root("/opt/vr/second", "/etc/debian_version", f"{lower}/later")
    assert (env.path / "bin" / "vrsecond").is_file()

    restored = env.vr("snapshot", "restore", str(env.path), "one")
    assert "restored snapshot one" in restored.stdout
    assert env.has_package("vrfirst") and not env.has_package("vrsecond")
    assert env.root_has("/opt/vr/first") and not env.root_has("/opt/vr/second")
    assert not env.root_has("/etc/debian_version"), "the deleted file is back: a whiteout was lost"
    assert env.listdir(lower) == ["mine"], "the lower directory shows through: opaqueness was lost"
    assert not (env.path / "bin" / "vrsecond").exists(), "the shim of a package the restore removed stays"
    assert env.shim("vrfirst").stdout == "vrfirst runs\n"
    # ... and across activations.
    done = env.session("vrfirst && python -c 'import vrsecond'")
    assert done.returncode == 1 and "vrfirst runs" in done.stdout and "No module named" in done.stderr
    assert [(s["name"], s["current"]) for s in env.snapshots()] == [("one", True)]

    # By id too, after a later snapshot.
    env.pip_install("vrthird")
    env.vr("snapshot", "create", str(env.path))
    assert env.names() == ["one", "snap-2"]
    first_id = env.snapshots()[0]["id"]
    env.vr("snapshot", "restore", str(env.path), first_id)
    assert not env.has_package("vrthird") and env.has_package("vrfirst")
    env.vr("snapshot", "restore", str(env.path), "snap-2")
    assert env.has_package("vrthird")

    # reset: the root as right after creation; the Python packages stay.
    env.vr("reset", str(env.path))
    assert not env.root_has("/opt/vr/first") and env.has_package("vrthird")
    assert env.root_has("/etc/debian_version") and env.listdir(lower) == original
    # Back to "one" from a clean writable layer: the whiteout and the opaque mark come from the copy.
    env.vr("snapshot", "restore", str(env.path), "one")
    assert not env.root_has("/etc/debian_version"), "the deleted file is back: a whiteout was lost"
    assert env.listdir(lower) == ["mine"], "the lower directory shows through: opaqueness was lost"
    assert env.has_package("vrfirst") and not env.has_package("vrthird")

    # Errors: one line, nothing changed.
    before = env.snapshots()
    bad = env.vr("snapshot", "restore", str(env.path), "nope", check=False)
    assert bad.returncode == 2 and "no snapshot named 'nope'" in one_line(bad)
    bad = env.vr("snapshot", "create", str(env.path), "one", check=False)
    assert bad.returncode == 2 and "a snapshot named 'one' exists" in one_line(bad)
    bad = env.vr("snapshot", "delete", str(env.path), "nope", check=False)
    assert bad.returncode == 2 and "no snapshot named 'nope'" in one_line(bad)
    assert env.snapshots() == before

    deleted = env.vr("snapshot", "delete", str(env.path), "one")
    assert "deleted snapshot one" in deleted.stdout and env.names() == ["snap-2"]


def test_auto_snapshot_before_pip_install(env: Env) -> None:
    env.pip_install("vrbase")
    configured = env.vr(
        "snapshot", "configure", str(env.path), "pip", "--pattern", "install", "--name", "pip-{id}"
    )
    assert "pip" in configured.stdout
    assert "auto-snapshot.pip = install" in (env.path / "venvroot.cfg").read_text()
    env.shim("pip", "list")  # does not match: no snapshot
    assert env.snapshots() == []

    installed = env.pip_install("vrbad")
    assert "snapshot pip-" in installed.stderr
    [auto] = env.snapshots()
    assert auto["name"] == f"pip-{auto['id']}" and auto["program"] == "pip" and auto["current"]
    assert env.has_package("vrbad")

    env.vr("snapshot", "restore", str(env.path), auto["name"])
    assert not env.has_package("vrbad") and env.has_package("vrbase")
    assert not (env.path / "bin" / "vrbad").exists()

    # `venvroot run` follows the same rules as the shims.
    env.vr("run", str(env.path), "--", "pip", "install", "--help")
    assert len(env.snapshots()) == 2

    env.vr("snapshot", "configure", str(env.path), "pip", "--off")
    assert "auto-snapshot" not in (env.path / "venvroot.cfg").read_text()
    env.pip_install("vrlater")
    assert len(env.snapshots()) == 2
    bad = env.vr("snapshot", "configure", str(env.path), "pip", "--off", check=False)
    assert bad.returncode == 2 and "no automatic snapshot is configured for pip" in one_line(bad)
    bad = env.vr("snapshot", "configure", str(env.path), "pip", "--pattern", "(", check=False)
    assert bad.returncode == 2 and "not a valid regular expression" in one_line(bad)
    bad = env.vr(
        "snapshot", "configure", str(env.path), "pip", "--pattern", "x", "--name", "{nope}", check=False
    )
    assert bad.returncode == 2 and "unknown placeholder {nope}" in one_line(bad)


def test_freeze_keeps_changes_for_one_session_until_unfreeze(env: Env) -> None:
    env.pip_install("vrkept")
    env.write_root("/opt/vr/kept")
    frozen = env.vr("freeze", str(env.path))
    assert "froze" in frozen.stdout
    assert env.info()["frozen"].startswith("yes (base: snapshot frozen-")

    script = f"""
        python -c "open('/opt/vr/session', 'w')" &&
        pip install {" ".join(PIP)} {wheel_of(env.wheels, "vrsession")} &&
        vrsession && python -c "import os; assert os.path.exists('/opt/vr/session')"
    """
    done = env.session(script)
    assert done.returncode == 0 and "vrsession runs" in done.stdout, done.stderr
    check = """python -c "
import importlib.util as u, os
print(os.path.exists('/opt/vr/kept'), os.path.exists('/opt/vr/session'),
      u.find_spec('vrkept') is not None, u.find_spec('vrsession') is not None)"
    """
    done = env.session(check)
    assert done.stdout.split() == ["True", "False", "True", "False"], done.stderr
    assert not (env.path / "bin" / "vrsession").exists()

    # reset goes back to the frozen state, Python packages included.
    env.write_root("/opt/vr/outside")
    env.pip_install("vroutside")
    env.vr("reset", str(env.path))
    assert not env.root_has("/opt/vr/outside") and env.root_has("/opt/vr/kept")
    assert not env.has_package("vroutside") and env.has_package("vrkept")

    # While frozen: no new snapshots, no restore, the base cannot go.
    base = env.snapshots()[0]
    for args, words in (
        (("snapshot", "create", str(env.path)), "is frozen"),
        (("snapshot", "restore", str(env.path), base["name"]), "is frozen"),
        (("snapshot", "delete", str(env.path), base["name"]), "is the frozen base"),
        (("freeze", str(env.path)), "is frozen"),
    ):
        bad = env.vr(*args, check=False)
        assert bad.returncode == 1 and words in one_line(bad), args
    assert env.snapshots() == [base]

    env.vr("unfreeze", str(env.path))
    assert env.info()["frozen"] == "no"
    done = env.session("python -c \"open('/opt/vr/lasting', 'w')\"")
    assert done.returncode == 0, done.stderr
    assert env.session("python -c \"import os; print(os.path.exists('/opt/vr/lasting'))\"").stdout == "True\n"
    env.vr("snapshot", "create", str(env.path), "after")
    env.vr("snapshot", "delete", str(env.path), base["name"])
    assert env.names() == ["after"]


def test_destroy_leaves_no_snapshot_image_or_file(env: Env) -> None:
    env.write_root("/opt/vr/a")
    env.vr("snapshot", "create", str(env.path))
    env.pip_install("vrgone")
    env.vr("snapshot", "create", str(env.path))
    env.vr("snapshot", "restore", str(env.path), "snap-1")
    env.write_root("/opt/vr/b")
    env.vr("snapshot", "create", str(env.path))
    env.vr("freeze", str(env.path))
    assert len(env.snapshots()) == 4
    images = {s["facts"]["docker-image"] for s in env.snapshots()} if env.backend == "docker" else set()
    holder = env.path / ".venvroot" / "ns" / "holder"
    env.shim("python", "-c", "pass")  # the env running when it is destroyed
    pid = int(holder.read_text().split()[0]) if env.backend == "ns" else 0
    env.vr("destroy", str(env.path))
    assert not env.path.exists()
    if env.backend == "ns":
        assert not Path(f"/proc/{pid}").exists(), "the env's namespaces still run"
    if env.backend == "docker":
        assert leftovers(env.path) == ("", "")
        assert images
        for image in images:
            assert docker("image", "inspect", image, check=False).returncode != 0, f"{image} stays"


def test_ten_snapshots_share_what_did_not_change(env: Env) -> None:
    env.pip_install("vrspace")
    for i in range(10):
        env.write_root(*(f"/opt/vr/step{i}/file{j}" for j in range(3)), data=os.urandom(32 * 1024).hex())
        env.vr("snapshot", "create", str(env.path))
    store = env.path / ".venvroot" / "snapshots"
    snaps = env.snapshots()
    assert len(snaps) == 10
    # What ten full copies would take: each snapshot's files counted on their own, plus its root.
    full = 0
    for snap in snaps:
        full += _du(store / snap["id"], apparent=True)
        full += _root_full_size(env, snap)
    files = _du(store)
    layers, below = _layers_on_disk(env, snaps)
    actual = files + layers + below
    mib = 2**20
    layers_text = (
        f", their own image layers {layers / mib:.1f} MiB, the image's layers below them (there anyway) "
        f"{below / mib:.1f} MiB"
        if env.backend == "docker"
        else ""
    )
    print(
        f"\n{env.kind}: ten snapshots take {actual / mib:.1f} MiB on disk (their files {files / mib:.1f} MiB"
        f"{layers_text}); ten full copies would take {full / mib:.1f} MiB: {full / actual:.1f}x more"
    )
    assert actual * 3 < full
    listed = env.vr("snapshot", "list", str(env.path)).stdout
    assert "total" in listed.splitlines()[-1]


def _du(*paths: Path, apparent: bool = False) -> int:
    """Bytes under ``paths`` as du counts them (a hard-linked file once)."""
    du = ["du", "-scb"] if apparent else ["du", "-sc", "--block-size=1"]
    out = subprocess.run([*du, *map(str, paths)], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[-1].split()[0])


def _root_full_size(env: Env, snap: dict) -> int:
    if env.backend == "docker":  # the container's whole file system
        return int(docker("image", "inspect", "-f", "{{.Size}}", snap["facts"]["docker-image"]).stdout)
    return 0  # the ns backend's root is in the snapshot's directory


def _layers_on_disk(env: Env, snaps: list[dict]) -> tuple[int, int]:
    """Bytes of the image layers the snapshots made, and of the layers below them, each once."""
    if env.backend != "docker":
        return 0, 0
    own, lower = set(), set()
    for snap in snaps:
        data = docker("image", "inspect", "-f", "{{json .GraphDriver.Data}}", snap["facts"]["docker-image"])
        found = json.loads(data.stdout)
        own.add(found["UpperDir"])
        lower.update(d for d in (found.get("LowerDir") or "").split(":") if d)
    lower -= own
    return _du(*map(Path, own)), _du(*map(Path, lower))


# -- a full disk --------------------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 96 MiB file system of its own, mounted for the test (root only)."""
    if os.geteuid() != 0:
        missing("mounting a small file system needs root")
    base = Path(tempfile.mkdtemp(prefix="venvroot-snap-full-"))
    base.chmod(0o755)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs", str(base)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        missing(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield base
    finally:
        for env_dir in base.glob("*/.venv"):
            subprocess.run([sys.executable, "-m", "venvroot", "destroy", str(env_dir)], capture_output=True)
        subprocess.run(["umount", "-l", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_snapshot_on_a_full_disk_fails_cleanly(
    backend: str, small_disk: Path, request: pytest.FixtureRequest
) -> None:
    (small_disk / "proj").mkdir()
    env = create_env(backend, small_disk / "proj" / ".venv", request)
    env.pip_install("vrfull")
    env.vr("snapshot", "create", str(env.path), "fits")
    images = leftovers(env.path)[1] if backend == "docker" else ""
    # Changes bigger than what will be left free: a package, and 4 MiB in the env's Python.
    env.pip_install("vrchange")
    env.shim(
        "python", "-c", "import os, sys; open(sys.prefix + '/lib/big.bin', 'wb').write(os.urandom(4 << 20))"
    )
    # Fill the disk but for a little.
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 2**20)
                handle.flush()
        except OSError:
            pass
    filler_size = filler.stat().st_size
    os.truncate(filler, max(0, filler_size - 256 * 1024))

    failed = env.vr("snapshot", "create", str(env.path), "toobig", check=False)
    assert failed.returncode == 1
    assert "no space left on the disk" in one_line(failed) and "partial snapshot was removed" in failed.stderr
    store = env.path / ".venvroot" / "snapshots"
    assert sorted(p.name for p in store.iterdir() if p.name.startswith(".")) == [], "a partial snapshot stays"
    assert env.names() == ["fits"] and env.snapshots()[0]["current"]
    if backend == "docker":
        assert leftovers(env.path)[1] == images, "the partial snapshot's image stays"
    # The env stays usable.
    assert env.has_package("vrchange") and env.shim("vrfull").stdout == "vrfull runs\n"

    filler.unlink()
    env.vr("snapshot", "create", str(env.path), "fits-now")
    env.vr("snapshot", "restore", str(env.path), "fits")
    assert not env.has_package("vrchange") and env.has_package("vrfull")
