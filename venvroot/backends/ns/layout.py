"""Where the ``ns`` backend keeps an environment's state, and the venvroot.cfg keys it writes.

Standard library only, and only ``os``: the shims' Python path imports this module.

``<env>/.venvroot/ns/``::

    lower/          the unpacked root of a tarball or docker:IMAGE source (pristine)
    root/           the directory the runner turns into ``/``: for the host view a skeleton (the
                    top-level symlinks, mount points, and the writable part of directories that
                    could not be overlaid); for other sources an empty mount point for the overlay
    upper/ work/    the writable layer of a single-overlay root (directory, tarball, docker image)
    layers/NAME/    upper/ and work/ of each overlaid host directory (NAME: the path, escaped)
    tmp/            the host view's private /tmp, where the host's cannot be overlaid
    plan            the host view: which directory is overlaid, recursed into or bound read-only
    python          the env's interpreter(s): "NAME<TAB>host path of the real file" per line
    holder          "PID TOKEN": the process that keeps the env's namespaces alive
    lock            flock: shims share it, starting/stopping the namespaces takes it exclusively
    shells/PID      an activated shell: its start time (empty once deactivated)
    holder.log      what the holder and the hooks it runs print

``<env>/.venvroot/shim.sh`` is the fragment every sh shim sources: the way into running namespaces;
``<env>/.venvroot/shim.cfg`` the same steps for the compiled shims (links to ``bin/.venvroot-shim``).
Inside the root, ``<env>/.venvroot`` is covered by a small tmpfs (the state stays out of reach of
the programs) that holds the inside version of that fragment and the holder's liveness marker.
"""

from __future__ import annotations

# venvroot.cfg keys (Settings.extra) -----------------------------------------------------------------
CFG_SOURCE = "ns-source"  # host | directory | tarball | docker | debian
CFG_LOWER = "ns-lower"  # the pristine lower layer ("/" for the host view)
CFG_PATH = "ns-path"  # PATH inside: the env's bin, then the root's own PATH
CFG_UID = "ns-uid"  # ids inside when not the caller's own (the runner's uid/gid)
CFG_GID = "ns-gid"
CFG_LOGIN = "ns-login"  # USER/LOGNAME and HOME for a user other than the caller
CFG_HOME = "ns-home"
CFG_PYTHON = "ns-python"  # the env's Python version inside, when it has one
CFG_FALLBACKS = "ns-fallbacks"  # host directories that could not be overlaid (at create)

# Host variables that would mislead programs inside (the docker backend drops the same ones).
BRAIN = "--brain"  # cli/shimentry.py --brain ENV...: the brain of a compiled start (brain.py)
MARKER_PREFIX = "live-"  # <env>/.venvroot/live-TOKEN exists inside a live holder's root only
# Seconds an unused holder stays up (no activated shell, nothing running inside): shims run in a
# row join it instead of building the namespaces again.
LINGER = 3.0
# bin/NAME of the env's copy of the compiled starter, which compiled shims link to (shims/marker.py).
SHIM_BINARY = ".venvroot-shim"


class State:
    """Paths of one environment's ``ns`` state."""

    def __init__(self, env_dir: str) -> None:
        self.env_dir = env_dir
        self.hidden = env_dir + "/.venvroot"  # covered by a tmpfs inside the root
        self.fastpath = self.hidden + "/shim.sh"  # sourced by every shim when present
        self.shim_cfg = self.hidden + "/shim.cfg"  # read by the compiled shim (shim.c)
        self.shim_binary = f"{env_dir}/bin/{SHIM_BINARY}"  # what the compiled shims link to
        base = self.base = self.hidden + "/ns"
        self.lower = base + "/lower"
        self.root = base + "/root"
        self.upper = base + "/upper"
        self.work = base + "/work"
        self.layers = base + "/layers"
        self.tmp = base + "/tmp"
        self.plan = base + "/plan"
        self.python = base + "/python"
        self.holder = base + "/holder"
        self.lock = base + "/lock"
        self.shells = base + "/shells"
        self.log = base + "/holder.log"

    def layer(self, inside: str) -> tuple[str, str]:
        """(upper, work) of the overlay on the host directory ``inside``."""
        name = inside.strip("/").replace("%", "%25").replace("/", "%2F") or "%2F"
        return f"{self.layers}/{name}/upper", f"{self.layers}/{name}/work"
