"""The verbs of the ``venvroot`` command, each a thin layer over :mod:`venvroot.env`."""

from __future__ import annotations

import argparse
import os
import sys

from .errors import UsageError, VenvrootError
from .version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .snapshots import Snapshots

VERBS = (
    "create", "run", "shell", "link", "unlink", "sync", "info", "reset", "destroy",
    "snapshot", "freeze", "unfreeze", "chroot",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other usage error
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _create_parser() -> argparse.ArgumentParser:
    from .config import DEFAULT_NAME

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
    r.add_argument("--config", metavar="FILE", help=f"TOML defaults (default: ./{DEFAULT_NAME})")
    return p


def cmd_create(argv: list[str]) -> int:
    from pathlib import Path

    from . import config
    from .env import create
    from .options import check
    from .settings import Settings

    ns = vars(_create_parser().parse_args(argv))
    path = ns.pop("path")
    config_file = ns.pop("config", None)
    values: dict[str, object] = {}
    if config_file is not None:
        values.update(config.load(config_file))
    elif os.path.isfile(config.DEFAULT_NAME):
        values.update(config.load(config.DEFAULT_NAME))
    for dest, value in ns.items():
        values[dest.replace("_", "-")] = check(dest.replace("_", "-"), value)
    clear = bool(values.pop("clear", False))
    quiet = bool(values.pop("quiet", False))
    verbose = bool(values.pop("verbose", False))
    if values.get("prompt") == ".":
        values["prompt"] = os.path.basename(os.getcwd())
    settings = Settings(path=Path(path), **{k.replace("-", "_"): v for k, v in values.items()})
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
    from .snapshots import Snapshots

    ns = _env_parser("info", "Show the environment's settings and state.").parse_args(argv)
    env = Environment.open(ns.path)
    rows = env.info() + Snapshots(env).info()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_reset(argv: list[str]) -> int:
    from .env import Environment
    from .snapshots import Snapshots

    ns = _env_parser(
        "reset", "Stop the environment and discard changes to its root (or go back to its frozen state)."
    ).parse_args(argv)
    Snapshots(Environment.open(ns.path)).reset()
    return 0


def cmd_destroy(argv: list[str]) -> int:
    from .env import Environment

    ns = _env_parser("destroy", "Stop the environment and remove everything it made.").parse_args(argv)
    env = Environment.open(ns.path)
    env.destroy()
    print(f"destroyed {env.path}")
    return 0


def _snapshot_parser() -> argparse.ArgumentParser:
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
    ls = sub.add_parser("list", help="list the snapshots", description="List the snapshots.")
    ls.add_argument("path", metavar="PATH", help="the environment's directory")
    for verb, what in (("restore", "bring back what a snapshot captured"), ("delete", "delete a snapshot")):
        r = sub.add_parser(verb, help=what, description=what[0].upper() + what[1:] + ".")
        r.add_argument("path", metavar="PATH", help="the environment's directory")
        r.add_argument("ref", metavar="NAME|ID", help="the snapshot's name or id")
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


def cmd_snapshot(argv: list[str]) -> int:
    from .env import Environment
    from .snapshots import Snapshots, human_size

    ns = _snapshot_parser().parse_args(argv)
    env = Environment.open(ns.path)
    snaps = Snapshots(env)
    if ns.action == "create":
        snap = snaps.create(ns.name)
        print(f"snapshot {snap.name} ({snap.id}) of {env.path}")
    elif ns.action == "list":
        _print_snapshots(snaps, human_size)
    elif ns.action == "restore":
        snap = snaps.restore(ns.ref)
        print(f"restored snapshot {snap.name} ({snap.id}) in {env.path}")
    elif ns.action == "delete":
        snap = snaps.delete(ns.ref)
        print(f"deleted snapshot {snap.name} ({snap.id}) of {env.path}")
    elif ns.off:
        if ns.pattern is not None or ns.name is not None:
            raise UsageError("--off takes no --pattern or --name")
        print(f"{snaps.configure(ns.program, None, None, off=True)}: no automatic snapshots any more")
    else:
        program = snaps.configure(ns.program, ns.pattern, ns.name)
        pattern, template = snaps.rules()[program]
        print(f"{program}: a snapshot named {template} before each call whose arguments match /{pattern}/")
        if not (env.bin_dir / program).is_file():
            print(f"note: {env.bin_dir / program} does not exist yet; the rule applies once it does")
    return 0


def _print_snapshots(snaps: Snapshots, human_size: Callable[[int], str]) -> None:
    import time

    found = snaps.all()
    if not found:
        print(f"no snapshots of {snaps.env_dir}")
        return
    sizes = snaps.sizes()
    current = snaps.current()
    frozen = snaps.frozen()
    rows = [("", "ID", "NAME", "CREATED", "SIZE", "")]
    for snap in found:
        notes = []
        if current is not None and snap.id == current.id:
            notes.append("current")
        if frozen is not None and snap.id == frozen.id:
            notes.append("frozen base")
        if snap.program:
            notes.append(f"before {snap.program}")
        rows.append(
            (
                "*" if "current" in notes else "",
                snap.id,
                snap.name,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.created)),
                human_size(sizes.get(snap.id, 0)),
                ", ".join(notes),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for mark, sid, name, created, size, notes in rows:
        cells = (mark.ljust(widths[0]), sid.ljust(widths[1]), name.ljust(widths[2]), created.ljust(widths[3]))
        print("  ".join((*cells, size.rjust(widths[4]), notes)).rstrip())
    print(f"total {human_size(sum(sizes.values()))} on disk (files shared between snapshots counted once)")


def cmd_freeze(argv: list[str]) -> int:
    from .env import Environment
    from .snapshots import Snapshots

    p = _env_parser(
        "freeze",
        "Make the current state the environment's base: changes last only until the session ends, "
        "and new snapshots are refused until `venvroot unfreeze`.",
    )
    p.add_argument("--name", help="name of the base snapshot (default: frozen-N)")
    ns = p.parse_args(argv)
    env = Environment.open(ns.path)
    snap = Snapshots(env).freeze(ns.name)
    print(f"froze {env.path} at snapshot {snap.name} ({snap.id})")
    return 0


def cmd_unfreeze(argv: list[str]) -> int:
    from .env import Environment
    from .snapshots import Snapshots

    ns = _env_parser("unfreeze", "Let changes to the environment last again.").parse_args(argv)
    env = Environment.open(ns.path)
    snap = Snapshots(env).unfreeze()
    print(f"unfroze {env.path} (its base stays as snapshot {snap.name})")
    return 0


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
    "snapshot": cmd_snapshot,
    "freeze": cmd_freeze,
    "unfreeze": cmd_unfreeze,
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
