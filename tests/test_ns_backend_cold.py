"""The ns backend's cold start, through real shims, as root and as the unprivileged user: with
nothing running, a shim builds the env's namespaces in its own process, leaves a holder behind in
them and becomes the program. Racing shims start one holder; the program is nobody's parent and
the holder keeps nothing of the shim's (its pipes, its lock); the holder forgets its record when it
ends; a failed start is one line and leaves nothing; the host view's plan is made again when its
file is damaged, and keeps any path; ``--user`` ids as root; program names run as the shims inside
would run them; and the cold path imports none of the costly modules."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ns_backend_helpers import (
    Project,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    host_mounts_mention,
    in_environment,
    namespaces_of,
    project_fixture,  # noqa: F401 - the project fixture
    wait_for,
)
from ns_helpers import Who, who_fixture  # noqa: F401 - the who fixture


def installed_entry() -> str:
    """The shims' entry as installed (what the env's shims run), not the checkout's copy, which the
    test user may not be able to read."""
    out = subprocess.run(
        [sys.executable, "-I", "-c", "import venvroot.cli.shimentry as e; print(e.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# What the shims' Python path must not import (each costs up to several milliseconds).
COSTLY = {
    "dataclasses", "re", "enum", "typing", "shlex", "shutil", "json", "pickle", "traceback", "inspect",
    "pathlib", "subprocess", "threading", "contextlib", "ctypes", "signal", "tempfile", "venvroot.ns.runner",
}  # fmt: skip


def record(env: Path) -> tuple[int, str] | None:
    """The holder recorded for ``env`` (pid, token), if any."""
    try:
        pid, token = (env / ".venvroot" / "ns" / "holder").read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid), token


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def shim(
    project: Project, env: Path, program: str, *args: str, **kwargs: object
) -> subprocess.CompletedProcess:
    return project.run([env / "bin" / program, *args], **kwargs)


def test_racing_cold_shims_start_one_holder_and_all_run(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    procs = [
        project.who.popen(
            [str(env / "bin" / "sh"), "-c", f"echo ran-{i}; read line"],
            env=project.environ,
            cwd=str(project.path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    try:
        # All of them inside at once (each waits on its stdin): one set of namespaces for all.
        assert [p.stdout.readline() for p in procs] == [f"ran-{i}\n" for i in range(8)]  # type: ignore[union-attr]
        inside = in_environment(env)
        assert len(inside) >= 8 + 1
        assert len(namespaces_of(inside)) == 1
        found = record(env)
        assert found is not None and found[0] in inside
    finally:
        results = [p.communicate("\n", timeout=30) for p in procs]
    assert [(p.returncode, err) for p, (_, err) in zip(procs, results, strict=True)] == [(0, "")] * 8


def test_the_program_is_nobodys_parent(project: Project, bb_root: Path) -> None:
    """The holder is neither the program's child (``wait`` returns at once: the holder stays while
    the program runs, so waiting for it would never end) nor its parent."""
    env = project.create("env", "--root", bb_root, "--link", "sh")
    script = 'wait; read -r c < /proc/$$/task/$$/children; echo "children=$c"; echo $$'  # builtins only
    out = shim(project, env, "sh", "-c", script, timeout=30)
    assert out.returncode == 0, out.stderr
    children, program = out.stdout.splitlines()
    assert children == "children="
    found = record(env)
    assert found is not None
    # The holder's parent only waits to reap it; neither of them descends from the program.
    reaper = parent_of(found[0])
    assert reaper != int(program) and parent_of(reaper) != int(program)


def test_the_holder_keeps_nothing_of_the_shims(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    proc = project.who.popen(
        [str(env / "bin" / "sh"), "-c", "echo out; echo err >&2"],
        env=project.environ,
        cwd=str(project.path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pipes = {f"pipe:[{os.fstat(f.fileno()).st_ino}]" for f in (proc.stdout, proc.stderr)}  # type: ignore[union-attr]
    assert proc.communicate(timeout=30) == ("out\n", "err\n") and proc.returncode == 0
    found = record(env)
    assert found is not None
    for pid in (found[0], parent_of(found[0])):
        fds = os.listdir(f"/proc/{pid}/fd")
        held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds if os.path.lexists(f"/proc/{pid}/fd/{fd}")}
        assert not held & pipes, (pid, held)
    # The lock the shim held to start the namespaces is free again (the holder has its own; a
    # compiled start's brain takes it a moment while it starts, after the first program).
    fd = os.open(env / ".venvroot" / "ns" / "lock", os.O_RDWR)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the start's lock is still held"
                time.sleep(0.02)
    finally:
        os.close(fd)


def test_the_holder_forgets_its_record_when_it_ends(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    found = record(env)
    assert found is not None and in_environment(env)
    # Nothing runs and no shell is activated: it ends by itself after a short linger.
    assert wait_for(lambda: record(env) is None, 20)
    assert wait_for(lambda: not os.path.exists(f"/proc/{found[0]}"), 5)  # reaped at once, no zombie
    assert wait_for(lambda: in_environment(env) == [], 5)
    assert host_mounts_mention(env) == []
    log = (env / ".venvroot" / "ns" / "holder.log").read_text()
    assert "the holder ended" not in log, log
    # And the next shim starts it again.
    assert shim(project, env, "sh", "-c", "echo again").stdout == "again\n"


def test_a_failed_start_is_one_line_and_leaves_nothing(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    shutil.rmtree(env / ".venvroot" / "ns" / "upper")  # the overlay cannot be mounted any more
    out = shim(project, env, "sh", "-c", "echo never")
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"venvroot: cannot start the environment {env}: "), lines
    assert record(env) is None
    assert in_environment(env) == [] and host_mounts_mention(env) == []
    assert project.venvroot("reset", env).returncode == 0  # makes the writable layer again
    assert shim(project, env, "sh", "-c", "echo back").stdout == "back\n"


def test_a_damaged_host_view_plan_is_made_again(who: Who) -> None:
    project = Project(who)
    try:
        env = project.create("env", "--link", "sh")
        plan = env / ".venvroot" / "ns" / "plan"
        good = plan.read_text()
        assert good.startswith("venvroot-plan 1 ") and "\nentry\toverlay\t/usr\n" in good
        plan.write_text("garbage\n")
        out = shim(project, env, "sh", "-c", "cat /etc/hostname >/dev/null && echo host-view")
        assert (out.returncode, out.stdout) == (0, "host-view\n"), out.stderr
        assert plan.read_text() == good
    finally:
        project.close()


def test_root_with_user_runs_programs_as_that_user(bb_root: Path) -> None:
    """As root with ``--user ID:NAME``: the program has those ids, cold and joining; the holder
    itself stays root (it forgets its record and ends what runs inside), and the directory where it
    keeps its liveness marker is root's: the program cannot plant a symlink there for it."""
    if os.getuid() != 0:
        pytest.skip("the ids are switched only when venvroot runs as root")
    project = Project(Who("root", None))
    try:
        env = project.create("env", "--root", bb_root, "--link", "sh", "--user", "4321:alice")
        out = project.path / "out"
        out.mkdir()
        os.chown(out, 4321, 4321)
        hidden = f"{env}/.venvroot"
        script = (
            f"id -un; id -u; id -g; echo made > {out}/made-$1; "
            f"ln -s /etc/passwd {hidden}/planted 2>/dev/null && echo planted || echo refused"
        )
        cold = shim(project, env, "sh", "-c", script, "sh", "cold")
        assert cold.stdout.split() == ["alice", "4321", "4321", "refused"], cold.stderr
        warm = shim(project, env, "sh", "-c", script, "sh", "warm")
        assert warm.stdout == cold.stdout, warm.stderr
        for name in ("made-cold", "made-warm"):
            st = (out / name).stat()
            assert (st.st_uid, st.st_gid) == (4321, 4321)
        found = record(env)
        assert found is not None
        with open(f"/proc/{found[0]}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {"0"}
    finally:
        project.close()


def test_root_without_cap_sys_admin_and_another_user_is_one_clear_line(bb_root: Path) -> None:
    """Root without CAP_SYS_ADMIN gets a user namespace that maps only itself: switching to the
    env's ``--user`` is impossible there, and says so in one line (no traceback)."""
    if os.getuid() != 0:
        pytest.skip("only root can drop CAP_SYS_ADMIN from its own bounding set")
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is missing"
    project = Project(Who("root", None))
    try:
        env = project.create("env", "--root", bb_root, "--link", "true", "--user", "4321:alice")
        out = project.run([setpriv, "--bounding-set", "-sys_admin", "--", env / "bin" / "true"])
        assert out.returncode != 0
        assert out.stderr.count("\n") == 1 and "CAP_SYS_ADMIN" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert shim(project, env, "true").returncode == 0  # with the capability it runs
    finally:
        project.close()


def test_the_cold_path_imports_nothing_costly(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root)
    argv = [sys.executable, "-X", "importtime", "-I", "-S", installed_entry(), str(env), "true"]
    out = project.run(argv)
    assert out.returncode == 0, out.stderr
    assert record(env) is not None  # it did start the namespaces
    imported = {line.rpartition("|")[2].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "venvroot.backends.ns.coldstart" in imported
    assert not imported & COSTLY, sorted(imported & COSTLY)


def test_the_entry_that_older_shims_name_still_runs_them(project: Project, bb_root: Path) -> None:
    """Shims made before the entry moved to cli/ name shims/entry.py: it hands their calls on."""
    env = project.create("env", "--root", bb_root)
    old = os.path.join(os.path.dirname(os.path.dirname(installed_entry())), "shims", "entry.py")
    out = project.run([sys.executable, "-I", "-S", old, str(env), "sh", "-c", "echo in; exit 7"])
    assert (out.returncode, out.stdout) == (7, "in\n"), out.stderr


def test_program_names_run_as_the_shims_inside_would(project: Project, bb_root: Path) -> None:
    """A name whose shim comes first on PATH inside runs the root's own program (as the shim there,
    and the sh fast path, would); any other program in the env's bin runs itself."""
    env = project.create("env", "--root", bb_root, "--link", "sh")
    script = env / "bin" / "hello"
    script.write_text('#!/bin/sh\necho "hello from $0"\n')
    script.chmod(0o755)
    os.chown(script, project.who.uid, project.who.gid)
    for _ in ("cold", "running"):
        out = project.venvroot("run", env, "--", "sh", "-c", 'echo "$0"; hello')
        assert out.stdout == f"/bin/sh\nhello from {script}\n", out.stderr
    fast = shim(project, env, "sh", "-c", 'echo "$0"')  # the namespaces run: nsenter
    assert fast.stdout == "/bin/sh\n", fast.stderr


def test_the_plan_file_keeps_any_path() -> None:
    """The host view's plan is read at every start: a text of its own, whatever a path holds."""
    from venvroot.backends.ns import hostview

    odd = "/odd dir/tab\there/new\nline/back\\slash/\\012/ü"
    plan = {
        "rootless": True,
        "entries": [
            {"kind": "skeleton", "dest": "/"},
            {"kind": "overlay", "dest": odd},
            {"kind": "symlink", "dest": "/lib", "target": "usr/lib\tx"},
        ],
        "fallbacks": [f"{odd} read-only (a reason)"],
        "fingerprint": ["/", f"{odd}:a/b\nc"],
    }
    text = hostview.dump(plan)
    assert text.count("\n") == 1 + 3 + 1 + 2
    assert hostview.load(text) == plan
    for bad in ("", "garbage\n", text.replace("venvroot-plan 1 rootless", "venvroot-plan 2 rootless"),
                text + "other\tline\n", text.rstrip("\n")):  # fmt: skip
        with pytest.raises(ValueError):
            hostview.load(bad)
