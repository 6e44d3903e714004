"""The activator base: a small class per shell computes the values its template lays out."""

from __future__ import annotations

import os

from ..util import templates

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

HERE = os.path.dirname(__file__)


class ActivationContext:
    """What every activate script needs to know. All values are data, never code."""

    __slots__ = ("bin_dir", "env_dir", "prompt", "session")

    def __init__(self, env_dir: str, bin_dir: str, prompt: str, session: str | None = None) -> None:
        self.env_dir = env_dir  # absolute path of the environment
        self.bin_dir = bin_dir  # <env_dir>/bin, prepended to PATH
        self.prompt = prompt  # shown as "(prompt) " and exported as VIRTUAL_ENV_PROMPT
        # Program called as `<session> start <shell-pid>` after activating and
        # `<session> stop <shell-pid>` when deactivating; None when the backend needs no session.
        self.session = session

    def __repr__(self) -> str:
        return (
            f"ActivationContext(env_dir={self.env_dir!r}, bin_dir={self.bin_dir!r}, "
            f"prompt={self.prompt!r}, session={self.session!r})"
        )


class Activator:
    """Renders ``template`` (a file beside the subclass's module) to ``bin/<filename>``."""

    name: ClassVar[str]
    template: ClassVar[str]
    filename: ClassVar[str]

    def quote(self, value: str) -> str:
        """Quote ``value`` as a literal string in this shell's syntax (the templates' ``|q``)."""
        raise NotImplementedError

    def values(self, ctx: ActivationContext) -> dict[str, str | None]:
        """The template's variables (see venvroot.util.templates: a string is data, None leaves parts out).
        A shell that needs a value worked out (an escaped prompt) adds it here."""
        return {"env_dir": ctx.env_dir, "bin_dir": ctx.bin_dir, "prompt": ctx.prompt, "session": ctx.session}

    def render(self, ctx: ActivationContext) -> str:
        return templates.render(HERE, self.template, self.quote, self.values(ctx))

    def generate(self, ctx: ActivationContext) -> str:
        """Write ``bin/<filename>``; return its path."""
        dest = os.path.join(ctx.bin_dir, self.filename)
        with open(dest, "w", encoding="utf-8") as handle:
            handle.write(self.render(ctx))
        os.chmod(dest, 0o644)  # sourced, never executed
        return dest
