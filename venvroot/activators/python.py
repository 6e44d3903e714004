"""``bin/activate_this.py``: the env's site-packages and variables for a host Python that execs it."""

from __future__ import annotations

from .base import Activator


class PythonActivator(Activator):
    # Written into every env beside the shell scripts; not a shell, so it has no session to start.
    name = "python"
    template = "activate_this.py.tmpl"
    filename = "activate_this.py"

    def quote(self, value: str) -> str:
        # A plain Python literal, ASCII only so it reads the same whatever the source encoding.
        return ascii(value)
