"""Automatic snapshots: the rules ``venvroot snapshot configure`` writes, and the snapshot a
matching program call takes before it runs."""

from __future__ import annotations

import os
import sys

from ..backends.envstate import AUTO_KEY, AUTO_NAME_KEY, auto_dir, frozen_id
from ..backends.settings import Settings
from ..errors import UsageError, VenvrootError
from .names import DEFAULT_AUTO_NAME, check_template

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .store import EnvLike


def rules(extra: dict[str, str]) -> dict[str, tuple[str, str]]:
    """PROGRAM -> (pattern, name template), from venvroot.cfg's keys (``Settings.extra``)."""
    return {
        key[len(AUTO_KEY) :]: (value, extra.get(AUTO_NAME_KEY + key[len(AUTO_KEY) :], DEFAULT_AUTO_NAME))
        for key, value in sorted(extra.items())
        if key.startswith(AUTO_KEY)
    }


def apply(env: EnvLike, program: str, args: list[str]) -> None:
    """Before ``program`` runs: take a snapshot when it has a rule and its arguments match
    (``re.search`` in the arguments joined by spaces). A script of the env's own ``bin`` that
    reached the interpreter's shim through its ``#!`` line (``python <env>/bin/pip install ...``)
    counts as that script. A frozen env takes none (its changes do not last anyway). A failed
    snapshot stops the program from running."""
    env_dir = env.dir
    name = program.rpartition("/")[2]
    if args and args[0].startswith(env_dir + "/bin/") and "/" not in args[0][len(env_dir) + 5 :]:
        name, args = args[0][len(env_dir) + 5 :], args[1:]
    pattern = env.settings.extra.get(AUTO_KEY + name)
    if pattern is None:
        return
    # re: not on the path of a shim whose program has no rule
    import re

    if not re.search(pattern, " ".join(args)) or frozen_id(env_dir):
        return
    # site-packages: only when a rule matches
    import site

    site.main()  # a shim runs without site-packages; the backend may need them (the docker SDK)
    # the snapshot store: only when a rule matches
    from .store import Snapshots

    template = env.settings.extra.get(AUTO_NAME_KEY + name) or DEFAULT_AUTO_NAME
    try:
        snap = Snapshots(env).create(program=name, template=template)
    except VenvrootError as exc:
        raise VenvrootError(
            f"automatic snapshot before `{name} {' '.join(args)}` failed, so it did not run: {exc}"
        ) from None
    sys.stderr.write(
        f"venvroot: snapshot {snap.name} taken (undo with: venvroot snapshot restore {env_dir} {snap.name})\n"
    )


def info(extra: dict[str, str]) -> list[tuple[str, str]]:
    """``venvroot info``'s row of the rules, if any."""
    found = rules(extra)
    text = "; ".join(f"{p} /{pat}/ -> {t}" for p, (pat, t) in found.items())
    return [("auto-snapshot", text)] if found else []


def configure(
    env: EnvLike, program: str, pattern: str | None, template: str | None, off: bool = False
) -> str:
    """Set (or with ``off`` remove) the rule of ``program``; return the program's name."""
    # re: not on the path of a shim whose program has no rule
    import re

    name = program_name(program)
    settings = Settings.from_cfg(env.dir)  # fresh: keep whatever changed meanwhile
    if off:
        if settings.extra.pop(AUTO_KEY + name, None) is None:
            raise UsageError(f"no automatic snapshot is configured for {name} in {env.dir}")
        settings.extra.pop(AUTO_NAME_KEY + name, None)
    else:
        if not pattern:
            raise UsageError("give --pattern REGEX (searched in the program's arguments), or --off")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--pattern {pattern!r} is not a valid regular expression: {exc}") from None
        settings.extra[AUTO_KEY + name] = pattern
        settings.extra[AUTO_NAME_KEY + name] = check_template(template or DEFAULT_AUTO_NAME)
    settings.save()
    env.settings.extra = settings.extra
    # A marker per rule, for shims whose backend has a fast way in that skips Python: with a
    # marker there, they take the Python path, which applies the rule.
    markers = auto_dir(env.dir)
    marker = os.path.join(markers, name)
    if off:
        if os.path.exists(marker):
            os.unlink(marker)
        if os.path.isdir(markers) and not os.listdir(markers):
            os.rmdir(markers)  # no rule left: fast ways in are fine again
    else:
        os.makedirs(markers, exist_ok=True)
        open(marker, "w").close()
    return name


def program_name(program: str) -> str:
    name = program.rstrip("/").rpartition("/")[2]
    if not name or name in (".", "..") or any(c.isspace() or c == "=" or ord(c) < 32 for c in name):
        raise UsageError(f"bad program {program!r}: give the name of a shim in the env's bin/")
    return name
