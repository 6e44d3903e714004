"""The verbs of the ``venvroot`` command, each a thin layer over :mod:`venvroot.env`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import config
from .errors import UsageError, VenvrootError
from .options import check
from .version import __version__

VERBS = (
    "create", "run", "shell", "link", "unlink", "sync", "info", "reset", "destroy",
    "snapshot", "freeze", "unfreeze", "chroot",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other usage error
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _create_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="venvroot",
        description="Create an isolated environment: activate scripts and shims that run programs in an "
        f"isolated root. Other commands: {', '.join(v for v in VERBS if v != 'create')} "
        "(`venvroot COMMAND --help`).",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--version", action="version", version=f"venvroot {__version__}")
    p.add_argument("path", metavar="PATH", help="directory of the new environment")
    v = p.add_argument_group("virtualenv options")
    v.add_argument("--clear", action="store_true", help="replace an existing venvroot/virtualenv environment")
    v.add_argument("--prompt", help="prompt prefix ('.' = the current directory's name)")
    v.add_argument("--activators", help="comma-separated: bash,fish,cshell,xonsh (default: all)")
    v.add_argument("-p", "--python", help="interpreter (inside the root) for the env's Python")
    v.add_argument("--no-vcs-ignore", action="store_true", help="do not write .gitignore")
    v.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    v.add_argument("-v", "--verbose", action="store_true", help="say more")
    r = p.add_argument_group("venvroot options")
    r.add_argument("--backend", help="ns (namespaces, default) or docker")
    r.add_argument("--root", help="ns root: a directory, a tarball or docker:IMAGE (default: the host, CoW)")
    r.add_argument("--image", help="docker image for --backend docker")
    r.add_argument("--user", help="root, or [system:][ID:]NAME (default: you)")
    r.add_argument("--directory", action="append", metavar="HOST[:INSIDE][:rw|ro]", help="extra mapping")
    r.add_argument("--link", action="append", metavar="PROGRAM", help="add a shim for PROGRAM")
    r.add_argument("--persistent", action="store_true", help="keep processes running after deactivate")
    r.add_argument("--on-activate", action="append", metavar="CMD", help="run CMD inside at activation")
    r.add_argument("--on-deactivate", action="append", metavar="CMD", help="run CMD inside at deactivation")
    r.add_argument("--hostname", help="hostname inside (an FQDN sets the domain name too)")
    r.add_argument("--config", metavar="FILE", help=f"TOML defaults (default: ./{config.DEFAULT_NAME})")
    return p


def cmd_create(argv: list[str]) -> int:
    from .env import create
    from .settings import Settings

    ns = vars(_create_parser().parse_args(argv))
    path = ns.pop("path")
    config_file = ns.pop("config", None)
    values: dict[str, object] = {}
    if config_file is not None:
        values.update(config.load(Path(config_file)))
    elif Path(config.DEFAULT_NAME).is_file():
        values.update(config.load(Path(config.DEFAULT_NAME)))
    for dest, value in ns.items():
        values[dest.replace("_", "-")] = check(dest.replace("_", "-"), value)
    clear = bool(values.pop("clear", False))
    quiet = bool(values.pop("quiet", False))
    verbose = bool(values.pop("verbose", False))
    if values.get("prompt") == ".":
        values["prompt"] = os.path.basename(os.getcwd())
    settings = Settings(path=Path(path), **{k.replace("-", "_"): v for k, v in values.items()})  # type: ignore[arg-type]
    env = create(settings, clear=clear)
    if not quiet:
        print(f"created venvroot environment {env.path} (backend {settings.backend})")
        if verbose:
            for key, value in env.info():
                print(f"  {key}: {value}")
        print(f"activate with: source {env.bin_dir / 'activate'}")
    return 0


def _env_parser(verb: str, help: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"venvroot {verb}", description=help)
    p.add_argument("path", metavar="PATH", help="the environment's directory")
    return p


def cmd_run(argv: list[str]) -> int:
    from .env import Environment

    p = _env_parser("run", "Run a command inside the environment, as a shim would.")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    ns = p.parse_args(argv)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if not command:
        raise UsageError("no command given: venvroot run PATH -- CMD [ARG...]")
    return Environment.open(ns.path).run(command)


def cmd_shell(argv: list[str]) -> int:
    from .env import Environment
    from .shell import exec_activated_shell

    ns = _env_parser("shell", "Start your current shell with the environment activated.").parse_args(argv)
    exec_activated_shell(Environment.open(ns.path))
    return 0  # not reached


def cmd_link(argv: list[str]) -> int:
    from .env import Environment

    p = _env_parser("link", "Add shims to the environment's bin/ for programs inside its root.")
    p.add_argument("programs", nargs="+", metavar="PROGRAM")
    ns = p.parse_args(argv)
    for path in Environment.open(ns.path).link(ns.programs):
        print(f"linked {path}")
    return 0


def cmd_unlink(argv: list[str]) -> int:
    from .env import Environment

    p = _env_parser("unlink", "Remove shims from the environment's bin/.")
    p.add_argument("programs", nargs="+", metavar="PROGRAM")
    ns = p.parse_args(argv)
    for path in Environment.open(ns.path).unlink(ns.programs):
        print(f"unlinked {path}")
    return 0


def cmd_sync(argv: list[str]) -> int:
    from .env import Environment

    ns = _env_parser("sync", "Add shims for programs installed inside since the last sync.").parse_args(argv)
    for path in Environment.open(ns.path).sync():
        print(f"linked {path}")
    return 0


def cmd_info(argv: list[str]) -> int:
    from .env import Environment

    ns = _env_parser("info", "Show the environment's settings and state.").parse_args(argv)
    rows = Environment.open(ns.path).info()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_reset(argv: list[str]) -> int:
    from .env import Environment

    ns = _env_parser("reset", "Stop the environment and discard changes to its root.").parse_args(argv)
    Environment.open(ns.path).reset()
    return 0


def cmd_destroy(argv: list[str]) -> int:
    from .env import Environment

    ns = _env_parser("destroy", "Stop the environment and remove everything it made.").parse_args(argv)
    env = Environment.open(ns.path)
    env.destroy()
    print(f"destroyed {env.path}")
    return 0


def cmd_not_yet(verb: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        raise VenvrootError(f"`venvroot {verb}` is not available in venvroot {__version__} yet")

    return run


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "create": cmd_create,
    "run": cmd_run,
    "shell": cmd_shell,
    "link": cmd_link,
    "unlink": cmd_unlink,
    "sync": cmd_sync,
    "info": cmd_info,
    "reset": cmd_reset,
    "destroy": cmd_destroy,
    "snapshot": cmd_not_yet("snapshot"),
    "freeze": cmd_not_yet("freeze"),
    "unfreeze": cmd_not_yet("unfreeze"),
}


def dispatch(argv: list[str]) -> int:
    verb = argv[0] if argv and argv[0] in COMMANDS else "create"
    args = argv[1:] if argv and argv[0] == verb else argv
    try:
        return COMMANDS[verb](args)
    except VenvrootError as exc:
        print(f"venvroot: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
