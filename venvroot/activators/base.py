"""The activator base: a small class per shell renders its jinja2 template into ``<env>/bin``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .. import templates


@dataclass(frozen=True)
class ActivationContext:
    """What every activate script needs to know. All values are data, never code."""

    env_dir: str  # absolute path of the environment
    bin_dir: str  # <env_dir>/bin, prepended to PATH
    prompt: str  # shown as "(prompt) " and exported as VIRTUAL_ENV_PROMPT
    # Program called as `<session> start <shell-pid>` after activating and
    # `<session> stop <shell-pid>` when deactivating; None when the backend needs no session.
    session: str | None = None


class Activator:
    """Renders ``template`` (a file beside the subclass's module) to ``bin/<filename>``."""

    name: ClassVar[str]
    template: ClassVar[str]
    filename: ClassVar[str]

    def quote(self, value: str) -> str:
        """Quote ``value`` as a literal string in this shell's syntax."""
        raise NotImplementedError

    def render(self, ctx: ActivationContext) -> str:
        return templates.render(str(Path(__file__).parent), self.template, self.quote, ctx=ctx)

    def generate(self, ctx: ActivationContext) -> Path:
        dest = Path(ctx.bin_dir) / self.filename
        dest.write_text(self.render(ctx), encoding="utf-8")
        os.chmod(dest, 0o644)  # sourced, never executed
        return dest
