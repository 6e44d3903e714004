"""``bin/activate.fish`` for fish."""

from __future__ import annotations

from .base import Activator


class FishActivator(Activator):
    name = "fish"
    template = "activate.fish"
    filename = "activate.fish"

    def quote(self, value: str) -> str:
        # Inside fish single quotes only \\ and \' are escapes; $, (, ), *, ~ and newlines are literal.
        if "\0" in value:
            raise ValueError(f"a shell string cannot hold a NUL character: {value!r}")
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
