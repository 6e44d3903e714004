"""The create command line: one table of its options, read by argparse and by a quick parser.

A create is timed against ``python -m venv``, and argparse with the gettext and locale modules it
pulls in costs a few milliseconds. A plain command line (exact option names, values that do not
start with '-', one PATH) is read here without argparse; anything else (``--help``, an abbreviation,
a mistake) goes to argparse, which gives the same result or the usual error.
"""

from __future__ import annotations

VIRTUALENV, VENVROOT = "virtualenv options", "venvroot options"

# (group, option strings, action, metavar, help); action is "store", "store_true" or "append".
OPTIONS: tuple[tuple[str, tuple[str, ...], str, str | None, str], ...] = (
    (VIRTUALENV, ("--clear",), "store_true", None, "replace an existing venvroot/virtualenv environment"),
    (VIRTUALENV, ("--prompt",), "store", None, "prompt prefix ('.' = the current directory's name)"),
    (
        VIRTUALENV,
        ("--activators",),
        "store",
        None,
        "comma-separated: bash,fish,cshell,xonsh,nushell (default all)",
    ),
    (VIRTUALENV, ("-p", "--python"), "store", None, "interpreter (inside the root) for the env's Python"),
    (VIRTUALENV, ("--no-vcs-ignore",), "store_true", None, "do not write .gitignore"),
    (
        VIRTUALENV,
        ("--system-site-packages",),
        "store_true",
        None,
        "the env's Python sees the root's site-packages",
    ),
    (VIRTUALENV, ("--symlinks",), "store_true", None, "interpreter links, not copies (the default)"),
    (
        VIRTUALENV,
        ("--copies", "--always-copy"),
        "store_true",
        None,
        "no sense here: the root's interpreter is used",
    ),
    (VIRTUALENV, ("--without-pip", "--no-pip"), "store_true", None, "do not install pip"),
    (VIRTUALENV, ("--no-setuptools",), "store_true", None, "(always: venvroot installs no setuptools)"),
    (VIRTUALENV, ("--no-wheel",), "store_true", None, "(always: venvroot installs no wheel)"),
    (
        VIRTUALENV,
        ("--pip",),
        "store",
        "VERSION",
        "embed/bundle (default), none, latest or a version (fetched)",
    ),
    (
        VIRTUALENV,
        ("--seeder",),
        "store",
        None,
        "venvroot, app-data or pip: pip from virtualenv's embedded wheel",
    ),
    (VIRTUALENV, ("--download",), "store_true", None, "upgrade pip from the package index after create"),
    (VIRTUALENV, ("--no-download", "--never-download"), "store_true", None, "fetch nothing (the default)"),
    (VIRTUALENV, ("--app-data",), "store", "DIR", "no sense here: venvroot keeps no app data"),
    (VIRTUALENV, ("--reset-app-data",), "store_true", None, "no sense here: venvroot keeps no app data"),
    (VIRTUALENV, ("--read-only-app-data",), "store_true", None, "no sense here: venvroot keeps no app data"),
    (VIRTUALENV, ("--symlink-app-data",), "store_true", None, "no sense here: venvroot keeps no app data"),
    (
        VIRTUALENV,
        ("--creator",),
        "store",
        None,
        "venvroot (virtualenv's builtin, venv, cpython3-posix: the same)",
    ),
    (VIRTUALENV, ("--discovery",), "store", None, "venvroot or builtin: -p is looked up inside the root"),
    (VIRTUALENV, ("--try-first-with",), "append", "PATH", "an interpreter inside the root tried before -p"),
    (VIRTUALENV, ("--no-periodic-update",), "store_true", None, "(always: venvroot updates no wheels)"),
    (
        VIRTUALENV,
        ("--upgrade-embed-wheels",),
        "store_true",
        None,
        "no sense here: upgrade virtualenv instead",
    ),
    (VIRTUALENV, ("--with-traceback",), "store_true", None, "on failure, print the traceback too"),
    (VIRTUALENV, ("-q", "--quiet"), "store_true", None, "print nothing on success"),
    (VIRTUALENV, ("-v", "--verbose"), "store_true", None, "say more"),
    (VENVROOT, ("--backend",), "store", None, "ns (namespaces, default) or docker"),
    (
        VENVROOT,
        ("--root",),
        "store",
        None,
        "ns root: a directory, a tarball, docker:IMAGE or debian:SUITE (default: the host, CoW)",
    ),
    (VENVROOT, ("--image",), "store", None, "docker image for --backend docker"),
    (VENVROOT, ("--user",), "store", None, "root, or [system:][ID:]NAME (default: you)"),
    (VENVROOT, ("--directory",), "append", "HOST[:INSIDE][:rw|ro]", "extra mapping"),
    (VENVROOT, ("--link",), "append", "PROGRAM", "add a shim for PROGRAM"),
    (VENVROOT, ("--persistent",), "store_true", None, "keep processes running after deactivate"),
    (VENVROOT, ("--pid",), "store_true", None, "ns: a PID namespace of its own: programs see only the env's"),
    (VENVROOT, ("--on-activate",), "append", "CMD", "run CMD inside at activation"),
    (VENVROOT, ("--on-deactivate",), "append", "CMD", "run CMD inside at deactivation"),
    (VENVROOT, ("--hostname",), "store", None, "hostname inside (an FQDN sets the domain name too)"),
    (
        VENVROOT,
        ("--remote",),
        "store_true",
        None,
        "docker: the engine is not on this machine (volumes, push/pull)",
    ),
    (
        VENVROOT,
        ("--local",),
        "store_true",
        None,
        "docker: the engine sees this machine's files (bind mounts)",
    ),
    (VENVROOT, ("--config",), "store", "FILE", "TOML defaults (default: ./{config})"),
)


def dest(flags: tuple[str, ...]) -> str:
    """argparse's name for an option: its first long name, '-' made '_'."""
    return next(f for f in flags if f.startswith("--"))[2:].replace("-", "_")


def quick_parse(argv: list[str]) -> dict[str, object] | None:
    """What argparse would give for a plain create command line (set options only), else None."""
    table = {flag: (dest(flags), action) for _, flags, action, _, _ in OPTIONS for flag in flags}
    out: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg[:1] != "-" or arg == "-":
            if "path" in out:
                return None
            out["path"] = arg
            continue
        name, eq, value = arg.partition("=")
        spec = table.get(name)
        if spec is None or (eq and not name.startswith("--")):  # (argparse reads "-p=x" as "=x")
            return None
        key, action = spec
        if action == "store_true":
            if eq:
                return None
            out[key] = True
            continue
        if not eq:
            if i == len(argv) or argv[i][:1] == "-":
                return None
            value = argv[i]
            i += 1
        elif value == "--":  # argparse drops a "--" even from "--opt=--"
            return None
        if action == "append":
            items = out.setdefault(key, [])
            assert isinstance(items, list)
            items.append(value)
        else:
            out[key] = value
    return out if "path" in out else None
