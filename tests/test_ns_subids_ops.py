"""Env operations on files of subordinate ids, as the unprivileged user with a range: root inside
gives files to a system user in a directory only that user may enter (as apt's ``partial`` is),
which the user cannot read or unlink on the host; ``snapshot delete``, ``freeze`` (a session's
changes thrown away when it ends), ``reset`` of a frozen env and of a plain one, ``unfreeze`` and
``destroy`` each work on them, and nothing is left in the project afterwards."""

from __future__ import annotations

import shlex
from pathlib import Path

from ns_backend_helpers import VENVROOT, Project
from test_ns_subids import debian_root, inside, project_fixture, subids, user_fixture  # noqa: F401

# A directory of daemon's (1), mode 0700, with a file in it: the user cannot enter it on the host.
DAEMONS = "mkdir -m 700 {d} && echo x > {d}/f && chown -R daemon:daemon {d} && stat -c %U {d}/f"


def ok(done) -> None:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, done.stdout + done.stderr


def make(project: Project, env: Path, path: str) -> None:
    done = inside(project, env, DAEMONS.format(d=path))
    ok(done)
    assert done.stdout == "daemon\n"


def present(project: Project, env: Path, *paths: str) -> list[bool]:
    out = inside(project, env, " ; ".join(f"test -e {p} && echo yes || echo no" for p in paths))
    ok(out)
    return [word == "yes" for word in out.stdout.split()]


def snapshot_dirs(env: Path) -> list[str]:
    store = env / ".venvroot/snapshots"
    return sorted(p.name for p in store.iterdir() if p.is_dir()) if store.is_dir() else []


def test_snapshot_delete_freeze_and_reset_handle_files_of_subordinate_ids(project: Project) -> None:
    uids = subids(project.who.user.pw_name, "/etc/subuid")
    env = project.create("E", "--root", debian_root(project), "--user", "root", "--without-pip",
                         "--directory", "/usr:/usr:ro")  # fmt: skip
    make(project, env, "/opt/first")
    assert [p.stat().st_uid for p in (env / ".venvroot/ns/upper/opt").iterdir()] == [uids[0] + 1]

    # A snapshot holding them is deleted whole.
    ok(project.venvroot("snapshot", "create", env, "one"))
    held = [p for p in (env / ".venvroot").rglob("first") if "snapshots" in p.parts]
    assert len(held) == 1 and held[0].stat().st_uid == uids[0] + 1
    ok(project.venvroot("snapshot", "delete", env, "one"))
    assert not any("first" in p.parts for p in (env / ".venvroot").rglob("*") if "snapshots" in p.parts)
    assert snapshot_dirs(env) == []

    # Frozen: what a session makes goes when it ends, the frozen files stay with their owner.
    ok(project.venvroot("freeze", env, "--name", "base"))
    run = shlex.join([*VENVROOT, "run", str(env), "--", "sh", "-c", DAEMONS.format(d="/opt/session")])
    activate = shlex.quote(str(env / "bin/activate"))
    script = f"source {activate} || exit 99\n{run}\ns=$?\ndeactivate\nexit $s\n"
    session = project.run(["bash", "--norc", "--noprofile", "-c", script], timeout=120)
    ok(session)
    assert present(project, env, "/opt/first", "/opt/session") == [True, False]

    # reset of a frozen env: back to the frozen state.
    make(project, env, "/opt/outside")
    ok(project.venvroot("reset", env))
    assert present(project, env, "/opt/first", "/opt/outside") == [True, False]
    owner = inside(project, env, "stat -c %U:%G /opt/first /opt/first/f")
    assert owner.stdout.split() == ["daemon:daemon", "daemon:daemon"], owner.stderr

    # unfreeze: changes last again; the base snapshot can go; reset goes back to the root as made.
    ok(project.venvroot("unfreeze", env))
    make(project, env, "/opt/lasting")
    assert present(project, env, "/opt/lasting") == [True]
    ok(project.venvroot("snapshot", "delete", env, "base"))
    assert snapshot_dirs(env) == []
    ok(project.venvroot("reset", env))
    assert present(project, env, "/opt/first", "/opt/lasting") == [False, False]

    # Another snapshot of such files, then destroy: nothing is left in the project.
    make(project, env, "/opt/last")
    ok(project.venvroot("snapshot", "create", env, "two"))
    ok(project.venvroot("destroy", env))
    assert not env.exists()
    assert sorted(p.name for p in project.path.iterdir()) == ["root"]
