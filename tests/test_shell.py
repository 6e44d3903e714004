"""`venvroot shell PATH`: the user's own shell (found by shellingham) starts with the env activated."""

from __future__ import annotations

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
}


@pytest.mark.parametrize("shell", sorted(OUTER))
def test_shell_starts_activated_and_returns(tmp_path: Path, shell: str) -> None:
    path = need(shell)
    env_dir = tmp_path / "my env"
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
    child.sendline(f"{venvroot} shell '{env_dir}'")
    child.sendline('echo "V""E=[$VIRTUAL_ENV]"')
    child.expect(r"VE=\[(.*)\]\r?\n")
    assert child.match.group(1) == str(env_dir)
    child.sendline("exit")
    child.sendline('echo "OU""T=[$VIRTUAL_ENV]"')
    child.expect(r"OUT=\[(.*)\]\r?\n")
    assert child.match.group(1) == ""
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_shell_refuses_a_non_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "venvroot", "shell", tmp_path], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "not a venvroot environment" in result.stderr
