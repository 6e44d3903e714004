"""The shims' hot path: ``python -I -S shimentry.py ENV PROGRAM [ARG...]`` (see venvroot.env.launch.main).

Runs with ``-I -S`` (no site-packages, no environment influence) for a fast, predictable start, so
it puts venvroot's own parent directory on ``sys.path``; appended, not prepended, since that
directory may be a site-packages whose backports (enum34, typing...) must not shadow the standard
library. Kept this small because a script is compiled at every run; the rest is a cached module.
"""

import os
import sys

sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

if __name__ == "__main__":
    from venvroot.env.launch import main

    sys.exit(main(sys.argv[1:]))
