"""The activate scripts, sourced by real bash, zsh, dash, busybox sh, fish, tcsh, csh, xonsh and nu
in a pty.

Each shell starts from ``env -i`` with a fixed environment, no rc files and a fixed prompt marker.
Commands are wrapped between two printed markers (typed split, so the terminal's echo of the typed
line never contains them) and their output is read from between the markers. "Back as before" means
a full dump of the shell's variables (minus counters such as RANDOM), its functions or aliases, and
the environment a child process receives, compared before activation and after ``deactivate``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import missing, need

from venvroot.activators import ACTIVATORS, ActivationContext, Activator
from venvroot.activators.bash import BashActivator
from venvroot.activators.cshell import CShellActivator
from venvroot.activators.fish import FishActivator
from venvroot.activators.nushell import NushellActivator
from venvroot.activators.xonsh import XonshActivator

BEGIN, END, PROMPT = "@@VR-BEGIN@@", "@@VR-END@@", "VRP> "
BASE_PATH = "/usr/bin::/bin"  # the empty entry must survive activate + deactivate untouched
# Data that would be code, a prompt escape or a quoting error if any script mishandled it.
NASTY_PROMPT = "x$(touch PWNED)y`touch PWNED2`z!1 %n \\w 'q\" {RED}é $HOME ^A\nline2"
NASTY_DIR = "my env é 'q\" $x `y` !z %n \\b\nline2"
ANSI = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78]"
)
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
ENV_DUMP = f"{PYTHON} -E -c 'import os,json;print(json.dumps(dict(os.environ),sort_keys=True))'"


def clean(text: str) -> str:
    """Terminal output as plain lines: no colour codes, CRLF as LF, a CR-overwritten line as its tail."""
    lines = []
    for line in ANSI.sub("", text).replace("\r\n", "\n").split("\n"):
        parts = [part for part in line.split("\r") if part]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


class Shell:
    """One interactive shell in a pty; subclasses know its syntax."""

    name: str
    activator: type[Activator]
    volatile: frozenset[str] = frozenset()  # variables that change on their own between commands

    def __init__(self, workdir: Path, path: str | None = BASE_PATH, extra: dict[str, str] | None = None):
        self.workdir = workdir
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        env = {"HOME": str(home), "TERM": "dumb", "LANG": "C.UTF-8", **(extra or {})}
        if path is not None:
            env["PATH"] = path
        self.child = pexpect.spawn(
            "/usr/bin/env",
            ["-i", *(f"{k}={v}" for k, v in env.items()), *self.argv()],
            cwd=str(workdir / "cwd"),
            encoding="utf-8",
            codec_errors="replace",
            dimensions=(40, 4000),
            timeout=15,
        )
        self.child.delaybeforesend = None  # the markers make waiting for echo unnecessary
        self.expect_startup()
        self.run(self.setup())

    # -- per-shell syntax -------------------------------------------------------------------------
    def argv(self) -> list[str]:
        raise NotImplementedError

    def setup(self) -> str:
        raise NotImplementedError

    def wrap(self, cmd: str) -> str:
        return f"echo {BEGIN[:6]}''{BEGIN[6:]}; {cmd}; echo {END[:6]}''{END[6:]}"

    def noop(self) -> str:
        return "true"

    def source(self, script: Path) -> str:
        raise NotImplementedError

    def var_cmd(self, name: str) -> str:
        raise NotImplementedError

    def has_deactivate_cmd(self) -> str:
        return "type deactivate >/dev/null 2>&1 && echo yes || echo no"

    def dump_cmd(self) -> str:
        raise NotImplementedError

    def expect_startup(self) -> None:
        pass

    # -- driving ----------------------------------------------------------------------------------
    def expect(self, text: str) -> None:
        self.child.expect_exact(text)

    def run(self, cmd: str) -> str:
        """Run one command line; return what it printed."""
        self.child.sendline(self.wrap(cmd))
        self.expect(BEGIN)
        self.expect(END)
        out = clean(self.child.before).strip("\n")
        self.await_input()
        return out

    def await_input(self) -> None:
        """Wait, where the shell needs it, until it reads the next line."""

    def prompt(self) -> str:
        """The prompt the shell draws now, up to the marker."""
        self.run(self.noop())
        self.expect(PROMPT)
        return clean(self.child.before).strip("\n") + PROMPT

    def activate(self, env: Path) -> tuple[int, str]:
        """Source the env's script; return the status and everything printed."""
        out = self.run(self.source(env / "bin" / self.activator.filename))
        match = re.search(r"rc=(\d+)\s*$", out)
        assert match, f"no status in {out!r}"
        return int(match.group(1)), out[: match.start()]

    def var(self, name: str) -> str | None:
        """A shell variable's value, None when unset."""
        out = self.run(self.var_cmd(name))
        assert out.startswith(("set:", "unset")), out
        return out[4:] if out.startswith("set:") else None

    def environ(self) -> dict[str, str]:
        """The environment a child process of the shell receives."""
        return json.loads(self.run(ENV_DUMP))

    def state(self) -> tuple[list[str], dict[str, str]]:
        """Everything activation may touch: shell variables, functions/aliases, exported environment."""
        lines = self.run(self.dump_cmd()).split("\n")
        return [line for line in lines if self.dumped_name(line) not in self.volatile], self.environ()

    def dumped_name(self, line: str) -> str | None:
        """The variable a line of the dump shows."""
        return None

    def close(self) -> None:
        self.child.close(force=True)


class Bash(Shell):
    name = "bash"
    activator = BashActivator
    volatile = frozenset(
        {"_", "RANDOM", "SRANDOM", "SECONDS", "LINENO", "EPOCHREALTIME", "EPOCHSECONDS", "BASH_COMMAND"}
        | {"PIPESTATUS", "HISTCMD", "BASH_LINENO", "BASH_ARGC", "BASH_ARGV", "BASH_SOURCE", "FUNCNAME"}
    )

    def argv(self) -> list[str]:
        return [need("bash"), "--norc", "--noprofile"]

    def setup(self) -> str:
        return f"PS1='{PROMPT}'"

    def source(self, script: Path) -> str:
        return f'. {BashActivator().quote(str(script))}; echo "rc=$?"'

    def var_cmd(self, name: str) -> str:
        return f'if [ -n "${{{name}+x}}" ]; then printf \'set:%s\\n\' "${name}"; else echo unset; fi'

    def dump_cmd(self) -> str:
        return "declare -p; declare -F"

    def dumped_name(self, line: str) -> str | None:
        match = re.match(r"declare -\S+ (\w+)", line)
        return match.group(1) if match else None


class Zsh(Bash):
    name = "zsh"
    volatile = frozenset(
        {"_", "?", "RANDOM", "SECONDS", "EPOCHSECONDS", "EPOCHREALTIME", "LINENO", "TTYIDLE", "HISTCMD"}
        | {"status", "pipestatus"}
    )

    def argv(self) -> list[str]:
        return [need("zsh"), "-f"]

    def setup(self) -> str:
        # No PROMPT_SP: its end-of-line marker would sit in front of every prompt.
        return f"PS1='{PROMPT}'; unsetopt prompt_sp"

    def dump_cmd(self) -> str:
        return "typeset -p; typeset -f +"

    def dumped_name(self, line: str) -> str | None:
        match = re.match(r"typeset (?:-\S+ )*(\w+|\?)=", line)
        return match.group(1) if match else None


class Dash(Bash):
    name = "sh"
    volatile = frozenset({"_"})

    def argv(self) -> list[str]:
        return [need("dash")]

    def dump_cmd(self) -> str:
        return "set; export -p"

    def dumped_name(self, line: str) -> str | None:
        return line.split("=", 1)[0] if "=" in line else None


class BusyboxSh(Dash):
    name = "busybox"

    def argv(self) -> list[str]:
        return [need("busybox"), "sh"]


class Fish(Shell):
    name = "fish"
    activator = FishActivator
    volatile = frozenset(
        {"_", "status", "pipestatus", "CMD_DURATION", "history", "status_generation", "fish_kill_signal"}
        | {"__fish_prompt_status_generation"}
    )

    def argv(self) -> list[str]:
        return [need("fish"), "--no-config"]

    def setup(self) -> str:
        # The prompt shows $status, so that activation is seen to keep it.
        return f"function fish_prompt; printf 'S%s {PROMPT}' $status; end"

    def source(self, script: Path) -> str:
        return f"source {FishActivator().quote(str(script))}; echo rc=$status"

    def var_cmd(self, name: str) -> str:
        joined = f"(string join : -- ${name} | string collect)"  # one argument, even with newlines
        return f"if set -q {name}; printf 'set:%s\\n' {joined}; else; echo unset; end"

    def dump_cmd(self) -> str:
        return "set -gL; functions -n; functions fish_prompt"

    def has_deactivate_cmd(self) -> str:
        return "functions -q deactivate; and echo yes; or echo no"

    def dumped_name(self, line: str) -> str | None:
        return line.split(" ", 1)[0]


class Tcsh(Shell):
    name = "tcsh"
    activator = CShellActivator
    program = "tcsh"
    volatile = frozenset({"_", "status"})

    def argv(self) -> list[str]:
        return [need(self.program), "-f"]

    def setup(self) -> str:
        return f"set prompt = '{PROMPT}'"

    def source(self, script: Path) -> str:
        return f'source {CShellActivator().quote(str(script))}; echo "rc=$status"'

    def var(self, name: str) -> str | None:
        # One line per command: csh substitutes a whole line before it tests `if`.
        if self.run(f'echo "def:$?{name}"') == "def:0":
            return None
        out = self.run(f"/usr/bin/printf 'set:%s\\n' \"${name}:q\"")
        assert out.startswith("set:"), out
        return out[4:]

    def dump_cmd(self) -> str:
        return "set; alias"

    def has_deactivate_cmd(self) -> str:
        return 'if ("`alias deactivate`" == "") echo no; if ("`alias deactivate`" != "") echo yes'

    def dumped_name(self, line: str) -> str | None:
        return line.split("\t", 1)[0]


class Csh(Tcsh):
    name = "csh"
    program = "csh"


class Xonsh(Shell):
    name = "xonsh"
    activator = XonshActivator

    def argv(self) -> list[str]:
        return [xonsh_program(), "--no-rc", "-i", "--shell-type=readline"]

    def expect_startup(self) -> None:
        self.await_input()

    def await_input(self) -> None:
        # Before each prompt xonsh asks the terminal where the cursor is and reads the answer from
        # its input: answer, and type nothing until readline has taken over (bracketed paste on).
        self.child.expect_exact("\x1b[6n")
        self.child.send("\x1b[1;1R")
        self.child.expect_exact("\x1b[?2004h")

    def setup(self) -> str:
        return f"$PROMPT = '{{env_name}}{PROMPT}'; $RIGHT_PROMPT = ''; $TITLE = ''"

    def wrap(self, cmd: str) -> str:
        return f"print('{BEGIN[:6]}' '{BEGIN[6:]}'); {cmd}; print('{END[:6]}' '{END[6:]}')"

    def noop(self) -> str:
        return "pass"

    def has_deactivate_cmd(self) -> str:
        return "print('yes' if 'deactivate' in aliases else 'no')"

    def activate(self, env: Path) -> tuple[int, str]:
        # A failing `source` (SystemExit) ends the whole line in xonsh: the prompt's query ends the output.
        script = XonshActivator().quote(str(env / "bin" / self.activator.filename))
        self.child.sendline(f"print('{BEGIN[:6]}' '{BEGIN[6:]}'); source {script}")
        self.expect(BEGIN)
        self.child.expect_exact("\x1b[6n")
        out = clean(self.child.before).strip("\n")
        self.child.send("\x1b[1;1R")
        self.child.expect_exact("\x1b[?2004h")
        return int(self.run("print(__xonsh__.env['LAST_RETURN_CODE'])")), out

    def var_cmd(self, name: str) -> str:
        return f"print('set:' + str(${{...}}.detype()['{name}']) if '{name}' in ${{...}} else 'unset')"

    def dump_cmd(self) -> str:
        return (
            "import json as _j; print(_j.dumps(["
            "sorted((k, repr(v)) for k, v in __xonsh__.env.items() if k != 'LAST_RETURN_CODE'), "
            "sorted(__xonsh__.aliases), repr(__xonsh__.env['PROMPT_FIELDS']['env_name']), "
            "sorted(vars(getattr(__xonsh__, 'xontrib', None) or type('', (), {})())), "
            "sorted(k for k in globals() if 'venvroot' in k.lower())], indent=0)); del _j"
        )


class Nushell(Shell):
    name = "nu"
    activator = NushellActivator
    volatile = frozenset({"LAST_EXIT_CODE", "CMD_DURATION_MS"})

    def argv(self) -> list[str]:
        return [nu_program(), "--no-config-file", "--no-history"]

    def expect_startup(self) -> None:
        self.await_input()

    def expect(self, text: str) -> None:
        # reedline asks the terminal where the cursor is (before each prompt and when a line is
        # entered) and waits for the answer: answer every query met on the way.
        while self.child.expect_exact([text, "\x1b[6n"]) == 1:
            self.child.send("\x1b[1;1R")

    def await_input(self) -> None:
        # The prompt is drawn (the cursor shown again) once its queries are answered.
        self.expect("\x1b[?25h")

    def prompt(self) -> str:
        self.child.sendline(self.wrap(self.noop()))
        self.expect(END)
        self.expect(PROMPT)  # drawn after the last query of the prompt: `before` holds all of it
        shown = clean(self.child.before).strip("\n")
        self.await_input()
        return shown + PROMPT

    def setup(self) -> str:
        return (
            f"$env.PROMPT_COMMAND = {{|| '{PROMPT}' }}; $env.PROMPT_INDICATOR = ''; "
            "$env.PROMPT_COMMAND_RIGHT = ''; $env.PROMPT_MULTILINE_INDICATOR = ''"
        )

    def wrap(self, cmd: str) -> str:
        return f"print ('{BEGIN[:6]}' + '{BEGIN[6:]}'); {cmd}; print ('{END[:6]}' + '{END[6:]}')"

    def noop(self) -> str:
        return "null"

    def activate(self, env: Path) -> tuple[int, str]:
        # `source` is resolved when the line is parsed and a failing script ends the whole line (an
        # error, not a status): the status is whether the line went on to its end marker.
        script = NushellActivator().quote(str(env / "bin" / self.activator.filename))
        self.child.sendline(self.wrap(f"source {script}"))
        self.expect(BEGIN)
        self.child.expect_exact("\x1b[6n")  # the next prompt's first query ends the output
        out = clean(self.child.before).strip("\n")
        self.child.send("\x1b[1;1R")
        self.await_input()
        if END in out:
            return 0, out[: out.index(END)].strip("\n")
        return 1, out

    def var_cmd(self, name: str) -> str:
        joined = "if ($in | describe | str starts-with list) { str join (char esep) } else { $in }"
        value = f"($env | get {name} | {joined})"
        return f"if '{name}' in $env {{ print ('set:' + {value}) }} else {{ print unset }}"

    def has_deactivate_cmd(self) -> str:
        return "print (if (scope commands | where name == deactivate | is-empty) { 'no' } else { 'yes' })"

    def dump_cmd(self) -> str:
        # nushell cannot drop a command at run time: `deactivate` stays defined (and does nothing
        # once nothing is active), so the command list leaves it out. Everything else is compared.
        return (
            "print ($env | items {|k, v| $'($k)=($v | to nuon --serialize)' } | str join (char nl)); "
            "print (scope commands | where type == custom and name != deactivate | get name | to nuon); "
            "print (scope variables | get name | to nuon)"
        )

    def dumped_name(self, line: str) -> str | None:
        return line.split("=", 1)[0] if "=" in line else None

    def environ(self) -> dict[str, str]:
        # nushell exports its counters too.
        return {k: v for k, v in super().environ().items() if k not in self.volatile}


def nu_program() -> str:
    """nu itself, not the npm package's node launcher (a process between the terminal and the shell)."""
    found = Path(need("nu")).resolve()
    if found.suffix == ".js":
        binaries = sorted(found.parent.parent.glob("node_modules/@nushell/*/bin/nu"))
        if not binaries:
            missing(f"{found} is the npm launcher, but no nu binary lies beside it")
        return str(binaries[0])
    return str(found)


def xonsh_program() -> str:
    """xonsh itself, not a version-manager shim that needs the caller's environment."""
    here = Path(sys.executable).parent / "xonsh"
    return str(here) if here.exists() else need("xonsh")


def shell_program(name: str) -> str:
    """The program behind a shell name, for running scripts outside a pty."""
    if name in ("xonsh", "nu"):
        return xonsh_program() if name == "xonsh" else nu_program()
    return need(PROGRAMS[name])


SHELLS: dict[str, type[Shell]] = {
    cls.name: cls for cls in (Bash, Zsh, Dash, BusyboxSh, Fish, Tcsh, Csh, Xonsh, Nushell)
}
# The program behind each shell name, for running scripts outside a pty.
PROGRAMS = {
    "bash": "bash",
    "zsh": "zsh",
    "sh": "dash",
    "busybox": "busybox",
    "fish": "fish",
    "tcsh": "tcsh",
    "csh": "csh",
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "cwd").mkdir()
    return tmp_path


@pytest.fixture
def spawn(workdir: Path) -> Iterator[Callable[..., Shell]]:
    shells: list[Shell] = []

    def start(name: str, **kwargs: object) -> Shell:
        shell = SHELLS[name](workdir, **kwargs)  # type: ignore[arg-type]  # skips/fails if not installed
        shells.append(shell)
        return shell

    yield start
    for shell in shells:
        shell.close()


def make_env(workdir: Path, dirname: str = "env", prompt: str = "env", session: str | None = None) -> Path:
    """An environment directory holding every activate script (what `venvroot create` writes)."""
    env = workdir / dirname
    (env / "bin").mkdir(parents=True)
    ctx = ActivationContext(env_dir=str(env), bin_dir=str(env / "bin"), prompt=prompt, session=session)
    for cls in ACTIVATORS.values():
        cls().generate(ctx)
    return env


def session_program(workdir: Path, fail: bool = False) -> tuple[str, Path]:
    """A session hook that logs its arguments and the VIRTUAL_ENV it sees, optionally failing start."""
    log = workdir / "session.log"
    script = workdir / "session hook"
    failing = 'if [ "$1" = start ]; then echo "session could not start" >&2; exit 3; fi\n' if fail else ""
    script.write_text(f"#!/bin/sh\necho \"$1 $2 ${{VIRTUAL_ENV-}}\" >> '{log}'\n{failing}")
    script.chmod(0o755)
    return str(script), log


def assert_no_pwned(workdir: Path) -> None:
    # The shells ran in workdir/cwd with HOME in workdir; /tmp itself is checked for good measure.
    found = [*workdir.rglob("PWNED*"), *Path("/tmp").glob("PWNED*")]
    assert not found, f"the prompt ran as code: {found}"


ALL = list(SHELLS)
PS1_SHELLS = ["bash", "zsh", "sh", "busybox"]


# -- the full round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("shell_name", ALL)
def test_activate_then_deactivate_restores_everything(shell_name, spawn, workdir):
    env = make_env(workdir, NASTY_DIR, NASTY_PROMPT)
    bin_dir = str(env / "bin")
    # A PYTHONHOME that still lets xonsh (a Python program) start.
    sh = spawn(shell_name, extra={"PYTHONHOME": sys.base_prefix})
    before = sh.state()
    prompt_before = sh.prompt()

    rc, out = sh.activate(env)
    assert (rc, out) == (0, "")
    # zsh draws a psvar entry's control characters visibly: the newline shows as \n.
    shown = NASTY_PROMPT.replace("\n", "\\n") if shell_name == "zsh" else NASTY_PROMPT
    assert sh.prompt() == f"({shown}) {prompt_before}"
    environ = sh.environ()
    assert environ["PATH"].split(":")[0] == bin_dir
    assert environ["PATH"] == f"{bin_dir}:{before[1]['PATH']}"
    assert environ["VIRTUAL_ENV"] == str(env)
    assert environ["VIRTUAL_ENV_PROMPT"] == NASTY_PROMPT
    assert "PS1" not in environ
    assert "PYTHONHOME" not in environ  # as virtualenv: it would point the env's python elsewhere
    assert environ["PKG_CONFIG_PATH"] == f"{env}/lib/pkgconfig"
    assert sh.var("VIRTUAL_ENV") == str(env)

    assert sh.run("deactivate") == ""
    assert sh.state() == before
    assert sh.prompt() == prompt_before
    assert_no_pwned(workdir)


@pytest.mark.parametrize(
    ("shell_name", "options"),
    [
        ("bash", "set -o posix"),  # posix mode expands a bare ! in PS1 to the history number
        ("zsh", "setopt prompt_subst prompt_bang ksh_arrays"),
    ],
)
def test_prompt_stays_data_under_prompt_options(shell_name, options, spawn, workdir):
    env = make_env(workdir, "opt env", NASTY_PROMPT)
    sh = spawn(shell_name)
    sh.run(options)
    before = sh.state()
    assert sh.activate(env) == (0, "")
    shown = NASTY_PROMPT.replace("\n", "\\n") if shell_name == "zsh" else NASTY_PROMPT
    assert sh.prompt() == f"({shown}) {PROMPT}"
    sh.run("deactivate")
    assert sh.state() == before
    assert_no_pwned(workdir)


@pytest.mark.parametrize("shell_name", ["bash", "zsh"])
def test_set_u(shell_name, spawn, workdir):
    env = make_env(workdir, "u env", "u")
    sh = spawn(shell_name)
    sh.run("set -u")
    before = sh.state()
    assert sh.activate(env) == (0, "")
    assert sh.prompt() == f"(u) {PROMPT}"
    assert sh.activate(env) == (0, "")  # re-activation runs the old deactivate under set -u too
    assert sh.run("deactivate nondestructive; deactivate") == ""
    assert sh.state() == before


@pytest.mark.parametrize("shell_name", PS1_SHELLS)
@pytest.mark.parametrize("ps1", [None, ""])
def test_unset_and_empty_ps1_come_back_as_they_were(shell_name, ps1, spawn, workdir):
    env = make_env(workdir)
    sh = spawn(shell_name)
    sh.run("unset PS1" if ps1 is None else "PS1=")
    before = sh.state()
    assert sh.var("PS1") == ps1
    assert sh.activate(env) == (0, "")
    assert sh.var("PS1") == ("(%9v) " if shell_name == "zsh" else "(env) ")
    assert "PS1" not in sh.environ()
    sh.run("deactivate")
    assert sh.var("PS1") == ps1
    assert sh.state() == before


@pytest.mark.parametrize("shell_name", PS1_SHELLS)
def test_exported_ps1_stays_exported(shell_name, spawn, workdir):
    env = make_env(workdir)
    sh = spawn(shell_name, extra={"PS1": "exported> "})
    sh.run(f"PS1='{PROMPT}'")
    before = sh.state()
    assert sh.activate(env) == (0, "")
    assert sh.environ()["PS1"] == ("(%9v) " if shell_name == "zsh" else "(env) ") + PROMPT
    sh.run("deactivate")
    assert sh.state() == before


DASH_UNEXPORTED_PATH = pytest.mark.xfail(
    strict=True,
    reason="dash invents an unexported PATH when its environment has none; a POSIX sh cannot see "
    "the export flag without a subshell, so deactivate leaves PATH exported (same value)",
)


@pytest.mark.parametrize(
    ("shell_name", "path"),
    [
        *((name, "") for name in ("bash", "zsh", "sh", "busybox", "fish", "tcsh", "xonsh", "nu")),
        *((name, None) for name in ("bash", "zsh", "busybox", "tcsh", "xonsh", "nu")),
        pytest.param("sh", None, marks=DASH_UNEXPORTED_PATH),
        # fish always has a PATH: it sets a default when its environment has none.
    ],
)
def test_empty_and_unset_path_come_back_as_they_were(shell_name, path, spawn, workdir):
    env = make_env(workdir)
    sh = spawn(shell_name, path=path)
    before = sh.state()
    before_path = sh.var("PATH")
    # Nothing is run through PATH (there may be none to search): no command-not-found noise.
    assert sh.activate(env) == (0, "")
    # Some shells put a default PATH in place of a missing or empty one.
    assert sh.var("PATH") == (f"{env}/bin:{before_path}" if before_path else f"{env}/bin")
    sh.run("deactivate")
    assert sh.var("PATH") == before_path
    assert sh.state() == before


@pytest.mark.parametrize("shell_name", ALL)
@pytest.mark.parametrize("before_value", ["/usr/share/pc:/opt/pc", "", None])
def test_pkg_config_path_is_prepended_and_comes_back(shell_name, before_value, spawn, workdir):
    env = make_env(workdir)
    extra = {} if before_value is None else {"PKG_CONFIG_PATH": before_value}
    sh = spawn(shell_name, extra=extra)
    before = sh.state()
    assert sh.activate(env) == (0, "")
    ours = f"{env}/lib/pkgconfig"
    assert sh.environ()["PKG_CONFIG_PATH"] == (f"{ours}:{before_value}" if before_value else ours)
    sh.run("deactivate")
    assert sh.environ().get("PKG_CONFIG_PATH") == before_value
    assert sh.state() == before


@pytest.mark.parametrize("shell_name", ["bash", "zsh", "sh", "busybox", "tcsh", "csh"])
def test_commands_are_looked_up_again(shell_name, spawn, workdir):
    base = workdir / "base"
    base.mkdir()
    env = make_env(workdir)
    for where, text in ((base, "base"), (env / "bin", "env")):
        (where / "tool").write_text(f"#!/bin/sh\necho {text}\n")
        (where / "tool").chmod(0o755)
    sh = spawn(shell_name, path=f"{base}:{BASE_PATH}")
    assert sh.run("tool") == "base"  # now remembered by the shell's command hash
    assert sh.activate(env) == (0, "")
    assert sh.run("tool") == "env"
    sh.run("deactivate")
    assert sh.run("tool") == "base"


# -- replacing, nondestructive, prompt switch -------------------------------------------------------


@pytest.mark.parametrize("shell_name", ALL)
def test_second_activation_replaces_the_first(shell_name, spawn, workdir):
    first, second = make_env(workdir, "first", "one"), make_env(workdir, "second", "two")
    sh = spawn(shell_name)
    before = sh.state()
    prompt_before = sh.prompt()
    for env in (first, first, second):
        assert sh.activate(env) == (0, "")
    environ = sh.environ()
    assert environ["PATH"] == f"{second}/bin:{before[1]['PATH']}"
    assert environ["VIRTUAL_ENV"] == str(second)
    assert sh.prompt() == f"(two) {prompt_before}"
    sh.run("deactivate")
    assert sh.state() == before


@pytest.mark.parametrize("shell_name", ALL)
def test_deactivate_nondestructive_keeps_deactivate(shell_name, spawn, workdir):
    env = make_env(workdir)
    sh = spawn(shell_name)
    before = sh.state()
    prompt_before = sh.prompt()
    assert sh.activate(env) == (0, "")
    sh.run("deactivate nondestructive")
    assert sh.run(sh.has_deactivate_cmd()) == "yes"
    assert sh.environ() == before[1]
    assert sh.prompt() == prompt_before
    sh.run("deactivate")
    # nushell cannot drop a command at run time: its deactivate stays and does nothing from then on.
    assert sh.run(sh.has_deactivate_cmd()) == ("yes" if shell_name == "nu" else "no")
    assert sh.state() == before
    if shell_name == "nu":
        assert sh.run("deactivate") == ""
        assert sh.state() == before


@pytest.mark.parametrize("shell_name", ALL)
def test_virtual_env_disable_prompt(shell_name, spawn, workdir):
    env = make_env(workdir)
    sh = spawn(shell_name, extra={"VIRTUAL_ENV_DISABLE_PROMPT": "1"})
    before = sh.state()
    prompt_before = sh.prompt()
    assert sh.activate(env) == (0, "")
    assert sh.prompt() == prompt_before
    assert sh.environ()["VIRTUAL_ENV_PROMPT"] == "env"
    sh.run("deactivate")
    assert sh.state() == before


def test_fish_prompt_keeps_status(spawn, workdir):
    env = make_env(workdir)
    sh = spawn("fish")
    assert sh.activate(env) == (0, "")
    assert sh.prompt() == f"(env) S0 {PROMPT}"
    sh.child.sendline("false")
    sh.expect("false\r\n")  # fish repaints the prompt (with the old status) before it runs a line
    sh.expect(PROMPT)
    assert clean(sh.child.before).split("\n")[-1] == "(env) S1 "
    sh.child.sendline("sh -c 'exit 7'")
    sh.expect("7'\r\n")
    sh.expect(PROMPT)
    assert clean(sh.child.before).split("\n")[-1] == "(env) S7 "


# -- run instead of sourced -------------------------------------------------------------------------


@pytest.mark.parametrize("shell_name", ALL)
def test_running_the_script_is_refused(shell_name, workdir):
    env = make_env(workdir)
    program = shell_program(shell_name)
    script = env / "bin" / SHELLS[shell_name].activator.filename
    flags = {"xonsh": ["--no-rc"], "busybox": ["sh"], "nu": ["--no-config-file"]}.get(shell_name, [])
    argv = [program, *flags, str(script)]
    result = subprocess.run(
        argv, capture_output=True, text=True, env={"PATH": BASE_PATH, "HOME": str(workdir)}, timeout=30
    )
    assert result.returncode != 0
    assert "must be sourced" in result.stderr
    assert result.stdout == ""


# -- the session hook -------------------------------------------------------------------------------


@pytest.mark.parametrize("shell_name", ALL)
def test_session_start_and_stop(shell_name, spawn, workdir):
    program, log = session_program(workdir)
    env = make_env(workdir, "sess", "s", session=program)
    other = make_env(workdir, "plain", "p")
    sh = spawn(shell_name)
    pid = sh.child.pid
    before = sh.state()

    assert sh.activate(env) == (0, "")
    assert log.read_text() == f"start {pid} {env}\n"
    sh.run("deactivate")
    # stop runs before the variables are restored: it still sees the environment.
    assert log.read_text() == f"start {pid} {env}\nstop {pid} {env}\n"
    assert sh.state() == before

    log.unlink()
    assert sh.activate(env) == (0, "")
    assert sh.activate(env) == (0, "")  # the same env again: stop, then start
    assert sh.activate(other) == (0, "")  # an env without a session: the first one's stop still runs
    assert log.read_text() == f"start {pid} {env}\nstop {pid} {env}\nstart {pid} {env}\nstop {pid} {env}\n"
    sh.run("deactivate")
    assert sh.state() == before


@pytest.mark.parametrize("shell_name", ALL)
def test_failing_session_start_undoes_the_activation(shell_name, spawn, workdir):
    program, log = session_program(workdir, fail=True)
    env = make_env(workdir, "sess", "s", session=program)
    sh = spawn(shell_name)
    before = sh.state()
    rc, out = sh.activate(env)
    assert rc != 0
    assert "session could not start" in out
    assert log.read_text() == f"start {sh.child.pid} {env}\n"  # and no stop
    assert sh.state() == before


# -- the scripts themselves -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(ACTIVATORS.values()))
def test_hook_code_only_with_a_session(cls):
    plain = cls().render(ActivationContext("/e", "/e/bin", "e", session=None))
    hooked = cls().render(ActivationContext("/e", "/e/bin", "e", session="/hook/program"))
    pieces = ("/hook/program", "_VENVROOT_SESSION", "_venvroot_session", "session_started", "run_session")
    assert any(piece in hooked for piece in pieces)
    assert not [piece for piece in pieces if piece in plain]
    code = "\n".join(line for line in plain.split("\n") if not line.lstrip().startswith("#"))
    assert not re.search(r"\b(start|stop)\b", code)


QUOTE_SAMPLES = [
    "",
    "plain",
    "two  spaces",
    "it's",
    "''",
    "a''b",
    'dq " and \\" ',
    "$HOME ${HOME} $(id) `id` $((1+1))",
    "!! !$ !-1 ^x^y",
    "% %% %n {RED} {}",
    "back\\slash \\\\ \\n \\041 \\",
    "new\nline\n",
    "tab\tand\rcr",
    "é ü 日本 \U0001f600",
    "; | & < > * ? [a] ~ # (x)",
]


def quote_round_trip(shell: str, script: str) -> str:
    program = shell_program(shell)
    flags = {"bash": ["--norc", "--noprofile"], "zsh": ["-f"], "fish": ["--no-config"], "tcsh": ["-f"]}
    flags |= {"xonsh": ["--no-rc"], "nu": ["--no-config-file"]}
    argv = [program, *flags.get(shell, []), "-c", script]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    result = subprocess.run(argv, capture_output=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.parametrize(
    ("shell", "cls", "printer"),
    [
        ("bash", BashActivator, "printf '%s\\0' {}"),
        ("zsh", BashActivator, "printf '%s\\0' {}"),
        ("sh", BashActivator, "printf '%s\\0' {}"),
        ("fish", FishActivator, "printf '%s\\0' {}"),
        ("tcsh", CShellActivator, "set v = {}\nprintf '%s\\0' \"$v:q\""),
        # With backslash_quote a backslash quotes even inside single quotes.
        ("tcsh", CShellActivator, "set backslash_quote\nset v = {}\nprintf '%s\\0' \"$v:q\""),
        ("xonsh", XonshActivator, "print({}, end='\\0')"),
        ("nu", NushellActivator, "print -n {}; print -n (char -i 0)"),
    ],
)
def test_quote_is_a_literal(shell, cls, printer):
    quote = cls().quote
    script = "\n".join(printer.format(quote(sample)) for sample in QUOTE_SAMPLES) + "\n"
    assert quote_round_trip(shell, script).split("\0")[:-1] == QUOTE_SAMPLES


@pytest.mark.parametrize("cls", [BashActivator, FishActivator, CShellActivator])
def test_quote_refuses_nul(cls):
    with pytest.raises(ValueError, match="NUL"):
        cls().quote("a\0b")


def test_venvroot_create_writes_working_activators(spawn, workdir):
    target = workdir / "made by create"
    result = subprocess.run(
        [sys.executable, "-m", "venvroot", str(target), "--prompt", "made $(touch PWNED)"],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for cls in ACTIVATORS.values():
        assert (target / "bin" / cls.filename).is_file()
    sh = spawn("bash")
    before = sh.state()
    rc, out = sh.activate(target)
    assert rc == 0, out
    assert sh.prompt() == f"(made $(touch PWNED)) {PROMPT}"
    assert sh.environ()["VIRTUAL_ENV"] == str(target)
    sh.run("deactivate")
    assert sh.state() == before
    assert_no_pwned(workdir)
