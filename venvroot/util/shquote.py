"""One sh word for any text, exactly as ``shlex.quote`` writes it (shlex imports re, a few
milliseconds that neither a create nor a shim should pay)."""

from __future__ import annotations

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-")


def quote(text: str) -> str:
    if text and all(c in _SAFE for c in text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"
