"""The create command line: the quick parser reads plain lines exactly as argparse does, hands
every other line to argparse, and a plain create imports neither argparse nor pathlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from venvroot.cli.commands import dispatch
from venvroot.cli.createargs import quick_parse
from venvroot.cli.parsers import create_parser
from venvroot.env.environment import Environment

PLAIN = [
    ["env"],
    ["-q", "env"],
    ["env", "-q", "-v", "--clear", "--no-vcs-ignore", "--persistent"],
    ["env", "--root", "/srv/root", "--user", "root", "--hostname", "box.example"],
    ["env", "--root=/srv/root", "--prompt=", "--prompt", "", "-p", "python3.11"],
    ["env", "--link", "make", "--link=gcc", "--directory", "/data:/d:rw", "--directory", "/x"],
    ["--on-activate", "echo a b", "env", "--on-activate", "true", "--on-deactivate", "echo 'x'"],
    ["env", "--backend", "docker", "--image", "debian:12", "--python", "3", "--activators", "bash,fish"],
    ["env", "--config", "cfg.toml", "--prompt", "a=b", "--hostname", "h"],
    ["-", "--prompt", "x y"],
    ["/tmp/x"],
]

# Left to argparse: abbreviations, grouped or glued short options, values that look like options,
# "--", two paths, none, "=" on a flag or a short option, help and version.
OTHER = [
    ["env", "--pro", "x"],
    ["env", "-qv"],
    ["env", "-ppython3"],
    ["env", "-p=python3"],
    ["env", "--prompt", "-x"],
    ["env", "--prompt", "-"],
    ["env", "--prompt"],
    ["--", "env"],
    ["env", "other"],
    [],
    ["env", "--clear=yes"],
    ["env", "--prompt=--"],
    ["env", "--bogus"],
    ["--help"],
    ["--version"],
    ["-h"],
]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_plain_lines_read_as_argparse_reads_them(argv: list[str]) -> None:
    assert quick_parse(argv) == vars(create_parser().parse_args(argv))


@pytest.mark.parametrize("argv", OTHER, ids=" ".join)
def test_other_lines_go_to_argparse(argv: list[str]) -> None:
    assert quick_parse(argv) is None


def test_argparse_still_reads_what_the_quick_parser_leaves(
    tmp_path: Path, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "env"
    assert dispatch([str(env), "--ro", str(busybox_root), "-qv", "--prompt=-dash-"]) == 0
    settings = Environment.open(env).settings
    assert (settings.root, settings.prompt) == (str(busybox_root), "-dash-")
    assert capsys.readouterr().out == ""  # -qv read as -q -v: quiet
    assert dispatch([str(tmp_path / "other"), "--prompt"]) == 2
    assert "expected one argument" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_a_plain_create_imports_neither_argparse_nor_pathlib(tmp_path: Path, busybox_root: Path) -> None:
    # (the interpreter's own start may import some of them: only what venvroot adds counts)
    code = (
        "import sys\nbefore = set(sys.modules)\nfrom venvroot.cli.main import main\nmain()\n"
        "print(sorted({'argparse', 'gettext', 'pathlib', 'shlex', 're'} & (set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "env"), "-q", "--root", str(busybox_root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "env" / "bin" / "activate").is_file()
