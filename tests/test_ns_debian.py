"""``--root debian:SUITE``: the offline parts run in CI with a stand-in for debootstrap that records
how it was called and lays down a busybox root (the real debootstrap needs the network: the
``network`` test below, deselected by default). As root and as the unprivileged user with a range:
debootstrap runs as root (of the user's ranges rootless, with ``container=lxc``: no mknod there) in
a mount namespace of its own, the root it made is cached once per user with its owners and every
env of the suite is unpacked from the cache, which needs no debootstrap any more; the mirror is the
one the machine's apt uses; a failed build, a missing debootstrap, a missing range and a bad suite
are one line each with nothing left; a terminal shows debootstrap's stages on one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pexpect
import pytest
from conftest import build_busybox_root, need
from ns_backend_helpers import VENVROOT, Project, processes_with, project_fixture, wait_for  # noqa: F401 - a fixture
from ns_helpers import Who

FAKE = r"""#!/bin/sh
# debootstrap's stand-in: records its call, says some stages, makes a busybox root.
echo "args $*" >> "$VR_FAKE_LOG"
ns() { readlink "/proc/self/ns/$1"; }
echo "as $(id -u) container=${container-} mnt=$(ns mnt) pid=$(ns pid)" >> "$VR_FAKE_LOG"
if [ -n "${VR_FAKE_FAIL-}" ]; then
    echo "I: Retrieving InRelease"
    echo "E: Failed getting release file $4/dists/$2/Release"
    exit 1
fi
for stage in "Retrieving InRelease" "Validating Packages" "Installing core packages"; do
    echo "I: $stage..."; sleep 0.15
done
cp -R "$VR_FAKE_TREE"/. "$3" || exit 1
mkdir -p "$3/var/spool/daemons" && echo x > "$3/var/spool/daemons/f" && chown -R 1:1 "$3/var/spool/daemons"
[ -z "${VR_FAKE_HANG-}" ] || { sleep 3011; exit 1; }  # (killed by the test)
echo "I: Base system installed successfully."
"""


class Debian:
    """A project with the stand-in debootstrap first on PATH and a cache of its own."""

    def __init__(self, project: Project) -> None:
        self.project = project
        base = project.path
        tools = base / "tools"
        tools.mkdir()
        (tools / "debootstrap").write_text(FAKE)
        (tools / "debootstrap").chmod(0o755)
        tree = build_busybox_root(base / "tree")
        subprocess.run(["chmod", "-R", "a+rX", str(base / "tree")], check=True)
        self.log, self.cache = base / "calls.log", base / "cache"  # the cache: made by venvroot
        self.log.touch()
        if project.who.user is not None:
            os.chown(self.log, project.who.uid, project.who.gid)
        project.environ.update(
            PATH=f"{tools}:{project.environ['PATH']}",
            XDG_CACHE_HOME=str(self.cache),
            VR_FAKE_LOG=str(self.log),
            VR_FAKE_TREE=str(tree),
        )
        project.environ.pop("VENVROOT_DEBIAN_MIRROR", None)

    def calls(self) -> list[list[str]]:
        return [line.split() for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def roots(self) -> list[str]:
        found = self.cache / "venvroot/roots"
        return sorted(p.name for p in found.iterdir()) if found.is_dir() else []


def hidden(
    project: Project, hide: list[str], *args: str | Path, **environ: str
) -> subprocess.CompletedProcess:
    """``venvroot ARGS`` as the project's user, with each of ``hide`` covered by /dev/null in a
    mount namespace of the test's (what the user has is gone, nothing else changes)."""
    need("unshare")
    script = "".join(f"mount --bind /dev/null {p} && " for p in hide) + 'exec "$@"'
    argv = ["unshare", "-m", "sh", "-c", script, "sh", *project.who.argv([*VENVROOT, *map(str, args)])]
    env = {**project.environ, **environ}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=120)


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture(name="debian")
def debian_fixture(project: Project) -> Debian:
    return Debian(project)


@pytest.fixture(params=["root", "user"])
def who(request: pytest.FixtureRequest) -> Who:
    if request.param == "root":
        if os.getuid() != 0:
            pytest.skip("needs root")
        return Who("root", None)
    for tool in ("newuidmap", "newgidmap"):
        need(tool)
    return Who("user", request.getfixturevalue("unprivileged_user"))


def test_a_debian_root_is_built_once_per_user_with_its_owners(project: Project, debian: Debian) -> None:
    rootless = project.who.user is not None
    environ = {**project.environ, "VENVROOT_DEBIAN_MIRROR": "http://m.invalid/d"}
    first = project.venvroot(project.path / "E1", "--root", "debian:bookworm", "--user", "root",
                             "--without-pip", env=environ)  # fmt: skip
    assert first.returncode == 0, first.stderr
    (args, how) = debian.calls()
    assert args[1:3] == ["--variant=minbase", "bookworm"] and args[4] == "http://m.invalid/d"
    assert Path(args[3]).parent.name.startswith(".build-debian-bookworm-")
    container = "container=lxc" if rootless else "container="
    assert how[1:3] == ["0", container]  # root (of the user's ranges, rootless), no mknod rootless
    assert how[3] != f"mnt={os.readlink('/proc/self/ns/mnt')}"  # its mounts never reach the host
    assert how[4] != f"pid={os.readlink('/proc/self/ns/pid')}"  # nor its processes the create's end
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    cached = f"debian-bookworm-{arch}.tar"
    assert debian.roots() == [f"debian-bookworm-{arch}.lock", cached]  # no build tree, no log
    with tarfile.open(debian.cache / "venvroot/roots" / cached) as tar:
        assert (tar.getmember("./var/spool/daemons/f").uid, tar.getmember("./bin/busybox").uid) == (1, 0)
    show = ["run", project.path / "E1", "--", "stat", "-c", "%u:%g", "/var/spool/daemons/f", "/bin/busybox"]
    out = project.venvroot(*show)
    assert out.stdout.split() == ["1:1", "0:0"], out.stderr
    path = project.venvroot("run", project.path / "E1", "--", "sh", "-c", 'echo "$PATH"')
    assert path.stdout.endswith(":/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/games:/usr/games\n")  # Debian's

    # The next env of the suite is unpacked from the cache: no debootstrap runs (none is there).
    second = hidden(project, ["/usr/sbin/debootstrap", str(project.path / "tools/debootstrap")],
                    project.path / "E2", "--root", "debian:bookworm", "--without-pip")  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert len(debian.calls()) == 2
    show[1] = project.path / "E2"
    out = project.venvroot(*show)
    assert out.stdout.split() == ["1:1", "0:0"], out.stderr
    for env in ("E1", "E2"):
        destroyed = project.venvroot("destroy", project.path / env)
        assert destroyed.returncode == 0, destroyed.stderr
    assert sorted(p.name for p in project.path.iterdir()) == ["cache", "calls.log", "tools", "tree"]
    assert cached in debian.roots()


def test_a_killed_build_leaves_no_process_and_the_next_build_cleans_up(
    project: Project, debian: Debian
) -> None:
    """kill -9 of a create while debootstrap runs (its tree already holds a file of a subordinate
    id): debootstrap and what it started end with it, and the next create builds afresh."""
    hang = {**project.environ, "VR_FAKE_HANG": "1"}
    create = [*VENVROOT, str(project.path / "E1"), "--root", "debian:bookworm", "--without-pip"]
    proc = project.who.popen(create, env=hang, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: processes_with("sleep 3011") != [], timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert wait_for(lambda: processes_with("sleep 3011") == [], timeout=10)
    assert [n for n in debian.roots() if n.startswith(".build-")] != []  # the killed build's tree
    again = project.venvroot(project.path / "E2", "--root", "debian:bookworm", "--without-pip")
    assert again.returncode == 0, again.stderr
    assert len(debian.calls()) == 4
    assert [n for n in debian.roots() if n.startswith(".build-") or n.endswith(".log")] == []


def apt_etc(base: Path) -> Path:
    """An /etc/apt with sources of every kind apt reads, and some it does not."""
    etc = base / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://ports.example/ubuntu jammy main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://one.example/debian trixie main\n"
    )
    (etc / "sources.list.d/a.sources").write_text(
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        "# a comment\nTypes: deb deb-src\nURIs: http://two.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    (etc / "sources.list.d/z.list.disabled").write_text("deb http://never.example/debian sid main\n")
    subprocess.run(["chmod", "-R", "a+rX", str(etc)], check=True)
    return etc


@pytest.mark.parametrize(
    ("suite", "chosen"),
    [
        ("bookworm", "http://two.example/debian"),  # the source that serves the suite (deb822)
        ("trixie", "http://one.example/debian"),  # a one-line source with options
        ("sid", "http://one.example/debian"),  # none serves it: the first Debian archive
        ("stable", "http://mirror.example/debian"),  # $VENVROOT_DEBIAN_MIRROR first
    ],
)
def test_debootstrap_uses_the_mirror_of_the_machines_apt_and_a_failure_leaves_nothing(
    project: Project, debian: Debian, suite: str, chosen: str
) -> None:
    etc = apt_etc(project.path)
    environ = {"VR_FAKE_FAIL": "1", **({"VENVROOT_DEBIAN_MIRROR": chosen} if suite == "stable" else {})}
    script = f"mount --bind {etc} /etc/apt && " + 'exec "$@"'
    argv = ["unshare", "-m", "sh", "-c", script, "sh",
            *project.who.argv([*VENVROOT, str(project.path / "E"), "--root", f"debian:{suite}"])]  # fmt: skip
    environ = {**project.environ, **environ}
    done = subprocess.run(argv, capture_output=True, text=True, env=environ, cwd="/", timeout=120)
    assert done.returncode == 1
    assert [call[4] for call in debian.calls()[::2]] == [chosen]
    line = one_line(done)
    assert line.startswith(
        f"venvroot: error: --root debian:{suite}: debootstrap failed (Failed getting release file "
    )
    assert f"its log: {debian.cache}/venvroot/roots/debian-{suite}-" in line and line.endswith(".log")
    assert not (project.path / "E").exists()
    assert [n for n in debian.roots() if not n.endswith((".lock", ".log"))] == []  # no tarball, no tree


def test_no_debootstrap_no_range_or_a_bad_suite_is_one_line_and_nothing_is_made(
    project: Project, debian: Debian
) -> None:
    env = project.path / "E"
    tools = [str(project.path / "tools/debootstrap"), "/usr/sbin/debootstrap"]
    no_tool = hidden(project, tools, env, "--root", "debian:bookworm")
    assert no_tool.returncode == 1
    assert one_line(no_tool) == (
        "venvroot: error: --root debian:bookworm needs debootstrap, which is not installed; an administrator "
        "can install it (Debian: `apt-get install debootstrap`), or give a tarball or directory root"
    )
    for suite in ("", "Book/worm", "-x"):
        bad = project.venvroot(env, "--root", f"debian:{suite}")
        assert (
            bad.returncode == 2
            and "give a Debian suite or codename, e.g. --root debian:bookworm" in one_line(bad)
        )
    if project.who.user is not None:
        no_range = hidden(project, ["/etc/subuid", "/etc/subgid"], env, "--root", "debian:bookworm")
        assert no_range.returncode == 1
        name = project.who.user.pw_name
        assert one_line(no_range).startswith(
            f"venvroot: error: --root debian:bookworm cannot be built without subordinate ids: {name} has no "
            "subordinate ids in /etc/subuid and /etc/subgid"
        )
        assert "usermod --add-subuids " in no_range.stderr
    assert not env.exists() and debian.calls() == [] and debian.roots() == []


def test_a_terminal_shows_debootstraps_stages_on_one_line(project: Project, debian: Debian) -> None:
    argv = project.who.argv(
        [*VENVROOT, str(project.path / "E"), "--root", "debian:bookworm", "--without-pip"]
    )
    child = pexpect.spawn(argv[0], argv[1:], cwd="/", env=project.environ, encoding="utf-8", timeout=60,
                          dimensions=(24, 200))  # fmt: skip
    out = child.read()
    child.close()
    assert child.exitstatus == 0, out
    what = "building debian:bookworm with debootstrap: "
    drawn = [p[len(what) :].rstrip() for p in re.split(r"[\r\n]", out) if p.startswith(what)]
    assert drawn[0] == "starting" and "Validating Packages" in drawn and drawn[-1] == "packing the root, done"
    assert "I: " not in out  # debootstrap's own lines go to its log only
    quiet = project.venvroot(project.path / "E2", "--root", "debian:bookworm", "--without-pip")
    assert quiet.returncode == 0 and quiet.stderr == ""  # off a terminal (and cached): nothing


@pytest.mark.network
def test_a_real_debian_root_installs_packages(project: Project) -> None:
    """debootstrap from the machine's mirror, as root and as the unprivileged user with a range;
    then apt-get update and install inside, the package's program through a linked shim, and
    destroy."""
    cache = project.path / "cache"
    cache.mkdir()
    if project.who.user is not None:
        os.chown(cache, project.who.uid, project.who.gid)
    project.environ["XDG_CACHE_HOME"] = str(cache)
    start = time.monotonic()
    env = project.path / "E"
    made = project.venvroot(env, "--root", "debian:bookworm", "--user", "root", "--without-pip", timeout=900)
    assert made.returncode == 0, made.stderr
    built = time.monotonic() - start
    start = time.monotonic()
    made = project.venvroot(project.path / "E2", "--root", "debian:bookworm", "--without-pip", timeout=300)
    assert made.returncode == 0, made.stderr
    cached = time.monotonic() - start
    print(
        f"\nbuilt debian:bookworm in {built:.1f} s; the next env from the cache in {cached:.1f} s",
        file=sys.stderr,
    )
    done = project.venvroot(
        "run", env, "--", "sh", "-c", "apt-get update -q && apt-get install -y -q sl", timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    owner = project.venvroot("run", env, "--", "stat", "-c", "%U", "/var/cache/apt/archives/partial")
    assert owner.stdout == "_apt\n", owner.stderr
    assert project.venvroot("link", env, "sl").returncode == 0  # /usr/games is on Debian's PATH
    assert project.run([env / "bin/sl", "--help"]).returncode in (0, 1)  # it ran inside: sl takes no --help
    for name in ("E", "E2"):
        assert project.venvroot("destroy", project.path / name).returncode == 0
    assert sorted(p.name for p in project.path.iterdir()) == ["cache"]
    shutil.rmtree(cache, ignore_errors=True)
