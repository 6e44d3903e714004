"""``bin/activate``: one script for bash, zsh and POSIX shells such as dash."""

from __future__ import annotations

from .base import Activator


class BashActivator(Activator):
    name = "bash"
    template = "activate.sh"
    filename = "activate"

    def quote(self, value: str) -> str:
        # Everything inside single quotes is literal in every Bourne shell (and under zsh's RC_QUOTES,
        # since '\'' never leaves two quotes side by side inside a quoted run).
        if "\0" in value:
            raise ValueError(f"a shell string cannot hold a NUL character: {value!r}")
        return "'" + value.replace("'", "'\\''") + "'"
