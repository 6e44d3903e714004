"""Run one program in an environment: what every shim and ``venvroot run`` do.

On the shims' hot path (``cli/shimentry.py``): builtins and venvroot's light modules only.
``main`` is the shims' entry: ``ENV PROGRAM [ARG...]``, or ``--manage ENV VERB [ARG...]`` for
``bin/destroy`` and the activate scripts' session hook.
"""

from __future__ import annotations

import os
import sys

from ..backends import envconfig
from ..backends.envstate import AUTO_KEY
from ..backends.ns import rangehint
from ..backends.ns.layout import BRAIN
from ..errors import VenvrootError


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["--manage"] and len(argv) >= 3:
            return manage(argv[1], argv[2], argv[3:])
        if argv[:1] == [BRAIN] and len(argv) == 5:
            # the ns backend's brain: not on a shim's path
            from ..backends.ns.brain import main as brain

            return brain(*argv[1:])
        if len(argv) < 2:
            sys.stderr.write(
                "usage: shimentry.py ENV PROGRAM [ARG...] (shims call this; see `venvroot link`)\n"
            )
            return 2
        return run(argv[0], argv[1], argv[2:])
    except VenvrootError as exc:
        sys.stderr.write(f"venvroot: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def manage(env_dir: str, verb: str, args: list[str]) -> int:
    # Management may need site-packages (jinja2, the docker SDK): load them now, not for every shim.
    import site

    site.main()
    # the management side (Environment, its backends): not on a shim's path
    from .environment import Environment

    env = Environment.open(env_dir)
    if verb == "session" and len(args) == 2 and args[0] in ("start", "stop") and args[1].isdigit():
        env.session(args[0], int(args[1]))
    elif verb == "destroy" and not args:
        env.destroy()
    else:
        sys.stderr.write(f"venvroot: bad call of bin/{verb} {' '.join(args)}\n")
        return 2
    return 0


def run(env_dir: str, program: str, args: list[str]) -> int:
    """Read the env's venvroot.cfg, take an automatic snapshot when a rule asks for one, and hand
    the program to the backend's hot path (which normally replaces this process)."""
    try:
        cfg = envconfig.read(env_dir)
    except envconfig.NotAnEnvironment:
        if os.path.lexists(env_dir):
            raise
        raise VenvrootError(
            f"the environment {env_dir} is gone (moved or removed): its shims hold the path it was made at, "
            "as virtualenv's do; move it back there, or make a new one with `venvroot PATH`"
        ) from None
    if any(key.startswith(AUTO_KEY) for key in cfg.values):  # `venvroot snapshot configure`
        # the management side (Environment, its backends): only for a snapshot rule's program
        from .environment import Environment

        return Environment.open(env_dir).run([program, *args])
    rangehint.watch(cfg, program)  # apt failing for want of subordinate ids: say so
    module = __import__(f"venvroot.backends.{cfg.backend}.run", fromlist=["run"])
    return module.run(cfg, program, args)
