"""What a program sees inside an environment, the same for every backend: its working directory
and its environment variables. On the shims' hot path: ``os`` only.
"""

from __future__ import annotations

import os
import pwd

from ..errors import VenvrootError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .envconfig import EnvConfig

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host facts that would mislead or break a program inside (PATH is set for the root instead).
DROPPED_ENV = ("PATH", "HOSTNAME", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONHOME")


def host_cwd() -> str:
    """The caller's current directory, or one clear line when it is gone."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        raise VenvrootError(
            "the current directory does not exist any more; cd to an existing directory and try again"
        ) from None


def map_cwd(env_dir: str, directories: list[str], cwd: str) -> str:
    """``cwd`` as seen inside: through the deepest mapping that holds it (the project directory,
    which holds the env, or a ``--directory`` spec ``HOST:INSIDE:MODE``), else under ``/r``."""
    project = os.path.dirname(env_dir)
    maps = [(project, project)]
    for spec in directories:
        host, inside, _mode = spec.rsplit(":", 2)
        maps.append((host, inside))
    best = None
    for host, inside in maps:
        holds = cwd == host or cwd.startswith(host.rstrip("/") + "/")
        if holds and (best is None or len(host) >= len(best[0])):
            best = (host, inside)
    if best is None or best[0] == "/":
        return "/r" + cwd if cwd != "/" else "/r"
    rest = cwd[len(best[0]) :]
    return best[1].rstrip("/") + rest if rest else best[1]


def environ(cfg: EnvConfig, cwd: str, path_key: str, login_key: str, home_key: str) -> dict[str, str]:
    """The caller's environment for a program inside: PATH for the root with the env's bin first
    (recorded under ``path_key`` at create), the user's name and home when ``--user`` names
    someone else, and PWD."""
    env = dict(os.environ)
    for key in DROPPED_ENV:
        env.pop(key, None)
    env["PATH"] = cfg.get(path_key) or f"{cfg.env_dir}/bin:{DEFAULT_PATH}"
    login = cfg.get(login_key)
    if login:
        env["USER"] = env["LOGNAME"] = login
        env["HOME"] = cfg.get(home_key) or "/"
    elif "HOME" not in env:
        try:
            env["HOME"] = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            env["HOME"] = "/"
    env["PWD"] = cwd
    return env
