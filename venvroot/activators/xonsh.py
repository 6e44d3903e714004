"""``bin/activate.xsh`` for xonsh."""

from __future__ import annotations

from .base import Activator


class XonshActivator(Activator):
    name = "xonsh"
    template = "activate.xsh"
    filename = "activate.xsh"

    def quote(self, value: str) -> str:
        # A plain Python literal, ASCII only so it reads the same whatever encoding xonsh assumes;
        # xonsh substitutes nothing inside an unprefixed string.
        return ascii(value)
