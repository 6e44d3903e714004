"""Snapshot names: the characters allowed, the templates that make them, and new ids."""

from __future__ import annotations

import os
import time

from ..errors import UsageError

DEFAULT_NAME = "snap-{n}"
FREEZE_NAME = "frozen-{n}"
DEFAULT_AUTO_NAME = "{program}-{id}"
PLACEHOLDERS = ("id", "n", "program", "date", "time")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+@")


def check_name(name: str) -> str:
    if not name or len(name) > 100 or not set(name) <= _NAME_CHARS or name[0] in ".-":
        raise UsageError(
            f"bad snapshot name {name!r}: use up to 100 letters, digits and . _ - + @, "
            "not starting with . or -"
        )
    return name


def render_name(template: str, *, sid: str, n: int, program: str, when: float) -> str:
    stamp = time.localtime(when)
    values = {
        "id": sid,
        "n": str(n),
        "program": program,
        "date": time.strftime("%Y%m%d", stamp),
        "time": time.strftime("%H%M%S", stamp),
    }
    try:
        return template.format_map(values)
    except KeyError as exc:
        raise UsageError(
            f"name template {template!r}: unknown placeholder {{{exc.args[0]}}}; use "
            + " ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        ) from None
    except (ValueError, IndexError, AttributeError) as exc:
        raise UsageError(
            f"name template {template!r} is malformed ({exc}); write placeholders as {{id}}"
        ) from None


def check_template(template: str) -> str:
    check_name(render_name(template, sid="0123abcd", n=1, program="prog", when=0.0))
    return template


def unique(base: str, taken: set[str]) -> str:
    """``base``, or ``base.2``, ``base.3``... whichever is not taken."""
    name, k = base, 2
    while name in taken:
        name, k = f"{base}.{k}", k + 1
    return name


def new_id(taken: set[str]) -> str:
    while True:
        sid = os.urandom(4).hex()
        if sid not in taken:
            return sid
