"""``bin/activate``: one script for bash, zsh and POSIX shells such as dash."""

from __future__ import annotations

from .base import ActivationContext, Activator


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

    def values(self, ctx: ActivationContext) -> dict[str, str | None]:
        # "(prompt) " escaped once for each shell's prompt rules (zsh takes it as data from psvar).
        # bash decodes backslash escapes, then (promptvars, the default) expands $ ` \ as in double
        # quotes; in posix mode it draws a bare ! as the history number, so ! is the octal escape \041.
        # dash (0.5.11 on) only expands. busybox ash expands, then decodes backslash escapes: $ and \
        # are octal escapes there.
        text = ctx.prompt
        bash = text.replace("\\", "\\\\\\\\").replace("$", "\\\\$").replace("`", "\\\\`")
        bash = bash.replace("!", "\\041")
        sh = text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
        busybox = text.replace("\\", "\\134").replace("$", "\\044").replace("`", "\\`")
        return {
            **super().values(ctx),
            "bash_prompt": f"({bash}) ",
            "sh_prompt": f"({sh}) ",
            "busybox_prompt": f"({busybox}) ",
        }
