"""virtualenv's create flags that are no setting of venvroot's: their checks, and one line each for
those that mean nothing for venvroot (printed unless ``-q``)."""

from __future__ import annotations

import sys

from ..errors import UsageError

# The values virtualenv's --creator, --seeder and --discovery take that describe what venvroot does
# anyway (the env's Python made with the root's own interpreter, pip from virtualenv's embedded wheel,
# -p looked up inside the root), and venvroot's own name for each.
CHOICES: dict[str, tuple[str, ...]] = {
    "creator": ("venvroot", "builtin", "venv", "cpython3-posix"),
    "seeder": ("venvroot", "app-data", "pip"),
    "discovery": ("venvroot", "builtin"),
}
APP_DATA = "venvroot keeps no app data (pip is unpacked from virtualenv's embedded wheel): ignored"
NO_SENSE: dict[str, str] = {
    "copies": "the env's interpreter is the root's own, bound over bin/python inside, so there is "
    "nothing to copy: ignored",
    "app-data": APP_DATA,
    "reset-app-data": APP_DATA,
    "read-only-app-data": APP_DATA,
    "symlink-app-data": APP_DATA,
    "upgrade-embed-wheels": "venvroot seeds virtualenv's embedded wheels as installed; upgrade virtualenv "
    "to get newer ones: ignored",
}
# Flags that only say what venvroot does anyway.
ALWAYS = ("symlinks", "no-setuptools", "no-wheel", "no-download", "no-periodic-update", "with-traceback")
KEYS = (*CHOICES, *NO_SENSE, *ALWAYS, "without-pip", "download")


def check_choice(key: str, value: str) -> str:
    if value not in CHOICES[key]:
        raise UsageError(
            f"--{key} {value!r}: venvroot does this one way; choose one of {', '.join(CHOICES[key])}"
        )
    return value


def resolve(values: dict[str, object], quiet: bool) -> None:
    """Take virtualenv's flags out of ``values`` (option keys), folding --without-pip and --download
    into ``pip``; refuse what contradicts itself."""
    given = {key: values.pop(key) for key in KEYS if values.get(key) not in (None, False)}
    if "symlinks" in given and "copies" in given:
        raise UsageError("--symlinks and --copies contradict each other: give one")
    pip = values.get("pip")
    if "without-pip" in given:
        if pip not in (None, "none"):
            raise UsageError(f"--without-pip and --pip {pip} contradict each other: give one")
        values["pip"] = "none"
    if "download" in given:
        if "no-download" in given:
            raise UsageError("--download and --no-download contradict each other: give one")
        if pip in (None, "embed", "bundle"):
            values["pip"] = "latest"
    if "no-download" in given and values.get("pip") not in (None, "embed", "bundle", "none"):
        raise UsageError(f"--pip {values['pip']} fetches pip, which --no-download forbids: drop one")
    if quiet:
        return
    for key in given:
        if key in NO_SENSE:
            print(f"venvroot: --{key}: {NO_SENSE[key]}", file=sys.stderr)
