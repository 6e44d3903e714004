"""The library API of venvroot.ns: Chroot, run_function, run_command, exec_command and the mount
kinds, each run for real as root and as the unprivileged user (each test's code runs in a fresh
interpreter started as that user)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ns_helpers import Who, chroot_cli, own_root, who_fixture  # noqa: F401 - fixture

import venvroot

CHROOT_BODY = r"""
import json, os, sys
from venvroot.ns import Chroot, ChrootError, RemoteTraceback, run_command
root = sys.argv[1]
log_r, log_w = os.pipe()
out = {}

def assigned_locals():
    before = 1
    try:
        with Chroot(root, hostname="inner.example.org") as c:
            seen = sorted(os.listdir("/"))
            host = open("/proc/sys/kernel/hostname").read().strip()
            domain = open("/proc/sys/kernel/domainname").read().strip()
            before = 2
            pid_inside = os.getpid()  # 2: a new PID namespace, under a small init
            handle = open("/etc/passwd")  # not picklable: stays behind
    finally:
        os.write(log_w, b"finally-1\n")
    return dict(seen=seen, host=host, domain=domain, before=before, status=c.exit_status,
                pid_inside=pid_inside, handle="handle" in locals())

def exception():
    try:
        with Chroot(root) as c:
            x = 41
            raise KeyError("raised inside")
    except KeyError as exc:
        os.write(log_w, b"except-2\n")
        cause = exc.__cause__
        return dict(x=x, exc=repr(exc), remote=isinstance(cause, RemoteTraceback),
                    inner=str(cause), status=c.exit_status)
    finally:
        os.write(log_w, b"finally-2\n")

def system_exit():
    try:
        with Chroot(root):
            sys.exit(3)
    except SystemExit as exc:
        return exc.code

def killed():
    c = Chroot(root)
    try:
        with c:
            os.kill(os.getpid(), 9)
    except ChrootError as exc:
        return [c.exit_status, str(exc)]

def loop():
    seen = []
    for i in range(3):
        with Chroot(root, default_mounts=None): seen.append(i); last = i
    return [seen, last]

out["locals"] = assigned_locals()
out["loop"] = loop()
# the program is looked up and started after the switch of root, with no lazy import on the way
out["run"] = [run_command(root, ["sh", "-c", "exit 5"], env={"PATH": "/bin"}, pid=True),
              run_command(root, ["nope"], env={"PATH": "/bin"})]
out["exception"] = exception()
out["system_exit"] = system_exit()
out["killed"] = killed()
with Chroot(root) as c: module_level = os.path.exists("/bin/busybox") and not os.path.exists(root)
out["module_level"] = module_level
os.close(log_w)
out["log"] = os.read(log_r, 4096).decode().split()
print(json.dumps(out))
"""


def _json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_chroot_context_manager(who: Who, busybox_root: Path) -> None:
    out = _json(who.python(CHROOT_BODY, str(busybox_root)))
    loc = out["locals"]
    assert loc["seen"] == sorted(os.listdir(busybox_root))
    assert (loc["host"], loc["domain"]) == ("inner", "example.org")
    assert loc["before"] == 2 and loc["status"] == 0 and loc["pid_inside"] == 2 and not loc["handle"]
    exc = out["exception"]
    assert exc["x"] == 41 and exc["exc"] == "KeyError('raised inside')" and exc["status"] == 1
    assert exc["remote"] and 'raise KeyError("raised inside")' in exc["inner"]
    assert out["system_exit"] == 3
    assert out["killed"][0] == 137 and "137" in out["killed"][1]
    assert out["module_level"] is True
    # one-line bodies in a loop: "last" comes back; the list was only changed in the children
    assert out["loop"] == [[], 2]
    assert out["run"] == [5, 127]
    # the caller's except/finally blocks ran once each, in the caller only
    assert out["log"] == ["finally-1", "except-2", "finally-2"]


def test_chroot_on_other_python_versions(busybox_root: Path) -> None:
    """Skipping the body relies on tracing (<3.12) or sys.monitoring (3.12+): try every interpreter
    available (the pyenv ones on a developer's machine; CI has its own)."""
    found = [
        p
        for p in sorted(Path("/root/.pyenv/versions").glob("3.1[0-9]*/bin/python3"))
        if os.access(p, os.X_OK)
    ]
    if os.getuid() != 0 or not found:
        pytest.skip("no other Python 3.10+ interpreters here")
    for python in found:
        result = Who("root", None).run(
            [str(python), "-c", CHROOT_BODY, str(busybox_root)],
            env=dict(os.environ, PYTHONPATH=str(Path(venvroot.__file__).resolve().parent.parent)),
        )
        out = _json(result)
        assert out["locals"]["before"] == 2, python
        assert out["log"] == ["finally-1", "except-2", "finally-2"], python
        assert out["exception"]["x"] == 41, python
        assert out["loop"] == [[], 2]
    assert out["run"] == [5, 127], python


def test_pychroot_mountpoints(who: Who, shared_tmp: Path) -> None:
    root = own_root(shared_tmp / "base", who)
    data = shared_tmp / "data"
    data.mkdir()
    (data / "file").write_text("x")
    out = _json(
        who.python(
            r"""
        import json, os, sys
        from venvroot.ns import Chroot
        root, data = sys.argv[1], sys.argv[2]
        os.environ["DATA_DIR"] = data
        keys = dict(Chroot.default_mounts)
        with Chroot(root, mountpoints={"$DATA_DIR:/data": {}, "/sys": None,
                                       "/no/such/dir": {"optional": True},
                                       "$UNSET_VAR": {"optional": True}}) as c:
            listing = os.listdir("/data")
            sys_entries = os.listdir("/sys")
        with Chroot(root, default_mounts=None):
            bare = os.listdir("/proc")
        print(json.dumps(dict(listing=listing, sys=sys_entries, bare=bare,
                              defaults_kept=dict(Chroot.default_mounts) == keys)))
    """,
            str(root),
            str(data),
        )
    )
    assert out["listing"] == ["file"]
    assert out["sys"] == []  # the default /sys mount was removed by None
    assert out["bare"] == []
    assert out["defaults_kept"] is True  # pychroot mutated its class-level defaults


def test_run_function_returns_and_raises(who: Who, busybox_root: Path) -> None:
    out = _json(
        who.python(
            r"""
        import json, os, sys
        from venvroot.ns import run_function, RemoteTraceback
        root = sys.argv[1]
        value = run_function(root, os.listdir, ("/etc",), mounts=None)
        def fail():
            raise ValueError("from inside")
        try:
            run_function(root, fail)
        except ValueError as exc:
            error = [str(exc), isinstance(exc.__cause__, RemoteTraceback), str(exc.__cause__)]
        print(json.dumps(dict(value=sorted(value), error=error)))
    """,
            str(busybox_root),
        )
    )
    assert out["value"] == sorted(os.listdir(busybox_root / "etc"))
    assert out["error"][0] == "from inside" and out["error"][1]
    assert 'raise ValueError("from inside")' in out["error"][2]


def test_run_command_environment_cwd_and_identity(who: Who, busybox_root: Path) -> None:
    out = _json(
        who.python(
            r"""
        import json, sys
        from venvroot.ns import run_command
        root = sys.argv[1]
        statuses = [
            run_command(root, ["/bin/sh", "-c", 'test "$X" = "y z" && test "$(pwd)" = /etc'],
                        env={"X": "y z", "PATH": "/bin"}, cwd="/etc"),
            run_command(root, ["sh", "-c", 'test "$(id -u):$(id -g)" = "%d:%d"' % (%UID%, %GID%)],
                        uid=None, gid=None, env={"PATH": "/bin"}),
            run_command(root, ["sh", "-c", 'test "$(id -u)" = 0'], env={"PATH": "/bin"}),
            run_command(root, ["sh", "-c", "exit 9"], pid=True),
            run_command(root, ["sh", "-c", "kill -USR1 $$"], pid=True),
            run_command(root, ["/nonexistent"]),
        ]
        import threading  # from a thread other than the main one (no signal handlers there)
        worker = threading.Thread(target=lambda: statuses.append(run_command(root, ["sh", "-c", "exit 6"])))
        worker.start()
        worker.join()
        print(json.dumps(statuses))
    """.replace("%UID%", str(who.uid)).replace("%GID%", str(who.gid)),
            str(busybox_root),
        )
    )
    assert out == [0, 0, 0, 9, 128 + 10, 127, 6]


def test_exec_command_as_a_shim_calls_it(who: Who, busybox_root: Path) -> None:
    """A fresh `python -I -S` process, as the shims run it: the process becomes the program."""
    repo = package_parent(who)
    code = (
        f"import sys; sys.path.insert(0, {repo!r}); import os\n"
        "from venvroot.ns import exec_command\n"
        "pid = os.getpid()\n"
        "exec_command(sys.argv[1], ['/bin/sh', '-c', 'echo $$ $PPID; echo \"$1\"; exit 4', 'sh', 'a b'],"
        " mounts=(), uid=None, gid=None)\n"
    )
    result = who.run([sys.executable, "-I", "-S", "-c", code, str(busybox_root)], env={"PATH": "/bin"})
    assert result.returncode == 4, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "a b"


def test_mount_kinds(who: Who, shared_tmp: Path) -> None:
    """tmpfs, a minimal /dev, a fresh proc in a PID namespace, read-only binds, and an overlay root
    whose writes land in the upper directory while the lower one stays untouched."""
    lower = own_root(shared_tmp / "lower", who)
    for name in ("upper", "work", "mnt", "data"):
        (shared_tmp / name).mkdir()
    (shared_tmp / "data" / "f").write_text("data\n")
    who.chown(shared_tmp)
    out = _json(
        who.python(
            r"""
        import json, sys
        from venvroot.ns import Mount, run_command
        base = sys.argv[1]
        mounts = [Mount.overlay("/", f"{base}/lower/root", f"{base}/upper", f"{base}/work"),
                  Mount.dev(), Mount.proc(), Mount.tmpfs("/tmp", "size=1m"),
                  Mount.bind(f"{base}/data", "/data", readonly=True)]
        script = ("echo new > /etc/new-file && test -c /dev/null && test -c /dev/urandom && "
                  "test -L /dev/fd && test -d /dev/pts && test $(readlink /proc/self) -lt 20 && "
                  "mount | grep -q 'tmpfs on /tmp' && cat /data/f && ! touch /data/g 2>/dev/null")
        status = run_command(f"{base}/mnt", ["/bin/sh", "-c", script], mounts=mounts, pid=True)
        print(json.dumps(status))
    """,
            str(shared_tmp),
        )
    )
    assert out == 0
    assert (shared_tmp / "upper" / "etc" / "new-file").read_text() == "new\n"
    assert not (lower / "etc" / "new-file").exists()
    assert not (shared_tmp / "data" / "g").exists()


def test_independent_overlays_mount_together(who: Who, shared_tmp: Path) -> None:
    """With ``overlays_together`` (the ns backend's host view), a run of overlays whose
    destinations hold none of each other is mounted on several threads: each lands where it
    belongs, writes reach its own upper directory, a nested one still goes on top of its parent,
    no helper thread is left when the build returns (a fork follows), and one that fails fails the
    whole build, with nothing mounted in the host or made."""
    root = own_root(shared_tmp / "base", who)
    names = [f"d{i}" for i in range(8)]
    for name in [*names, "d0/inner"]:
        for part in ("lower", "upper", "work"):
            (shared_tmp / part / name).mkdir(parents=True)
        (shared_tmp / "lower" / name / "here").write_text(name + "\n")
        (root / name).mkdir(exist_ok=True)
    who.chown(shared_tmp)
    code = r"""
        import json, os, sys
        from venvroot.ns import Mount, sandbox
        base, root, names, broken = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
        def overlay(name):
            upper = f"{base}/upper/{name}" if name != broken else f"{base}/missing"
            return Mount.overlay(f"/{name}", f"{base}/lower/{name}", upper, f"{base}/work/{name}")
        mounts = [overlay(n) for n in names] + [overlay("d0/inner")]
        spec = sandbox.Spec(root, mounts, uid=None, gid=None, hostname=None, pid=False, net=False,
                            cwd="/", skip_chdir=False, overlays_together=True)
        sandbox.enter_namespaces(spec)
        try:
            created, root_fd = sandbox.build(spec)
        except Exception as exc:
            print(json.dumps({"error": str(exc)}))
            sys.exit(0)
        threads = len(os.listdir("/proc/self/task"))
        sandbox.switch_root(spec, root_fd, own_mount_ns=False)
        seen = {n: open(f"/{n}/here").read().strip() for n in names + ["d0/inner"]}
        for n in names:
            open(f"/{n}/written", "w").close()
        print(json.dumps({"seen": seen, "threads": threads}))
    """
    out = _json(who.python(code, str(shared_tmp), str(root), " ".join(names), "none"))
    assert out == {"seen": {n: n for n in [*names, "d0/inner"]}, "threads": 1}
    for name in names:
        assert (shared_tmp / "upper" / name / "written").exists()
        assert not (shared_tmp / "lower" / name / "written").exists()
    before = sorted(p.name for p in root.iterdir())
    out = _json(who.python(code, str(shared_tmp), str(root), " ".join(names), "d5"))
    assert out["error"].startswith("cannot mount overlay on /d5 inside "), out
    assert sorted(p.name for p in root.iterdir()) == before
    with open("/proc/self/mountinfo") as f:
        assert str(root) not in f.read()


def test_setup_errors_are_raised_in_the_caller(who: Who, busybox_root: Path) -> None:
    out = _json(
        who.python(
            r"""
        import json, sys
        from venvroot.ns import ChrootError, ChrootMountError, Mount, run_command
        root = sys.argv[1]
        errors = []
        for call in (
            lambda: run_command(root + "/missing", ["true"]),
            lambda: run_command(root, ["true"], mounts=[Mount.bind("/no/such/source", "/x")]),
            lambda: run_command(root, ["true"], mounts=[Mount.tmpfs("/etc/passwd")]),
            lambda: run_command(root, ["true"], mounts=[Mount.tmpfs("/not-there", create=False)]),
            lambda: run_command(root, ["true"], mounts=[Mount.bind("/etc/hostname", "/bin")]),
            lambda: run_command(root, ["true"], cwd="/no/such/dir"),
        ):
            try:
                call()
                errors.append(None)
            except ChrootError as exc:
                errors.append([type(exc).__name__, str(exc)])
        print(json.dumps(errors))
    """,
            str(busybox_root),
        )
    )
    assert all(e is not None and "\n" not in e[1] for e in out), out
    assert "no such directory" in out[0][1]
    assert out[1][0] == "ChrootMountError" and "/no/such/source" in out[1][1]
    assert "/etc/passwd" in out[2][1]
    assert "/not-there" in out[3][1]
    assert "a file on a directory" in out[4][1]
    assert "/no/such/dir" in out[5][1]


def test_join_command_enters_a_running_root(who: Who, busybox_root: Path) -> None:
    """What a session shim does: join the namespaces and root of a program already inside."""
    holder = who.popen(
        chroot_cli(
            "--no-pid", "--hostname", "holder-host", str(busybox_root), "/bin/sh", "-c", "echo $$; read x"
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        holder_pid = int(holder.stdout.readline())  # type: ignore[union-attr]
        out = _json(
            who.python(
                r"""
            import json, os, sys
            r, w = os.pipe()
            if os.fork() == 0:
                os.dup2(w, 1)
                from venvroot.ns import join_command
                join_command(int(sys.argv[1]), ["/bin/sh", "-c", "hostname; pwd; ls /"], cwd="/etc")
            os.close(w)
            os.wait()
            print(json.dumps(os.read(r, 65536).decode().split()))
        """,
                str(holder_pid),
            )
        )
    finally:
        holder.communicate("done\n", timeout=10)
    assert out[:2] == ["holder-host", "/etc"]
    assert out[2:] == sorted(os.listdir(busybox_root))


def package_parent(who: Who) -> str:
    """Where ``who``'s interpreter finds venvroot (CI's checkout may be unreadable to the test user)."""
    found = who.run(
        [sys.executable, "-c", "import os, venvroot; print(os.path.dirname(venvroot.__path__[0]))"]
    )
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()
