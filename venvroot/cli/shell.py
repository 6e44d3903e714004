"""``venvroot shell``: replace this process with the user's shell, the environment activated."""

from __future__ import annotations

import os
import shlex
import tempfile
from typing import TYPE_CHECKING, NoReturn

from ..errors import VenvrootError

if TYPE_CHECKING:
    from ..env.environment import Environment


def detect_shell() -> tuple[str, str]:
    """(name, path) of the user's current shell: shellingham, then $SHELL, then /bin/sh."""
    try:
        # shellingham: only when the shell is not known otherwise
        import shellingham

        name, path = shellingham.detect_shell()
        return name, path
    except (ImportError, OSError, RuntimeError):  # shellingham: ShellDetectionFailure is an OSError
        path = os.environ.get("SHELL") or "/bin/sh"
        return os.path.basename(path), path


def exec_activated_shell(env: Environment) -> NoReturn:
    name, path = detect_shell()
    bin_dir = env.bin_dir
    argv: list[str]
    if name in ("bash", "sh", "dash", "ksh"):
        rc = _rcfile(
            f'[ -f "$HOME/.bashrc" ] && [ -n "${{BASH_VERSION-}}" ] && . "$HOME/.bashrc"\n'
            f". {shlex.quote(str(bin_dir / 'activate'))}\n"
        )
        argv = [path, "--rcfile", rc, "-i"] if name == "bash" else [path, "-i"]
        if name != "bash":
            os.environ["ENV"] = rc  # POSIX shells read $ENV when interactive
    elif name == "zsh":
        # zsh has no --rcfile: point ZDOTDIR at a .zshrc that restores it, reads the user's, activates.
        home = tempfile.mkdtemp(prefix="venvroot-zsh-")
        old = os.environ.get("ZDOTDIR", os.path.expanduser("~"))
        with open(os.path.join(home, ".zshrc"), "w", encoding="utf-8") as rc_file:
            rc_file.write(
                f"ZDOTDIR={shlex.quote(old)}\n"
                f'[ -f "$ZDOTDIR/.zshrc" ] && . "$ZDOTDIR/.zshrc"\n'
                f". {shlex.quote(str(bin_dir / 'activate'))}\n"
                f"rm -rf {shlex.quote(home)}\n"
            )
        os.environ["ZDOTDIR"] = home
        argv = [path, "-i"]
    elif name == "fish":
        argv = [path, "-i", "-C", f"source {_fish_quote(str(bin_dir / 'activate.fish'))}"]
    elif name == "nu":
        argv = [path, "-e", f"source {_nu_quote(str(bin_dir / 'activate.nu'))}"]
    elif name == "xonsh":
        argv = [path, "-i", "--rc", os.path.expanduser("~/.xonshrc"), str(bin_dir / "activate.xsh")]
    else:
        raise VenvrootError(
            f"`venvroot shell` does not know how to start {name}; run `source {bin_dir}/activate` "
            "(or activate.fish, activate.csh, activate.xsh, activate.nu) in your shell"
        )
    os.execv(path, argv)


def _rcfile(text: str) -> str:
    fd, path = tempfile.mkstemp(prefix="venvroot-rc-", suffix=".sh")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + f"rm -f {shlex.quote(path)}\n")
    return path


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _nu_quote(value: str) -> str:
    """A nu string literal of ``value``: single quotes take it as it is; a raw string if it has one."""
    if "'" not in value:
        return f"'{value}'"
    # r#'...'# ends at the first '# : use one # more than any run of them after a quote
    hashes = "#" * (max(len(run) - len(run.lstrip("#")) for run in value.split("'")[1:]) + 1)
    return f"r{hashes}'{value}'{hashes}"
