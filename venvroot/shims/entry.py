"""The shim's hot path: ``python -I -S entry.py ENV PROGRAM [ARG...]``.

Runs with ``-I -S`` (no site-packages, no environment influence) for a fast, predictable start, so
it puts venvroot's own parent directory on ``sys.path`` and imports only light modules
(``venvroot.launch``: the environment's config and the backend's ``run`` module).
``--manage ENV VERB [ARG...]`` serves ``bin/destroy`` and the activate scripts' session hook.
"""

from __future__ import annotations

import os
import sys

# Appended, not prepended: that directory may be a site-packages whose backports (enum34, typing...)
# must not shadow the standard library.
sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def manage(env_dir: str, verb: str, args: list[str]) -> int:
    # Management may need site-packages (jinja2, the docker SDK): load them now, not for every shim.
    import site

    site.main()
    from venvroot.env import Environment

    env = Environment.open(env_dir)
    if verb == "session" and len(args) == 2 and args[0] in ("start", "stop") and args[1].isdigit():
        env.session(args[0], int(args[1]))
    elif verb == "destroy" and not args:
        env.destroy()
    else:
        sys.stderr.write(f"venvroot: bad call of bin/{verb} {' '.join(args)}\n")
        return 2
    return 0


def main(argv: list[str]) -> int:
    from venvroot.errors import VenvrootError

    try:
        if argv[:1] == ["--manage"] and len(argv) >= 3:
            return manage(argv[1], argv[2], argv[3:])
        if len(argv) < 2:
            sys.stderr.write("usage: entry.py ENV PROGRAM [ARG...] (shims call this; see `venvroot link`)\n")
            return 2
        from venvroot import launch

        return launch.run(argv[0], argv[1], argv[2:])
    except VenvrootError as exc:
        sys.stderr.write(f"venvroot: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
