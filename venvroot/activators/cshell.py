"""``bin/activate.csh`` for tcsh and csh."""

from __future__ import annotations

from .base import ActivationContext, Activator


class CShellActivator(Activator):
    name = "cshell"
    template = "activate.csh"
    filename = "activate.csh"

    def quote(self, value: str) -> str:
        # csh single quotes still let `!` (history) and, under tcsh's backslash_quote, `\` act, so both
        # are written outside the quotes, backslash-escaped. A newline needs a backslash before it to
        # stay inside a quoted word.
        if "\0" in value:
            raise ValueError(f"a shell string cannot hold a NUL character: {value!r}")
        special = {"'": "'\\''", "\\": "'\\\\'", "!": "'\\!'", "\n": "\\\n"}
        return "'" + "".join(special.get(char, char) for char in value) + "'"

    def values(self, ctx: ActivationContext) -> dict[str, str | None]:
        # The prompt text for each shell's prompt rules: tcsh draws its prompt through % sequences, `!`
        # (the history number), `^X` (control characters) and backslash escapes; csh only through `!`.
        # Each gets the escape that draws the character itself.
        text = ctx.prompt
        tcsh = text.replace("\\", "\\\\").replace("%", "%%").replace("!", "\\!").replace("^", "\\^")
        return {**super().values(ctx), "tcsh_prompt": tcsh, "csh_prompt": text.replace("!", "\\!")}
