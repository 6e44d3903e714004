"""Where the shims of envs made before the entry moved point: hands each call to ``cli/shimentry.py``.

Their ``bin/NAME`` scripts and ``shim.cfg`` hold this path, so it stays after an upgrade. It
imports nothing of venvroot (the entry lives a layer up): it replaces itself with the new entry,
which costs such a shim one more start of Python until the env is made anew.
"""

import os
import sys

if __name__ == "__main__":
    entry = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli", "shimentry.py")
    os.execv(sys.executable, [sys.executable, "-I", "-S", entry, *sys.argv[1:]])
