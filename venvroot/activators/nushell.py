"""``bin/activate.nu`` for nushell."""

from __future__ import annotations

from .base import Activator

# nushell's escapes for the control characters a path or prompt may hold; others go as \u{..}.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class NushellActivator(Activator):
    name = "nushell"
    template = "activate.nu"
    filename = "activate.nu"

    def quote(self, value: str) -> str:
        # A plain double-quoted string interpolates nothing ($"..." would); only its escapes act.
        if "\0" in value:
            raise ValueError(f"a shell string cannot hold a NUL character: {value!r}")
        out = []
        for char in value:
            if char in _ESCAPES:
                out.append(_ESCAPES[char])
            elif ord(char) < 0x20 or ord(char) == 0x7F:
                out.append(f"\\u{{{ord(char):x}}}")
            else:
                out.append(char)
        return '"' + "".join(out) + '"'
