"""Write a file whole or not at all: a reader (a shim reading venvroot.cfg, a snapshot listing)
sees the old text or the new one, never half of it."""

from __future__ import annotations

import os


def write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib costs a create ~1.5 ms to import
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
