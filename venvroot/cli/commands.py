"""The verbs of the ``venvroot`` command, each a thin layer over :mod:`venvroot.env.environment`."""

from __future__ import annotations

import os
import sys
import time

from ..backends.settings import Settings
from ..env.environment import Environment, create
from ..errors import UsageError, VenvrootError
from ..ns.idmap import missing_range_hint
from ..util import progress
from ..util.progress import human_size
from .createargs import quick_parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from ..snapshots.store import Snapshots


def _quiet(quiet: bool) -> bool:
    """``-q``: no progress lines from here on."""
    if quiet:
        progress.set_quiet(True)
    return quiet


def cmd_create(argv: list[str]) -> int:
    # a create's option checks: not on the other verbs' paths (`venvroot run`)
    from ..env import compat, config

    # a create's option checks: not on the other verbs' paths (`venvroot run`)
    from ..env.options import check

    ns = quick_parse(argv)
    if ns is None:
        # argparse (~5 ms with re, gettext): not on a plain create's path
        from .parsers import create_parser

        ns = vars(create_parser().parse_args(argv))
    path = ns.pop("path")
    config_file = ns.pop("config", None)
    values: dict[str, object] = {}
    if config_file is not None:
        values.update(config.load(str(config_file)))
    elif os.path.isfile(config.DEFAULT_NAME):
        values.update(config.load(config.DEFAULT_NAME))
    values.update(config.from_environ(os.environ))
    for dest, value in ns.items():
        values[dest.replace("_", "-")] = check(dest.replace("_", "-"), value)
    clear = bool(values.pop("clear", False))
    quiet = _quiet(bool(values.pop("quiet", False)))
    verbose = bool(values.pop("verbose", False))
    compat.resolve(values, quiet)
    remote, local = values.pop("remote", False), values.pop("local", False)
    if remote and local:
        raise UsageError("--remote and --local contradict each other: give one")
    if remote or local:
        values["mapping"] = "remote" if remote else "local"
    if values.get("prompt") == ".":
        values["prompt"] = os.path.basename(os.getcwd())
    settings = Settings(str(path), None, **{k.replace("-", "_"): v for k, v in values.items()})
    env = create(settings, clear=clear)
    if not quiet:
        print(f"created venvroot environment {env.dir} (backend {settings.backend})")
        if verbose:
            for key, value in env.info():
                print(f"  {key}: {value}")
        print(f"activate with: source {env.dir}/bin/activate")
    if settings.backend == "ns" and settings.user == "root":
        hint = missing_range_hint()  # rootless, root inside owns nothing but the user's own files
        if hint:
            print(f"venvroot: warning: {hint}", file=sys.stderr)
    return 0


def env_parser(verb: str, help: str) -> argparse.ArgumentParser:
    # argparse (~5 ms with re, gettext): not on a plain create's path
    from . import parsers

    return parsers.env_parser(verb, help)


def snapshot_parser() -> argparse.ArgumentParser:
    # argparse (~5 ms with re, gettext): not on a plain create's path
    from . import parsers

    return parsers.snapshot_parser()


def cmd_run(argv: list[str]) -> int:
    # argparse: not on a plain create's path
    import argparse

    p = env_parser("run", "Run a command inside the environment, as a shim would.")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    ns = p.parse_args(argv)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if not command:
        raise UsageError("no command given: venvroot run PATH -- CMD [ARG...]")
    return Environment.open(ns.path).run(command)


def cmd_shell(argv: list[str]) -> int:
    # shlex, tempfile (~13 ms): only `venvroot shell` needs them
    from .shell import exec_activated_shell

    ns = env_parser("shell", "Start your current shell with the environment activated.").parse_args(argv)
    exec_activated_shell(Environment.open(ns.path))
    return 0  # not reached


def cmd_link(argv: list[str]) -> int:
    return _shims("link", "Add shims to the environment's bin/ for programs inside its root.", argv)


def cmd_unlink(argv: list[str]) -> int:
    return _shims("unlink", "Remove shims from the environment's bin/.", argv)


def _shims(verb: str, help: str, argv: list[str]) -> int:
    """``link`` / ``unlink``: the environment's method of that name, one line per shim."""
    p = env_parser(verb, help)
    p.add_argument("programs", nargs="+", metavar="PROGRAM")
    ns = p.parse_args(argv)
    for path in getattr(Environment.open(ns.path), verb)(ns.programs):
        print(f"{verb}ed {path}")
    return 0


def cmd_sync(argv: list[str]) -> int:
    ns = env_parser("sync", "Add shims for programs installed inside since the last sync.").parse_args(argv)
    for path in Environment.open(ns.path).sync():
        print(f"linked {path}")
    return 0


def cmd_info(argv: list[str]) -> int:
    # the snapshot store: not on a create's or `venvroot run`'s path
    from ..snapshots import rules
    from ..snapshots.store import Snapshots

    ns = env_parser("info", "Show the environment's settings and state.").parse_args(argv)
    env = Environment.open(ns.path)
    rows = env.info() + Snapshots(env).info() + rules.info(env.settings.extra)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_reset(argv: list[str]) -> int:
    # the snapshot store: not on a create's or `venvroot run`'s path
    from ..snapshots.store import Snapshots

    ns = env_parser(
        "reset", "Stop the environment and discard changes to its root (or go back to its frozen state)."
    ).parse_args(argv)
    Snapshots(Environment.open(ns.path)).reset()
    return 0


def cmd_destroy(argv: list[str]) -> int:
    ns = env_parser("destroy", "Stop the environment and remove everything it made.").parse_args(argv)
    env = Environment.open(ns.path)
    env.destroy()
    print(f"destroyed {env.dir}")
    return 0


def cmd_push(argv: list[str]) -> int:
    return _transfer(
        "push", "Copy files from this machine into the env's volumes on its remote engine.", argv
    )


def cmd_pull(argv: list[str]) -> int:
    return _transfer("pull", "Copy files from the env's volumes on its remote engine to this machine.", argv)


def _transfer(verb: str, help: str, argv: list[str]) -> int:
    p = env_parser(verb, help)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: every mapping)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    ns = p.parse_args(argv)
    if ns.quiet:
        progress.set_quiet(True)
    Environment.open(ns.path).transfer(verb, ns.paths)
    return 0


def cmd_snapshot(argv: list[str]) -> int:
    # the snapshot store: not on a create's or `venvroot run`'s path
    from ..snapshots import rules
    from ..snapshots.store import Snapshots

    ns = snapshot_parser().parse_args(argv)
    quiet = _quiet(getattr(ns, "quiet", False))
    env = Environment.open(ns.path)
    snaps = Snapshots(env)
    if ns.action == "create":
        snap = snaps.create(ns.name)
        if not quiet:
            print(f"snapshot {snap.name} ({snap.id}) of {env.dir}")
    elif ns.action == "list":
        _print_snapshots(snaps, human_size)
    elif ns.action == "restore":
        snap = snaps.restore(ns.ref)
        if not quiet:
            print(f"restored snapshot {snap.name} ({snap.id}) in {env.dir}")
    elif ns.action == "delete":
        snap = snaps.delete(ns.ref)
        print(f"deleted snapshot {snap.name} ({snap.id}) of {env.dir}")
    elif ns.off:
        if ns.pattern is not None or ns.name is not None:
            raise UsageError("--off takes no --pattern or --name")
        print(f"{rules.configure(env, ns.program, None, None, off=True)}: no automatic snapshots any more")
    else:
        program = rules.configure(env, ns.program, ns.pattern, ns.name)
        pattern, template = rules.rules(env.settings.extra)[program]
        print(f"{program}: a snapshot named {template} before each call whose arguments match /{pattern}/")
        shim = f"{env.dir}/bin/{program}"
        if not os.path.isfile(shim):
            print(f"note: {shim} does not exist yet; the rule applies once it does")
    return 0


def _print_snapshots(snaps: Snapshots, human_size: Callable[[int], str]) -> None:
    found = snaps.all()
    if not found:
        print(f"no snapshots of {snaps.env_dir}")
        return
    sizes = snaps.sizes()
    current = snaps.current()
    frozen = snaps.frozen()
    rows: list[tuple[str, str, str, str, str, str]] = [("", "ID", "NAME", "CREATED", "SIZE", "")]
    for snap in found:
        notes: list[str] = []
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
    for mark, sid, name, created, size, note in rows:
        cells = (mark.ljust(widths[0]), sid.ljust(widths[1]), name.ljust(widths[2]), created.ljust(widths[3]))
        print("  ".join((*cells, size.rjust(widths[4]), note)).rstrip())
    print(f"total {human_size(sum(sizes.values()))} on disk (files shared between snapshots counted once)")


def cmd_freeze(argv: list[str]) -> int:
    # the snapshot store: not on a create's or `venvroot run`'s path
    from ..snapshots.freeze import freeze
    from ..snapshots.store import Snapshots

    p = env_parser(
        "freeze",
        "Make the current state the environment's base: changes last only until the session ends, "
        "and new snapshots are refused until `venvroot unfreeze`.",
    )
    p.add_argument("--name", help="name of the base snapshot (default: frozen-N)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line and no report")
    ns = p.parse_args(argv)
    _quiet(ns.quiet)
    env = Environment.open(ns.path)
    snap = freeze(Snapshots(env), ns.name)
    if not ns.quiet:
        print(f"froze {env.dir} at snapshot {snap.name} ({snap.id})")
    return 0


def cmd_unfreeze(argv: list[str]) -> int:
    # the snapshot store: not on a create's or `venvroot run`'s path
    from ..snapshots.freeze import unfreeze
    from ..snapshots.store import Snapshots

    ns = env_parser("unfreeze", "Let changes to the environment last again.").parse_args(argv)
    env = Environment.open(ns.path)
    snap = unfreeze(Snapshots(env))
    print(f"unfroze {env.dir} (its base stays as snapshot {snap.name})")
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
    "push": cmd_push,
    "pull": cmd_pull,
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
        if "--with-traceback" in args:
            # traceback: only for a crash's report
            import traceback

            traceback.print_exc()
        print(f"venvroot: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
