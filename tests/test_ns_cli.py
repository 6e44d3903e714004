"""``venvroot chroot`` used as chroot(1) would be: as root and rootless, on a real busybox root."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need
from ns_helpers import Who, chroot_cli, own_root, who_fixture  # noqa: F401 - fixture

MODES = ["--pid", "--no-pid"]


def test_arguments_pass_through_unchanged(who: Who, busybox_root: Path) -> None:
    args = ["a b", 'say "hi"', "it's", "", "(paren)", "new\nline", "$HOME", "*", "--user", "-B"]
    script = 'for a in "$@"; do printf "[%s]\\n" "$a"; done'
    result = who.run(chroot_cli(str(busybox_root), "/bin/sh", "-c", script, "sh", *args))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"[{a}]\n" for a in args)


def test_stdin_pipes_through(who: Who, busybox_root: Path) -> None:
    data = "".join(f"line {i} with some text\n" for i in range(5000))  # larger than a pipe buffer
    result = who.run(chroot_cli(str(busybox_root), "/bin/sh", "-c", "cat; echo end"), input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data + "end\n"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("script", "status"),
    [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
        ("kill -SEGV $$", 139),
    ],
)
def test_exit_status_is_the_programs(
    who: Who, busybox_root: Path, mode: str, script: str, status: int
) -> None:
    # Without a PID namespace venvroot becomes the program (execve), so a death by signal reaches
    # the parent as such; with one, venvroot exits 128+N. A shell reports both as 128+N.
    result = who.run(chroot_cli(mode, str(busybox_root), "/bin/sh", "-c", script))
    assert _shell_status(result.returncode) == status, result.stderr
    if mode == "--pid":
        assert result.returncode == status
    shell = who.run(
        [
            "/bin/sh",
            "-c",
            '"$@"; echo "status=$?"',
            "sh",
            *chroot_cli(mode, str(busybox_root), "/bin/sh", "-c", script),
        ]
    )
    assert shell.stdout.endswith(f"status={status}\n")


def _shell_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@pytest.mark.parametrize("mode", MODES)
def test_missing_command_is_127_naming_the_root(who: Who, busybox_root: Path, mode: str) -> None:
    result = who.run(chroot_cli(mode, str(busybox_root), "/usr/bin/no-such-program", "x"))
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1
    assert "no-such-program" in result.stderr and str(busybox_root) in result.stderr


def test_unexecutable_command_is_126(who: Who, busybox_root: Path) -> None:
    result = who.run(chroot_cli(str(busybox_root), "/etc/passwd"))
    assert result.returncode == 126
    assert "/etc/passwd" in result.stderr and str(busybox_root) in result.stderr


def test_default_command_is_shell_or_bin_sh(who: Who, busybox_root: Path) -> None:
    env = dict(os.environ, SHELL="/bin/ash")  # a busybox applet: present in the root
    result = who.run(chroot_cli(str(busybox_root)), input="echo shell=$0\nexit 5\n", env=env)
    assert result.returncode == 5
    assert "shell=/bin/ash" in result.stdout
    env["SHELL"] = "/usr/bin/zsh-not-in-this-root"
    result = who.run(chroot_cli(str(busybox_root)), input="echo shell=$0\n", env=env)
    assert result.returncode == 0
    assert "shell=/bin/sh" in result.stdout


def test_user_mapping(who: Who, busybox_root: Path) -> None:
    root = str(busybox_root)
    assert who.run(chroot_cli(root, "/bin/id", "-u")).stdout == "0\n"  # root inside by default
    mine = who.run(chroot_cli("--user", "self", root, "/bin/sh", "-c", "id -u; id -g"))
    assert mine.stdout == f"{who.uid}\n{who.gid}\n", mine.stderr
    numeric = who.run(chroot_cli("--user", "1234:4321", root, "/bin/sh", "-c", "id -u; id -g"))
    assert numeric.stdout == "1234\n4321\n", numeric.stderr


def test_hostname_and_domain(who: Who, busybox_root: Path) -> None:
    result = who.run(
        chroot_cli(
            "--hostname",
            "box.example.org",
            str(busybox_root),
            "/bin/sh",
            "-c",
            "hostname; cat /proc/sys/kernel/domainname",
        )
    )
    assert result.stdout == "box\nexample.org\n", result.stderr


@pytest.mark.parametrize("mode", MODES)
def test_pid_namespace(who: Who, busybox_root: Path, mode: str) -> None:
    result = who.run(chroot_cli(mode, str(busybox_root), "/bin/sh", "-c", "echo $$"))
    pid = int(result.stdout)
    if mode == "--pid":
        assert pid == 2  # the program runs under a small init, never as PID 1
    else:
        assert pid > 2


def test_network_namespace_has_only_loopback_up(who: Who, busybox_root: Path) -> None:
    result = who.run(
        chroot_cli(
            "--net", str(busybox_root), "/bin/sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"
        )
    )
    assert result.returncode == 0, result.stderr
    names, flags = result.stdout.split()[:-1], result.stdout.split()[-1]
    assert names == ["lo"]
    assert int(flags, 16) & 0x1  # IFF_UP


def test_binds_readonly_and_no_mounts(who: Who, busybox_root: Path, shared_tmp: Path) -> None:
    data = shared_tmp / "data"
    data.mkdir()
    (data / "file").write_text("from the host\n")
    who.chown(data)
    root = str(busybox_root)
    result = who.run(
        chroot_cli(
            "-B",
            f"{data}:/tmp/data",
            root,
            "/bin/sh",
            "-c",
            "cat /tmp/data/file; echo written > /tmp/data/new",
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from the host\n"
    assert (data / "new").read_text() == "written\n"
    result = who.run(chroot_cli("--ro", f"{data}:/tmp/data", root, "/bin/sh", "-c", "echo x > /tmp/data/ro"))
    assert result.returncode != 0
    assert not (data / "ro").exists()
    result = who.run(chroot_cli("--no-mounts", root, "/bin/ls", "/proc", "/dev"))
    assert result.returncode == 0
    assert result.stdout.split() == ["/dev:", "/proc:"]  # empty: nothing mounted


def test_skip_chdir_keeps_the_current_directory(who: Who, busybox_root: Path, shared_tmp: Path) -> None:
    (shared_tmp / "host-file").write_text("x")
    result = who.run(chroot_cli("--skip-chdir", str(busybox_root), "/bin/ls"), cwd=shared_tmp)
    assert result.stdout.split() == ["host-file"]
    result = who.run(chroot_cli(str(busybox_root), "/bin/pwd"), cwd=shared_tmp)
    assert result.stdout == "/\n"


SIGNALS = ["INT", "HUP", "QUIT", "USR1", "USR2", "WINCH", "TERM"]


@pytest.mark.parametrize("mode", MODES)
def test_signals_reach_the_program(who: Who, busybox_root: Path, mode: str) -> None:
    traps = "; ".join(f"trap 'echo got {s}' {s}" for s in SIGNALS[:-1])
    script = (
        f"{traps}; trap 'echo got TERM; exit 42' TERM; echo ready; "
        "i=0; while [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo timeout"
    )
    proc = _sh_in_session(who, busybox_root, mode, script)
    try:
        assert _line(proc) == "ready"
        for name in SIGNALS:
            os.kill(proc.pid, getattr(signal, f"SIG{name}"))
            assert _line(proc) == f"got {name}"
        assert proc.wait(timeout=10) == 42
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("mode", MODES)
def test_signals_in_a_row_all_arrive(who: Who, busybox_root: Path, mode: str) -> None:
    """A waiting venvroot forwards every signal, even one that lands as it goes back to waiting
    (a blocking waitpid would hold a signal's forwarder until the program ended)."""
    script = "n=0; trap 'n=$((n+1)); echo $n' USR1; echo ready; while :; do sleep 0.01; done"
    proc = _sh_in_session(who, busybox_root, mode, script)
    try:
        assert _line(proc) == "ready"
        for n in range(1, 101):
            os.kill(proc.pid, signal.SIGUSR1)
            assert _line(proc) == str(n)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("mode", MODES)
def test_signal_death_is_128_plus_n(who: Who, busybox_root: Path, mode: str) -> None:
    proc = _sh_in_session(who, busybox_root, mode, "echo ready; exec sleep 20")
    try:
        assert _line(proc) == "ready"
        time.sleep(0.1)  # let sh exec sleep, which has no handlers
        os.kill(proc.pid, signal.SIGTERM)
        status = proc.wait(timeout=10)
        # (without a PID namespace venvroot may have become the program itself: then -15)
        assert _shell_status(status) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def _sh_in_session(who: Who, root: Path, mode: str, script: str) -> subprocess.Popen:
    """``sh -c SCRIPT`` through venvroot chroot, in a session of its own, its output piped."""
    return who.popen(
        chroot_cli(mode, str(root), "/bin/sh", "-c", script),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _line(proc: subprocess.Popen, timeout: float = 10) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from the program in time"
    return proc.stdout.readline().rstrip("\n")  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
def test_interactive_shell_gets_the_terminal(who: Who, busybox_root: Path, mode: str) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = who.argv(chroot_cli(mode, str(busybox_root), "/bin/sh", "-i"))
    child = pexpect.spawn(
        argv[0], argv[1:], env=dict(os.environ, PS1="PROMPT> "), encoding="utf-8", timeout=10
    )
    try:
        child.expect("PROMPT> ")
        child.sendline("sleep 30; echo after-sleep")
        time.sleep(0.5)
        child.sendintr()  # ^C: must kill the foreground sleep, not the shell
        child.expect("PROMPT> ")
        assert "\nafter-sleep" not in child.before  # (the echoed command line has it too)
        child.sendline("echo alive-$?")
        child.expect("alive-130")
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 7


# -- clear errors -------------------------------------------------------------------------------------


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 125, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("venvroot chroot: ")
    return result.stderr


def test_missing_root(who: Who, shared_tmp: Path) -> None:
    err = _one_line_error(who.run(chroot_cli(str(shared_tmp / "nope"), "/bin/true")))
    assert str(shared_tmp / "nope") in err and "no such directory" in err


def test_root_that_is_a_file(who: Who, shared_tmp: Path) -> None:
    (shared_tmp / "file").write_text("")
    err = _one_line_error(who.run(chroot_cli(str(shared_tmp / "file"), "/bin/true")))
    assert "not a directory" in err


def test_missing_mount_source(who: Who, busybox_root: Path) -> None:
    err = _one_line_error(who.run(chroot_cli("-B", "/no/such/source:/mnt", str(busybox_root), "/bin/true")))
    assert "/no/such/source" in err and "does not exist" in err


def test_usage_errors(who: Who, busybox_root: Path) -> None:
    assert "unknown option" in _one_line_error(who.run(chroot_cli("--bogus", str(busybox_root))))
    assert "missing ROOT" in _one_line_error(who.run(chroot_cli()))
    assert "needs a value" in _one_line_error(who.run(chroot_cli("--hostname")))
    assert "no user 'nobody-here'" in _one_line_error(
        who.run(chroot_cli("--user", "nobody-here", str(busybox_root), "/bin/true"))
    )


def test_help(busybox_root: Path) -> None:
    result = subprocess.run(chroot_cli("--help"), capture_output=True, text=True)
    assert result.returncode == 0
    assert "ROOT [COMMAND [ARG...]]" in result.stdout and "--rbind" in result.stdout


def test_user_namespaces_disabled_names_the_setting(unprivileged_user, busybox_root: Path) -> None:
    bwrap = need("bwrap")
    sandbox = [
        bwrap,
        "--unshare-user",
        "--disable-userns",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    who = Who("user", unprivileged_user if os.getuid() == 0 else None)
    probe = who.run([*sandbox, "/bin/true"])
    if probe.returncode != 0:
        pytest.skip(f"bwrap --disable-userns unavailable: {probe.stderr.strip()}")
    err = _one_line_error(who.run([*sandbox, *chroot_cli(str(busybox_root), "/bin/true")]))
    assert "user.max_user_namespaces" in err


def test_root_without_capabilities_gets_a_clear_error(busybox_root: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to drop root's capabilities")
    bwrap = need("bwrap")
    sandbox = [
        bwrap,
        "--unshare-user",
        "--uid",
        "0",
        "--cap-drop",
        "ALL",
        "--disable-userns",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    err = _one_line_error(
        subprocess.run(
            [*sandbox, *chroot_cli(str(busybox_root), "/bin/true")], capture_output=True, text=True
        )
    )
    assert "CAP_SYS_ADMIN" in err


def test_runs_as_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "venvroot.ns.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "venvroot" in result.stdout
