"""Helpers for the ns backend's tests: environments made and used through the real CLI and shims,
as root or as the unprivileged user (``who``), a wheel built from files the test writes, and an
interactive bash (pexpect) to source the real activate script in."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import build_busybox_root, need
from ns_helpers import Who
from wheels import build_wheel

VENVROOT = [sys.executable, "-m", "venvroot"]
PROMPT = "NS-PROMPT> "


def user_environ(who: Who) -> dict[str, str]:
    """The environment ``who`` would have after logging in (HOME, USER, LOGNAME its own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "XDG_RUNTIME_DIR")}
    entry = pwd.getpwuid(who.uid)
    env.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
    return env


class Project:
    """A project directory owned by ``who``, with environments made in it through the CLI."""

    def __init__(self, who: Who, prefix: str = "venvroot-nsb-") -> None:
        self.who = who
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self.path.chmod(0o755)
        if who.user is not None:
            os.chown(self.path, who.uid, who.gid)
        self.environ = user_environ(who)

    def run(self, argv: list[str], cwd: Path | None = None, **kwargs: object) -> subprocess.CompletedProcess:
        kwargs.setdefault("env", self.environ)
        return self.who.run([str(a) for a in argv], cwd=str(cwd or self.path), **kwargs)

    def venvroot(self, *args: str | Path, **kwargs: object) -> subprocess.CompletedProcess:
        return self.run([*VENVROOT, *map(str, args)], **kwargs)

    def create(self, name: str, *options: str | Path) -> Path:
        result = self.venvroot(self.path / name, *options)
        assert result.returncode == 0, result.stderr
        return self.path / name

    def close(self) -> None:
        for env in self.path.iterdir():
            if (env / "venvroot.cfg").is_file():
                self.venvroot("destroy", env)
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture(name="project")
def project_fixture(who: Who) -> Iterator[Project]:
    """A project directory of ``who``'s; its environments are destroyed afterwards."""
    project = Project(who)
    yield project
    project.close()


def own_busybox_root(base: Path, who: Who) -> Path:
    """A busybox root under ``base``, readable by everyone (owned by root, as a system's is)."""
    root = build_busybox_root(base / "root")
    base.chmod(0o755)
    return root


def write_wheel(dest: Path, name: str = "hellovr", version: str = "1.0") -> Path:
    """A wheel with a console script ``hello-vr`` that prints sys.prefix and its arguments and
    exits 3."""
    return build_wheel(dest, name, "hello-vr", "print('hello', sys.prefix, sys.argv[1:])\nreturn 3", version)


class Shell:
    """An interactive bash run as ``who`` in ``cwd``, in a pty."""

    def __init__(self, who: Who, cwd: Path, environ: dict[str, str]) -> None:
        bash = need("bash")
        env = dict(environ, PS1=PROMPT, HISTFILE="/dev/null")
        argv = who.argv([bash, "--norc", "--noprofile"])
        self.child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=env, encoding="utf-8", timeout=60)
        self.child.expect(PROMPT)
        self.run("bind 'set enable-bracketed-paste off' 2>/dev/null")
        self.pid = int(self.run("echo $$").strip())

    def run(self, command: str) -> str:
        """Run ``command``; its output, without the echoed command line and the prompt."""
        self.child.sendline(command)
        self.child.expect(PROMPT)
        lines = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", self.child.before).replace("\r", "").split("\n")
        return "\n".join(lines[1:-1])

    def status(self, command: str) -> tuple[int, str]:
        out = self.run(f'{command}; echo "status=$?"')
        body, _, code = out.rpartition("status=")
        return int(code.strip()), body

    def close(self) -> None:
        self.child.close(force=True)


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def processes_with(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z" and int(name) != os.getpid():
            found.append(int(name))
    return found


def process_tree(pid: int) -> str:
    """``pid`` and its descendants as a failed wait should report them: state, signal masks, where
    each sleeps in the kernel, command line."""
    lines, todo = [], [pid]
    while todo:
        one = todo.pop(0)
        try:
            with open(f"/proc/{one}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{one}/wchan") as f:
                wchan = f.read()
            with open(f"/proc/{one}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
            with open(f"/proc/{one}/task/{one}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            lines.append(f"{one}: gone")
            continue
        keys = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
        masks = " ".join(f"{k}={fields[k].strip()}" for k in keys)
        lines.append(f"{one}: {masks} wchan={wchan} {cmdline}")
    return "\n".join(lines)


def in_environment(env: Path) -> list[int]:
    """Processes that see the env's state covered (they run inside its namespaces)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            entries = os.listdir(f"/proc/{name}/root{env}/.venvroot")
        except OSError:
            continue
        if any(e.startswith("live-") for e in entries):
            found.append(int(name))
    return found


def namespaces_of(pids: list[int]) -> set[int]:
    """The mount namespaces (inode numbers) of ``pids`` still alive."""
    found = set()
    for pid in pids:
        try:
            found.add(os.stat(f"/proc/{pid}/ns/mnt").st_ino)
        except OSError:
            continue
    return found


def host_mounts_mention(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("venvroot: error: "), lines[0]
    return lines[0]


@pytest.fixture(name="bb_root", scope="session")
def bb_root_fixture() -> Iterator[Path]:
    """A busybox root owned by root and readable by all (for --root DIR and tarballs)."""
    base = Path(tempfile.mkdtemp(prefix="venvroot-nsb-root-"))
    try:
        yield own_busybox_root(base, Who("root", None))
    finally:
        shutil.rmtree(base, ignore_errors=True)
