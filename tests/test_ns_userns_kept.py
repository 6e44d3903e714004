"""The kept user namespace, as the unprivileged user with subordinate ids: cold compiled starts of
two envs enter one id-mapped user namespace, which its keeper holds (newuidmap and newgidmap run
once, not per start); a keeper killed, or a named process whose maps are not the wanted ones, is
never joined: the next start maps a namespace anew and keeps that; the keeper ends once idle; and
a bad idle setting is one clear line."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from ns_backend_helpers import Project, bb_root_fixture, wait_for  # noqa: F401 - the bb_root fixture
from test_ns_backend_cold import record
from test_ns_starter import exe, starter_fixture, stop  # noqa: F401 - the starter fixture
from test_ns_subids import expected_map, maps_of, project_fixture, subids, user_fixture  # noqa: F401

CHECK = "readlink /proc/self/ns/user; cat /proc/self/uid_map"


@pytest.fixture(name="run")
def run_fixture(project: Project) -> Iterator[Path]:
    """The user's runtime directory, the project's own: what a test keeps is its alone, and its
    keeper is ended afterwards."""
    run = project.path / "run"
    assert project.run(["mkdir", "-m", "700", str(run)]).returncode == 0
    project.environ["XDG_RUNTIME_DIR"] = str(run)
    yield run
    for kept in (run / "venvroot").glob("userns-*"):
        with contextlib.suppress(OSError, ValueError):
            if not kept.name.endswith((".lock", ".tmp")):
                os.kill(int(kept.read_text()), signal.SIGKILL)


def made(project: Project, bb_root: Path, name: str) -> Path:
    """An env whose start file a first (Python) start has written; stopped again."""
    env = project.create(name, "--root", bb_root, "--link", "sh")
    assert project.run([env / "bin/sh", "-c", "true"]).returncode == 0
    stop(project, env)
    return env


def cold(project: Project, env: Path, starter: str) -> tuple[str, list[list[int]]]:
    """A compiled cold start's user namespace and uid map, as a program inside sees them."""
    out = project.run([env / "bin/sh", "-c", CHECK])
    assert out.returncode == 0, out.stderr
    found = record(env)
    assert found is not None and exe(found[0]) == starter
    stop(project, env)
    ns, _, uid_map = out.stdout.partition("\n")
    return ns, maps_of(uid_map)


def kept_file(run: Path) -> Path:
    (kept,) = [p for p in (run / "venvroot").glob("userns-*") if not p.name.endswith((".lock", ".tmp"))]
    return kept


def keeper(run: Path) -> int:
    return int(kept_file(run).read_text())


def user_ns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/user")


def test_cold_starts_share_the_kept_namespace_and_a_killed_keeper_is_replaced(
    project: Project, bb_root: Path, starter: str, run: Path
) -> None:
    first, second = made(project, bb_root, "A"), made(project, bb_root, "B")
    want = expected_map(project.who.uid, project.who.uid, subids(project.who.user.pw_name, "/etc/subuid"))
    ns, uid_map = cold(project, first, starter)
    assert uid_map == want
    pid = keeper(run)
    assert user_ns(pid) == ns
    assert cold(project, second, starter) == (ns, want)  # the other env's start joins it: no mapping
    assert keeper(run) == pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5)
    ns, uid_map = cold(project, first, starter)  # maps a namespace anew, and keeps that
    assert uid_map == want
    assert keeper(run) != pid and user_ns(keeper(run)) == ns


def test_a_named_process_with_other_maps_is_never_joined(
    project: Project, bb_root: Path, starter: str, run: Path
) -> None:
    env = made(project, bb_root, "A")
    want = expected_map(project.who.uid, project.who.uid, subids(project.who.user.pw_name, "/etc/subuid"))
    cold(project, env, starter)
    first = keeper(run)  # named no more below: ended here, not after its idle time
    # A namespace of the user's that maps its own id alone (setgroups denied), named as the kept one.
    other = project.who.popen(["unshare", "--user", "--map-root-user", "sleep", "60"], env=project.environ)
    try:
        assert wait_for(lambda: user_ns(other.pid) != user_ns(os.getpid()), 5)
        kept_file(run).write_text(f"{other.pid}\n")
        ns, uid_map = cold(project, env, starter)
        assert uid_map == want and ns != user_ns(other.pid)
        assert keeper(run) != other.pid and user_ns(keeper(run)) == ns
    finally:
        other.kill()
        other.wait()
        os.kill(first, signal.SIGKILL)


def test_the_keeper_ends_once_idle_and_a_bad_idle_is_one_line(
    project: Project, bb_root: Path, starter: str, run: Path
) -> None:
    project.environ["VENVROOT_USERNS_IDLE"] = "1"  # read when the start file is written
    env = made(project, bb_root, "A")
    cold(project, env, starter)  # stopped: nothing of the env's is left in the namespace
    pid = keeper(run)
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10)
    project.environ["VENVROOT_USERNS_IDLE"] = "soon"
    fresh = project.create("B", "--root", bb_root, "--link", "sh")
    out = project.run([fresh / "bin/sh", "-c", "true"])
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr
    assert "VENVROOT_USERNS_IDLE=soon: not a number of seconds" in lines[0]
    assert record(fresh) is None
    del project.environ["VENVROOT_USERNS_IDLE"]
    assert project.run([fresh / "bin/sh", "-c", "true"]).returncode == 0
