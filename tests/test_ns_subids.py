"""Rootless envs with the user's subordinate ids, as the unprivileged user: the user maps to root
(``--user root``) or to itself, the range backs every other id, and the mapping is the same on
every path (the Python start, the compiled starter's, a join); root inside can chown and switch
to system users, so ``apt-get update`` and ``apt-get install`` of a package from a local
repository (a file of a system user, a postinst that chowns) work, owners right inside and on
the host, and destroy leaves nothing; without a range, create says so in one line with the fix."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_busybox_root, need
from ns_backend_helpers import Project, wait_for
from ns_helpers import Who
from test_ns_backend_cold import record
from test_ns_starter import exe, starter_fixture  # noqa: F401 - the starter fixture


def subids(user: str, path: str) -> tuple[int, int]:
    for line in Path(path).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user and int(fields[2]) > 0:
            return int(fields[1]), int(fields[2])
    pytest.fail(f"{user} has no range in {path}; .ci/setup gives it one", pytrace=False)


@pytest.fixture(name="user")
def user_fixture(unprivileged_user: pwd.struct_passwd) -> Who:
    for tool in ("newuidmap", "newgidmap", "apt-get", "dpkg-deb", "dpkg-scanpackages", "setpriv"):
        need(tool)
    return Who("user", unprivileged_user)


@pytest.fixture(name="project")
def project_fixture(user: Who) -> Project:
    project = Project(user, prefix="venvroot-subids-")
    yield project
    project.close()


def debian_root(project: Project) -> Path:
    """A root of the user's: the host's /etc copied, an empty dpkg database, and a source list that
    names only the local repository; /usr comes from the host, read-only (--directory)."""
    root = project.path / "root"
    script = f"""
        set -e
        R={root}
        mkdir -p $R/usr $R/tmp $R/proc $R/sys $R/dev $R/root $R/opt $R/var/lib/dpkg/info \\
            $R/var/lib/dpkg/updates $R/var/lib/apt/lists/partial $R/var/cache/apt/archives/partial \\
            $R/var/log/apt
        for l in bin sbin lib lib64; do ln -s usr/$l $R/$l; done
        cp -a /etc $R/etc 2>/dev/null || true
        chmod 1777 $R/tmp
        touch $R/var/lib/dpkg/status $R/var/lib/dpkg/available
        printf '#!/bin/sh\nexec cat "$@"\n' > $R/opt/show && chmod 755 $R/opt/show
        rm -rf $R/etc/apt/sources.list $R/etc/apt/sources.list.d
        echo 'deb [trusted=yes] file:{project.path}/repo ./' > $R/etc/apt/sources.list
    """
    done = project.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return root


def local_repository(project: Project) -> None:
    """repo/: the package vrdemo, whose file `owned` belongs to daemon (1:1) and whose postinst
    gives its spool directory to daemon; built as root here, readable by everyone."""
    pkg, repo = project.path / "pkg", project.path / "repo"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "opt/vrdemo/bin").mkdir(parents=True)
    (pkg / "opt/vrdemo/spool").mkdir()
    (pkg / "DEBIAN/control").write_text(
        "Package: vrdemo\nVersion: 1.0\nArchitecture: all\nMaintainer: tests <t@example.invalid>\n"
        "Description: files of a system user\n"
    )
    (pkg / "DEBIAN/postinst").write_text("#!/bin/sh\nchown daemon:daemon /opt/vrdemo/spool\n")
    (pkg / "opt/vrdemo/bin/vrdemo").write_text('#!/bin/sh\necho "vrdemo runs as $(id -un)"\n')
    for script in (pkg / "DEBIAN/postinst", pkg / "opt/vrdemo/bin/vrdemo"):
        script.chmod(0o755)
    (pkg / "opt/vrdemo/owned").write_text("data\n")
    os.chown(pkg / "opt/vrdemo/owned", 1, 1)
    repo.mkdir()
    subprocess.run(
        ["dpkg-deb", "-b", str(pkg), str(repo / "vrdemo_1.0_all.deb")], check=True, capture_output=True
    )
    index = subprocess.run(["dpkg-scanpackages", ".", "/dev/null"], cwd=repo, check=True, capture_output=True)
    (repo / "Packages").write_bytes(index.stdout)
    shutil.rmtree(pkg)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)


def inside(project: Project, env: Path, command: str) -> subprocess.CompletedProcess:
    return project.venvroot("run", env, "--", "sh", "-c", command, timeout=120)


def expected_map(first: int, outside: int, sub: tuple[int, int]) -> list[list[int]]:
    """The lines of /proc/self/uid_map for ``first`` inside backed by ``outside``: every other
    inside id k by the range's start + k."""
    start, count = sub
    return [
        *([[0, start, first]] if first else []),
        [first, outside, 1],
        [first + 1, start + first + 1, count - first - 1],
    ]


def maps_of(text: str) -> list[list[int]]:
    return [[int(x) for x in line.split()] for line in text.strip().splitlines()]


def test_root_inside_has_the_whole_range_on_every_path(project: Project, starter: str) -> None:
    who = project.who
    uids, gids = subids(who.user.pw_name, "/etc/subuid"), subids(who.user.pw_name, "/etc/subgid")
    env = project.create("E", "--root", debian_root(project), "--user", "root", "--without-pip",
                         "--directory", "/usr:/usr:ro")  # fmt: skip
    linked = project.venvroot("link", env, "/opt/show")
    assert linked.returncode == 0, linked.stderr
    want = (expected_map(0, who.uid, uids), expected_map(0, who.gid, gids))
    check = "cat /proc/self/uid_map; echo -; cat /proc/self/gid_map"

    def maps(out: str) -> tuple[list[list[int]], list[list[int]]]:
        uid_text, _, gid_text = out.partition("-\n")
        return maps_of(uid_text), maps_of(gid_text)

    python = inside(project, env, f"{check}; echo; cat /proc/self/setgroups")  # the Python start
    assert python.returncode == 0, python.stderr
    assert maps(python.stdout.partition("\n\n")[0] + "\n") == want
    assert python.stdout.split()[-1] == "allow"
    joined = project.run([env / "bin/show", "/proc/self/uid_map"])  # joins the Python holder
    assert maps_of(joined.stdout) == want[0]
    assert wait_for(lambda: record(env) is None)  # the linger ends; the next shim starts it compiled
    compiled = project.run([env / "bin/show", "/proc/self/uid_map", "/proc/self/gid_map"])
    found = record(env)
    assert found is not None and exe(found[0]) == starter
    assert maps_of(compiled.stdout) == want[0] + want[1]
    # Root inside owns any id of the range: chown, and a switch to a system user with its groups.
    out = inside(project, env, "touch /tmp/f && chown 100:100 /tmp/f && stat -c %u:%g /tmp/f && "
                               "setpriv --reuid=daemon --regid=daemon --init-groups id")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["100:100", "uid=1(daemon) gid=1(daemon) groups=1(daemon)"]
    host = list((env / ".venvroot/ns").rglob("tmp/f"))
    assert [(p.stat().st_uid, p.stat().st_gid) for p in host] == [(uids[0] + 100, gids[0] + 100)]


def test_the_callers_own_id_keeps_itself_with_the_range_around_it(project: Project) -> None:
    who = project.who
    uids = subids(who.user.pw_name, "/etc/subuid")
    env = project.create("E", "--root", debian_root(project), "--without-pip", "--directory", "/usr:/usr:ro")
    out = inside(project, env, "id -u; cat /proc/self/uid_map")
    assert out.returncode == 0, out.stderr
    first, _, rest = out.stdout.partition("\n")
    assert int(first) == who.uid
    assert maps_of(rest) == expected_map(who.uid, who.uid, uids)


def test_apt_installs_a_local_package_with_its_owners(project: Project) -> None:
    uids = subids(project.who.user.pw_name, "/etc/subuid")
    local_repository(project)
    env = project.create("E", "--root", debian_root(project), "--user", "root", "--without-pip",
                         "--directory", "/usr:/usr:ro")  # fmt: skip
    update = inside(project, env, "apt-get update")
    assert update.returncode == 0, update.stdout + update.stderr
    install = inside(project, env, "apt-get install -y vrdemo")
    assert install.returncode == 0, install.stdout + install.stderr
    owners = inside(
        project, env, "stat -c '%n %U:%G' /opt/vrdemo/owned /opt/vrdemo/spool /opt/vrdemo/bin/vrdemo"
    )
    assert owners.stdout.splitlines() == [
        "/opt/vrdemo/owned daemon:daemon",
        "/opt/vrdemo/spool daemon:daemon",
        "/opt/vrdemo/bin/vrdemo root:root",
    ]
    assert inside(project, env, "/opt/vrdemo/bin/vrdemo").stdout == "vrdemo runs as root\n"
    on_host = [p for p in (env / ".venvroot/ns").rglob("vrdemo/owned")]
    assert [p.stat().st_uid for p in on_host] == [uids[0] + 1]  # daemon (1)
    # apt's program through a linked shim, from outside.
    linked = project.venvroot("link", env, "/opt/vrdemo/bin/vrdemo")
    assert linked.returncode == 0, linked.stderr
    assert project.run([env / "bin/vrdemo"]).stdout == "vrdemo runs as root\n"
    # A snapshot keeps the owners; removing the package and restoring brings them back.
    for step in (
        ["snapshot", "create", env, "installed"],
        ["run", env, "--", "apt-get", "purge", "-y", "vrdemo"],
    ):
        done = project.venvroot(*step, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert inside(project, env, "ls /opt/vrdemo 2>&1 || echo gone").stdout.endswith("gone\n")
    restored = project.venvroot("snapshot", "restore", env, "installed")
    assert restored.returncode == 0, restored.stderr
    again = inside(project, env, "stat -c '%n %U:%G' /opt/vrdemo/owned /opt/vrdemo/spool")
    assert again.stdout.splitlines() == owners.stdout.splitlines()[:2]
    assert project.run([env / "bin/vrdemo"]).stdout == "vrdemo runs as root\n"
    destroyed = project.venvroot("destroy", env)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not env.exists()
    assert sorted(p.name for p in project.path.iterdir()) == ["repo", "root"]


def test_without_a_range_create_names_the_missing_entry_and_the_fix(project: Project) -> None:
    """The user's lines hidden (an empty /etc/subuid and /etc/subgid in a mount namespace of the
    test's): the env maps the one id, and create says what is missing in one line."""
    need("unshare")
    env = project.path / "E"
    root = debian_root(project)
    hide = 'mount --bind /dev/null /etc/subuid && mount --bind /dev/null /etc/subgid && exec "$@"'

    def hidden(*args: str) -> subprocess.CompletedProcess:
        argv = [
            "unshare",
            "-m",
            "sh",
            "-c",
            hide,
            "sh",
            *project.who.argv([sys.executable, "-m", "venvroot", *args]),
        ]
        return subprocess.run(argv, capture_output=True, text=True, env=project.environ, cwd="/", timeout=120)

    made = hidden(
        str(env), "--root", str(root), "--user", "root", "--without-pip", "--directory", "/usr:/usr:ro"
    )
    assert made.returncode == 0, made.stderr
    warning = made.stderr.strip().splitlines()
    assert len(warning) == 1, made.stderr
    name = project.who.user.pw_name
    assert warning[0].startswith(f"venvroot: warning: {name} has no subordinate ids in /etc/subuid")
    assert "usermod --add-subuids " in warning[0] and warning[0].endswith(f" {name}`")
    single = hidden("run", str(env), "--", "cat", "/proc/self/uid_map")
    assert maps_of(single.stdout) == [[0, project.who.uid, 1]], single.stderr


@pytest.mark.parametrize("option", [["--user", "root"], []], ids=["root", "caller"])
def test_a_tarball_root_keeps_its_owners_shifted_into_the_range(project: Project, option: list[str]) -> None:
    who = project.who
    uids = subids(who.user.pw_name, "/etc/subuid")
    root = build_busybox_root(project.path / "bb")
    (root / "srv").mkdir()
    (root / "srv/daemons").write_text("x\n")
    os.chown(root / "srv/daemons", 1, 1)
    (root / "srv/private").mkdir(mode=0o700)
    os.chown(root / "srv/private", 1, 1)
    tarball = project.path / "bb.tar"
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], check=True)
    shutil.rmtree(root)
    env = project.create("E", "--root", tarball, "--without-pip", *option)
    out = inside(project, env, "stat -c '%u:%g' /srv/daemons /srv/private /bin/busybox")
    assert out.stdout.splitlines() == ["1:1", "1:1", "0:0"], out.stderr
    lower = next((env / ".venvroot/ns").rglob("srv/daemons"))
    assert lower.stat().st_uid == uids[0] + 1
    busybox_owner = (lower.parent.parent / "bin/busybox").stat().st_uid
    assert busybox_owner == (who.uid if option else uids[0])  # root's files are yours only as root inside
    destroyed = project.venvroot("destroy", env)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not env.exists()
