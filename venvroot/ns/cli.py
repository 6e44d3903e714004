"""``venvroot chroot [options] ROOT [COMMAND [ARG...]]``: chroot(1) in namespaces, with mounts.

The parser is written out by hand: argparse costs several milliseconds on a path that is timed.
"""

from __future__ import annotations

import os
import sys

from ..version import __version__
from . import process, program, runner
from .errors import ChrootError
from .mounts import DEFAULT_MOUNTPOINTS, from_mountpoints
from .paths import exists_in_root, read_in_root

PROG = "venvroot chroot"
STATUS_FAILED = process.STATUS_SETUP_FAILED  # 125, as chroot(1) uses for its own failures

USAGE = f"""usage: {PROG} [options] ROOT [COMMAND [ARG...]]

Run COMMAND (default: $SHELL -i, or /bin/sh -i when ROOT has no $SHELL) with ROOT as its root
directory, in new namespaces: rootless through a user namespace, with the host's /dev, a /proc,
a /sys, a /dev/shm and /etc/resolv.conf mounted inside. Nothing is mounted in the host, and the
mount points created in ROOT are removed afterwards.

options:
  -B, --bind SRC[:DEST]     bind SRC at DEST (default: the same path); SRC is a host path,
                            proc, sysfs, tmpfs, or $VAR (a path from the environment)
  -R, --rbind SRC[:DEST]    bind SRC with its submounts
  --ro, --readonly SRC[:DEST]
                            bind SRC read-only, with its submounts
  --no-mounts               no default mounts, like chroot(1)
  --hostname NAME           hostname inside; an FQDN sets the domain name too
  --skip-chdir              stay in the current directory instead of changing to /
  --user USER               who you are inside: root (default), self (your own uid/gid),
                            UID[:GID], or NAME[:GROUP] from ROOT's /etc/passwd and /etc/group
  --pid, --no-pid           new PID namespace (default: on)
  --net, --no-net           new network namespace with only loopback (default: off)
  -h, --help                show this help and exit
  --version                 show the version and exit

exit status: COMMAND's; 128+N when it is killed by signal N; 126 when it cannot be run;
127 when it is not found; 125 when {PROG} itself fails.
"""

_WITH_VALUE = {
    "-B": "bind",
    "--bind": "bind",
    "-R": "rbind",
    "--rbind": "rbind",
    "--ro": "ro",
    "--readonly": "ro",
    "--hostname": "hostname",
    "--user": "user",
}
_FLAGS = {
    "--no-mounts": ("no_mounts", True),
    "--skip-chdir": ("skip_chdir", True),
    "--pid": ("pid", True),
    "--no-pid": ("pid", False),
    "--net": ("net", True),
    "--no-net": ("net", False),
}


class _UsageError(Exception):
    pass


def main(argv: list[str]) -> int:
    """Entry point for ``venvroot chroot``; returns a status only when the command could not run."""
    program.PROGRAM = PROG
    try:
        opts, root, command = _parse(argv)
    except _UsageError as exc:
        _error(f"{exc}; see '{PROG} --help'")
        return STATUS_FAILED
    if opts.get("help"):
        sys.stdout.write(USAGE)
        return 0
    if opts.get("version"):
        sys.stdout.write(f"{PROG} (venvroot) {__version__}\n")
        return 0
    try:
        root = os.path.abspath(root)
        uid, gid = _user(opts.get("user", "root"), root)
        keys: dict[str, dict[str, bool]] = {}
        for kind, value in opts.get("mounts", []):
            keys[value] = {
                "bind": {},
                "rbind": {"recursive": True},
                "ro": {"recursive": True, "readonly": True},
            }[kind]
        mounts = from_mountpoints(keys, None if opts.get("no_mounts") else DEFAULT_MOUNTPOINTS)
        if not command:
            command = [_default_shell(root), "-i"]
        runner.exec_command(
            root,
            command,
            mounts=mounts,
            uid=uid,
            gid=gid,
            hostname=opts.get("hostname"),
            pid=opts.get("pid", True),
            net=opts.get("net", False),
            skip_chdir=opts.get("skip_chdir", False),
        )
    except ChrootError as exc:
        _error(str(exc))
    return STATUS_FAILED


def _parse(argv: list[str]) -> tuple[dict, str, list[str]]:
    opts: dict = {}
    args = list(argv)
    while args:
        arg = args[0]
        if arg == "--":
            args.pop(0)
            break
        if not arg.startswith("-") or arg == "-":
            break
        args.pop(0)
        if arg in ("-h", "--help"):
            return {"help": True}, "", []
        if arg == "--version":
            return {"version": True}, "", []
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg[:2], "", arg[2:])
        if name in _FLAGS and not eq and not value:
            key, flag = _FLAGS[name]
            opts[key] = flag
            continue
        if name not in _WITH_VALUE:
            raise _UsageError(f"unknown option {arg!r}")
        if not eq and not value:
            if not args:
                raise _UsageError(f"{name} needs a value")
            value = args.pop(0)
        key = _WITH_VALUE[name]
        if key in ("bind", "rbind", "ro"):
            if not value or value.startswith(":"):
                raise _UsageError(f"{name} needs SRC[:DEST], got {value!r}")
            opts.setdefault("mounts", []).append((key, value))
        else:
            opts[key] = value
    if not args:
        raise _UsageError("missing ROOT")
    return opts, args[0], args[1:]


def _user(spec: str, root: str) -> tuple[int | None, int | None]:
    """``--user``: root, self, UID[:GID] or NAME[:GROUP] (names from the root's files)."""
    if spec == "root":
        return 0, 0
    me = os.geteuid()
    if spec in ("self", str(me)):
        return None, None
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid, gid = int(user), None
    else:
        entry = _lookup(root, "/etc/passwd", user)
        if entry is None:
            raise ChrootError(f"bad --user {spec!r}: no user {user!r} in {root}/etc/passwd (use UID[:GID])")
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            entry = _lookup(root, "/etc/group", group)
            if entry is None:
                raise ChrootError(f"bad --user {spec!r}: no group {group!r} in {root}/etc/group")
            gid = int(entry[2])
    return uid, uid if gid is None else gid


def _lookup(root: str, path: str, name: str) -> list[str] | None:
    data = read_in_root(root, path)
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if (
            len(fields) >= 4
            and fields[0] == name
            and fields[2].isdigit()
            and fields[3 if path.endswith("passwd") else 2].isdigit()
        ):
            return fields
    return None


def _default_shell(root: str) -> str:
    shell = os.environ.get("SHELL")
    if shell and shell.startswith("/") and exists_in_root(root, shell):
        return shell
    return "/bin/sh"


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
