"""Containment every way into an ns environment gives alike, as root and as the unprivileged user:
a program inside cannot push keystrokes into the caller's terminal (TIOCSTI, TIOCLINUX), and
NoNewPrivs is the same on every path (1 rootless, 0 as root). The ways in: the Python starter,
the compiled starter's cold start and its --join, and the Python join of `venvroot run`."""

from __future__ import annotations

from pathlib import Path

import pexpect
import pytest
from ns_backend_helpers import VENVROOT, Project, project_fixture  # noqa: F401 - the project fixture
from ns_helpers import who_fixture  # noqa: F401 - the who fixture
from test_ns_backend_cold import record
from test_ns_starter import exe, start_file, starter_fixture, stop  # noqa: F401 - the starter fixture

PROBE = """\
import fcntl, termios
for name in ("TIOCSTI", "TIOCLINUX"):
    try:
        fcntl.ioctl(0, getattr(termios, name, 0x541C), b"x")
        print(name, "allowed")
    except OSError as exc:
        print(name, "errno", exc.errno)
with open("/proc/self/status") as status:
    print([line.split()[1] for line in status if line.startswith("NoNewPrivs:")][0], "nnp")
"""


def in_a_terminal(project: Project, argv: list[str]) -> str:
    """Run ``argv`` as the test's user with a terminal on stdin, stdout and stderr; its output."""
    full = project.who.argv([str(a) for a in argv])
    child = pexpect.spawn(full[0], full[1:], cwd=str(project.path), env=project.environ, timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    out = child.before.decode(errors="replace").replace("\r", "")
    assert child.exitstatus == 0, out
    return out


@pytest.mark.parametrize("way", ["python start", "compiled start", "compiled join", "python join"])
def test_no_keystrokes_into_the_callers_terminal_and_one_nnp(
    project: Project, starter: str, way: str
) -> None:
    env = project.create("env")
    probe = project.path / "probe.py"
    probe.write_text(PROBE)
    probe.chmod(0o644)
    python = [env / "bin" / "python", probe]
    assert project.run([env / "bin" / "python", "-c", "pass"]).returncode == 0  # the start file
    stop(project, env)
    if way == "python start":
        start_file(env).unlink()
    if way in ("compiled join", "python join"):
        sleeper = project.who.popen([str(env / "bin" / "python"), "-c", "import time; time.sleep(30)"])
    try:
        if way == "python join":
            out = in_a_terminal(project, [*VENVROOT, "run", env, "--", "python", probe])
        else:
            out = in_a_terminal(project, python)
        found = record(env)
        assert found is not None
        assert (exe(found[0]) == starter) == (way != "python start")
    finally:
        if way in ("compiled join", "python join"):
            sleeper.kill()
            sleeper.wait()
    # EPERM: the filter, not a kernel without TIOCSTI (EIO) or a missing terminal (ENOTTY)
    assert "TIOCSTI errno 1\n" in out and "TIOCLINUX errno 1\n" in out, out
    assert f"{1 if project.who.user else 0} nnp" in out, out


def test_the_compiled_and_python_filters_are_one(starter: str) -> None:
    """The Python filter, instruction for instruction, is the one starter.c (and the docker agent)
    installs, from ttyfilter.h."""
    import re

    from venvroot.ns import seccomp

    source = (Path(starter).parent / "ttyfilter.h").read_text()
    body = source[source.index("struct sock_filter code[] = {") : source.index("struct sock_fprog prog")]
    jumps = [(int(jt), int(jf)) for jt, jf in re.findall(r"BPF_JUMP\([^,]+, [^,]+, (\d+), (\d+)\)", body)]
    code = seccomp.program()
    assert code is not None
    assert [(jt, jf) for c, jt, jf, _ in code if c == 0x15] == jumps
    assert len(code) == body.count("BPF_STMT(") + body.count("BPF_JUMP(")
