"""The ``venvroot`` command.

``venvroot PATH [options]`` (or ``venvroot create PATH``) creates an environment; the other verbs
act on an existing one (:mod:`venvroot.cli.commands`). ``venvroot chroot`` goes straight to the
namespace runner's CLI, before anything else is imported, because it is timed like chroot(1).
Errors print one line and exit 1 (2 for usage errors).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chroot"]:
        # `venvroot chroot` imports nothing else of venvroot: it is timed like chroot(1)
        from ..ns.cli import main as chroot_main

        return chroot_main(argv[1:])
    # the verbs: not on `venvroot chroot`'s path
    from .commands import dispatch

    return dispatch(argv)
