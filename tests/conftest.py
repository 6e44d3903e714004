"""Shared fixtures. Tools a test needs may be missing on a laptop (skip), never under CI=true (fail)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_USER = os.environ.get("VENVROOT_TEST_USER", "venvroot-test")
NORANGE_USER = os.environ.get("VENVROOT_TEST_NORANGE_USER", "venvroot-norange")  # no /etc/subuid entry


def _restore_terminal_signals() -> None:
    """Give the programs under test the dispositions a terminal would.

    A suite started in the background (``cmd &`` in a script, ``nohup``) inherits SIGINT or
    SIGHUP ignored, every child inherits that through exec, and a non-interactive sh can then
    neither trap nor be killed by it: the signal tests would test the launcher, not venvroot.
    """
    for name in ("SIGINT", "SIGQUIT", "SIGHUP", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH"):
        signum = getattr(signal, name)
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)


_restore_terminal_signals()


def _one_copy_of_the_code() -> None:
    """Every test, in this process or in a subprocess, runs the installed venvroot, and that copy is
    this checkout's: ``python -m pytest`` puts the checkout on sys.path, which would otherwise let
    tests that import venvroot use the checkout while the commands they run use the installed copy
    (with its compiled helpers), and an edit without reinstalling would silently test old code."""
    checkout = Path(__file__).resolve().parent.parent
    # A child Python (`python -m venvroot`, `python -c`) started from the checkout would put it first
    # on its sys.path and run its uncompiled copy: without the agent or starter, shims take other
    # paths than the user's. Python >= 3.11 leaves the cwd out when asked.
    os.environ["PYTHONSAFEPATH"] = "1"
    sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != checkout]
    import venvroot

    installed = Path(venvroot.__file__).resolve().parent
    if installed == checkout / "venvroot":  # an editable install: the checkout is the copy
        return
    differ = [
        str(source.relative_to(checkout))
        for source in sorted((checkout / "venvroot").rglob("*.*"))
        if "__pycache__" not in source.parts
        and source.suffix != ".pyc"
        and (
            not (installed / source.relative_to(checkout / "venvroot")).is_file()
            or (installed / source.relative_to(checkout / "venvroot")).read_bytes() != source.read_bytes()
        )
    ]
    if differ:
        pytest.exit(
            f"the installed venvroot ({installed}) is not this checkout's ({', '.join(differ[:3])} differ): "
            f"reinstall it with `{sys.executable} -m pip install {checkout}`",
            returncode=4,
        )


_one_copy_of_the_code()


def missing(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where every tool must be present."""
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def need(tool: str) -> str:
    """Return the path of ``tool`` or skip/fail."""
    path = shutil.which(tool)
    if path is None:
        missing(f"{tool} is not installed")
    return path  # type: ignore[return-value]


def _test_account(name: str) -> pwd.struct_passwd:
    """The account ``name`` (made by .ci/setup), checked to run this interpreter with venvroot."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        missing(f"no user {name!r}; .ci/setup creates it")
    probe = subprocess.run(
        ["runuser", "-u", name, "--", sys.executable, "-c", "import venvroot"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        missing(f"{name} cannot run {sys.executable} with venvroot: {probe.stderr.strip()}")
    return entry


@pytest.fixture(scope="session")
def unprivileged_user() -> pwd.struct_passwd:
    """An unprivileged account that can run this interpreter (created by .ci/setup)."""
    if os.getuid() != 0:
        return pwd.getpwuid(os.getuid())
    return _test_account(TEST_USER)


@pytest.fixture(scope="session")
def rangeless_user() -> pwd.struct_passwd:
    """A second unprivileged account, with no subordinate ids in /etc/subuid or /etc/subgid."""
    if os.getuid() != 0:
        pytest.skip("needs root (to run as the second test user)")
    entry = _test_account(NORANGE_USER)
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            if any(line.split(":")[0] in (NORANGE_USER, str(entry.pw_uid)) for line in f):
                missing(f"{NORANGE_USER} has a range in {path}; .ci/setup gives it none")
    return entry


def as_user(user: pwd.struct_passwd, argv: list[str]) -> list[str]:
    """Prefix ``argv`` so that it runs as ``user`` (a no-op when we already are that user)."""
    if os.getuid() == user.pw_uid:
        return argv
    return ["runuser", "-u", user.pw_name, "--", *argv]


@pytest.fixture
def shared_tmp(unprivileged_user: pwd.struct_passwd) -> Iterator[Path]:
    """A temporary directory owned by the unprivileged user (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="venvroot-test-"))
    os.chown(path, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def build_busybox_root(dest: Path) -> Path:
    """A minimal root: busybox-static with its applets, /etc/passwd and empty mount points."""
    busybox = shutil.which("busybox")
    if busybox is None or "static" not in subprocess.run(
        ["file", "-L", busybox], capture_output=True, text=True
    ).stdout + _static_hint(busybox):
        missing("busybox-static is not installed")
    for d in ("bin", "etc", "dev", "proc", "sys", "tmp", "root", "home", "usr/bin", "sbin"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    (dest / "etc" / "hostname").write_text("busybox-root\n")
    return dest


def _static_hint(path: str) -> str:
    # `file` may be absent; ldd says "not a dynamic executable" for static binaries.
    out = subprocess.run(["ldd", path], capture_output=True, text=True)
    return "static" if out.returncode != 0 or "not a dynamic" in out.stdout + out.stderr else ""


@pytest.fixture(scope="session")
def busybox_root() -> Iterator[Path]:
    """A busybox root readable by everyone, shared by the session's tests (treat as read-only)."""
    base = Path(tempfile.mkdtemp(prefix="venvroot-bbroot-"))
    base.chmod(0o755)
    root = build_busybox_root(base / "root")
    yield root
    shutil.rmtree(base, ignore_errors=True)
