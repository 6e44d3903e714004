"""`venvroot shell PATH`: the user's own shell (found by shellingham) starts with the env activated."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from conftest import need

OUTER = {
    "bash": ["--norc", "--noprofile"],
    "zsh": ["-f"],
    "fish": ["--no-config"],
    "nu": ["--no-config-file"],
}
# How each outer shell runs venvroot and prints $VIRTUAL_ENV (nu's syntax is its own).
# The printed tag is typed in two halves so that the shell's echo of the line never matches.
RUN = {"nu": '^{venvroot} shell "{env}"'}
SHOW = {"nu": 'print ("{a}" + "{b}=[" + ($env.VIRTUAL_ENV? | default "") + "]")'}
READY = {"nu": r"\x1b\[\?25h"}  # the prompt drawn, the cursor shown again
SH_SHOW = 'echo "{a}""{b}=[$VIRTUAL_ENV]"'


@pytest.mark.parametrize("shell", sorted(OUTER))
def test_shell_starts_activated_and_returns(tmp_path: Path, shell: str) -> None:
    path = need(shell)
    env_dir = tmp_path / "my env's"
    subprocess.run([sys.executable, "-m", "venvroot", env_dir, "-q"], check=True)
    home = tmp_path / "home"
    home.mkdir()
    # fish's first start in a new HOME builds completions from man pages in the background: seconds
    (home / ".local" / "share" / "fish" / "generated_completions").mkdir(parents=True)
    venvroot = f"{sys.executable} -m venvroot"
    child = pexpect.spawn(
        "/usr/bin/env",
        ["-i", f"HOME={home}", "TERM=dumb", "PATH=/usr/bin:/bin", f"SHELL={path}", path, *OUTER[shell]],
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=20,
    )
    ready = READY.get(shell)  # nu drops what is typed before its line editor is up

    def type_line(line: str) -> None:
        if ready:
            expect(child, ready)
        child.sendline(line)

    type_line(RUN.get(shell, "{venvroot} shell {env}").format(venvroot=venvroot, env=quoted(shell, env_dir)))
    if ready:
        expect(child, r"\(my env's\) ")  # the activated shell's prompt
    type_line(SHOW.get(shell, SH_SHOW).format(a="V", b="E"))
    expect(child, r"VE=\[(.*)\]\r?\n")
    assert child.match.group(1) == str(env_dir)
    type_line("exit")
    type_line(SHOW.get(shell, SH_SHOW).format(a="OU", b="T"))
    expect(child, r"OUT=\[(.*)\]\r?\n")
    assert child.match.group(1) == ""
    type_line("exit")
    expect(child, pexpect.EOF)


def expect(child: pexpect.spawn, pattern: object) -> None:
    """nu's line editor asks the terminal where the cursor is and waits: answer on the way."""
    while child.expect([pattern, "\x1b\\[6n"]) == 1:
        child.send("\x1b[1;1R")


def quoted(shell: str, path: Path) -> str:
    return str(path) if shell == "nu" else shlex.quote(str(path))  # nu: inside RUN's double quotes


def test_shell_refuses_a_non_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "venvroot", "shell", tmp_path], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "not a venvroot environment" in result.stderr
