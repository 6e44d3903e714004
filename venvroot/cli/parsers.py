"""The argparse parsers of the ``venvroot`` verbs (imported only by the verb that runs)."""

from __future__ import annotations

import argparse

from ..env.config import DEFAULT_NAME
from ..errors import UsageError
from ..version import __version__
from .createargs import OPTIONS, dest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

VERBS = (
    "create", "run", "shell", "link", "unlink", "sync", "info", "reset", "destroy", "push", "pull",
    "snapshot", "freeze", "unfreeze", "chroot",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other usage error
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def create_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="venvroot",
        description="Create an isolated environment: activate scripts and shims that run programs in an "
        f"isolated root. Other commands: {', '.join(v for v in VERBS if v != 'create')} "
        "(`venvroot COMMAND --help`).",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--version", action="version", version=f"venvroot {__version__}")
    p.add_argument("path", metavar="PATH", help="directory of the new environment")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for group, flags, action, metavar, help in OPTIONS:
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        kwargs: dict[str, Any] = {
            "dest": dest(flags),
            "action": action,
            "help": help.format(config=DEFAULT_NAME),
        }
        if metavar:
            kwargs["metavar"] = metavar
        groups[group].add_argument(*flags, **kwargs)
    return p


def env_parser(verb: str, help: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"venvroot {verb}", description=help)
    p.add_argument("path", metavar="PATH", help="the environment's directory")
    return p


def snapshot_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="venvroot snapshot",
        description="Snapshots of an environment's root and Python packages: take, list, restore and "
        "delete them, and have a program's shim take one before certain calls.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    c = sub.add_parser("create", help="take a snapshot", description="Take a snapshot of the environment.")
    c.add_argument("path", metavar="PATH", help="the environment's directory")
    c.add_argument("name", nargs="?", metavar="NAME", help="a new name (default: snap-N)")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success, no progress line")
    ls = sub.add_parser("list", help="list the snapshots", description="List the snapshots.")
    ls.add_argument("path", metavar="PATH", help="the environment's directory")
    for verb, what in (("restore", "bring back what a snapshot captured"), ("delete", "delete a snapshot")):
        r = sub.add_parser(verb, help=what, description=what[0].upper() + what[1:] + ".")
        r.add_argument("path", metavar="PATH", help="the environment's directory")
        r.add_argument("ref", metavar="NAME|ID", help="the snapshot's name or id")
        if verb == "restore":
            r.add_argument(
                "-q", "--quiet", action="store_true", help="print nothing on success, no progress line"
            )
    k = sub.add_parser(
        "configure",
        help="snapshot automatically before a program runs",
        description="Make PROGRAM's shim take a snapshot before running whenever its arguments match "
        "REGEX (e.g. `venvroot snapshot configure .venv pip --pattern install --name 'pip-{id}'`).",
    )
    k.add_argument("path", metavar="PATH", help="the environment's directory")
    k.add_argument("program", metavar="PROGRAM", help="a program with a shim in the env's bin/")
    k.add_argument("--pattern", metavar="REGEX", help="searched in the arguments, joined by spaces")
    k.add_argument(
        "--name",
        metavar="TEMPLATE",
        help="snapshot names, from {id} {n} {program} {date} {time} (default: {program}-{id})",
    )
    k.add_argument("--off", action="store_true", help="take no automatic snapshots for PROGRAM any more")
    return p
