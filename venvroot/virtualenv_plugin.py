"""virtualenv's ``venvroot`` creator: ``virtualenv --creator venvroot`` makes a venvroot environment.

tox, nox and hatch make their environments through virtualenv, so ``VIRTUALENV_CREATOR=venvroot``
gives each of them venvroot environments with no change to the project. The environment's own
settings (backend, root, user...) come from the nearest ``.venvroot.conf`` and ``VENVROOT_*``
variables; virtualenv's flags keep their meaning. virtualenv seeds it as it seeds its own
environments (pip, setuptools, wheel per ``--seeder``, ``--no-pip``, ``--pip``...): the env's
site-packages is the same directory on the host and inside, so what the seeder unpacks on the host
is what the env's Python imports, and the scripts it writes start with ``#!<env>/bin/python``, a
shim on the host. Only the activate scripts are venvroot's: virtualenv writes its own last, so
they are written again over virtualenv's when it saves ``pyvenv.cfg``, the last step of a session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from virtualenv.create.creator import Creator, CreatorMeta
from virtualenv.create.pyenv_cfg import PyEnvCfg
from virtualenv.version import __version__ as virtualenv_version

from .env import compat, config
from .errors import VenvrootError

if TYPE_CHECKING:
    from argparse import ArgumentParser
    from collections.abc import Iterator

    from python_discovery import PythonInfo
    from virtualenv.app_data.base import AppData
    from virtualenv.config.cli.parser import VirtualEnvOptions

    from .backends.settings import Settings


class _Meta(CreatorMeta):
    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error  # type: ignore[assignment]  # virtualenv types it as None only


class _PyEnvCfg(PyEnvCfg):
    """pyvenv.cfg as the session saves it last: then venvroot's activate scripts go back in."""

    def __init__(self, creator: VenvrootCreator, content: dict[str, str], path: Path) -> None:
        super().__init__(content, path)  # type: ignore[arg-type]
        self._creator = creator

    def write(self) -> None:
        super().write()
        self._creator.restore_activators()


class VenvrootCreator(Creator):
    """``--creator venvroot``: the environment is made by venvroot (its ns or docker backend)."""

    def __init__(self, options: VirtualEnvOptions, interpreter: PythonInfo) -> None:
        super().__init__(options, interpreter)
        self.system_site_packages = bool(getattr(options, "system_site", False))
        self.settings: Settings | None = None

    @classmethod
    def can_create(cls, interpreter: PythonInfo) -> CreatorMeta:
        # virtualenv lists a creator whose meta has an error only when none can create.
        return _Meta(None if sys.platform.startswith("linux") else "venvroot needs Linux")

    @classmethod
    def add_parser_arguments(
        cls, parser: ArgumentParser, interpreter: PythonInfo, meta: CreatorMeta, app_data: AppData
    ) -> None:
        super().add_parser_arguments(parser, interpreter, meta, app_data)
        parser.add_argument(
            "--system-site-packages",
            dest="system_site",  # virtualenv's name: its describers read it from the same options
            action="store_true",
            default=False,
            help="give the environment access to the root's site-packages",
        )
        # Accepted as virtualenv's creators accept them (tox and hatch pass them): the env's
        # interpreter is the root's own, bound over bin/python inside, so there is no choice.
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--symlinks", dest="symlinks", action="store_true", default=True, help="the way")
        group.add_argument(
            "--copies", "--always-copy", dest="copies", action="store_true", default=False, help="ignored"
        )

    # -- what virtualenv, its seeder and tox read ----------------------------------------------
    @property
    def env_name(self) -> str:
        return self.dest.name

    @property
    def bin_dir(self) -> Path:
        return self.dest / "bin"

    @property
    def script_dir(self) -> Path:
        return self.bin_dir

    @property
    def exe(self) -> Path:
        return self.bin_dir / "python"

    @property
    def purelib(self) -> Path:
        # The root's Python may not be the one virtualenv found on the host: once made, trust the env.
        made = sorted(glob.glob(str(self.dest / "lib" / "python*" / "site-packages")))
        if made:
            return Path(made[0])
        major, minor = self.interpreter.version_info[:2]
        return self.dest / "lib" / f"python{major}.{minor}" / "site-packages"

    @property
    def platlib(self) -> Path:
        return self.purelib

    @property
    def libs(self) -> list[Path]:
        return [self.purelib]

    # -- making it --------------------------------------------------------------------------
    def run(self) -> None:
        # Not Creator.run: that writes pyvenv.cfg into dest before create, which venvroot refuses
        # (a non-empty target); venvroot writes its own .gitignore.
        self.create()
        self.add_cachedir_tag()
        self.set_pyenv_cfg()
        if self.venv_redirect is not False:
            self.point_venv_redirect()

    def create(self) -> None:
        # venvroot's management side: only when a venvroot env is made, not each virtualenv start
        from .env.environment import create

        self.settings = plugin_settings(self)
        with _aside(str(self.dest), self.clear):
            create(self.settings, clear=self.clear)

    def set_pyenv_cfg(self) -> None:
        path = self.dest / "pyvenv.cfg"
        content = PyEnvCfg._read_values(path) if path.is_file() else {}
        content.setdefault("virtualenv", virtualenv_version)
        self.pyenv_cfg = _PyEnvCfg(self, content, path)

    def restore_activators(self) -> None:
        # venvroot's management side: only when a venvroot env is made, not each virtualenv start
        from .env.environment import Environment

        if self.settings is not None:
            Environment(self.settings).write_activators()


def plugin_settings(creator: VenvrootCreator) -> Settings:
    """The environment's settings: venvroot's defaults, then the nearest ``.venvroot.conf`` (or
    ``VENVROOT_CONFIG``), then ``VENVROOT_*`` variables, then what virtualenv was told."""
    # venvroot's management side: only when a venvroot env is made, not each virtualenv start
    from .backends.settings import Settings

    environ = {**os.environ, **(creator.env or {})}
    named = environ.get("VENVROOT_CONFIG")
    found = named or config.find(os.getcwd())
    values: dict[str, object] = config.load(found) if found else {}
    values.update(config.from_environ(environ))
    compat.resolve(values, quiet=True)  # virtualenv's own flags are virtualenv's business here
    for key in ("clear", "quiet", "verbose"):
        values.pop(key, None)
    values["pip"] = "none"  # virtualenv's seeder installs pip (or not) as it was told
    values["system-site-packages"] = creator.system_site_packages
    if creator.no_vcs_ignore:
        values["no-vcs-ignore"] = True
    if creator.prompt is not None:
        values["prompt"] = os.path.basename(os.getcwd()) if creator.prompt == "." else creator.prompt
    if values.get("backend", "ns") == "ns" and not values.get("root") and not values.get("python"):
        # The host seen copy-on-write has the very interpreter virtualenv found (tox's base_python).
        values["python"] = creator.interpreter.system_executable or creator.interpreter.executable
    try:
        return Settings(str(creator.dest), None, **{k.replace("-", "_"): v for k, v in values.items()})
    except TypeError as exc:  # a key the config file accepts that no environment has
        raise VenvrootError(f"{found or 'VENVROOT_*'}: {exc}") from None


# What an environment's directory holds: a target with any of these is an environment (or half of
# one), which venvroot replaces only with --clear, as its own command does.
ENV_NAMES = frozenset(
    ("bin", "lib", "lib64", "include", "pyvenv.cfg", "venvroot.cfg", ".venvroot", ".gitignore")
)


@contextlib.contextmanager
def _aside(dest: str, clear: bool) -> Iterator[None]:
    """Let venvroot create into an empty ``dest``: what else a tool put there first (tox's log/ and
    tmp/, its .tox-info.json) waits beside it and comes back after, whether the create worked or not."""
    names = os.listdir(dest) if os.path.isdir(dest) and not clear else []
    if not names or ENV_NAMES.intersection(names):
        yield  # empty, or an environment: venvroot's create decides (refuses without --clear)
        return
    # tempfile: only while activators are set aside
    import tempfile

    parking = tempfile.mkdtemp(prefix=".venvroot-aside-", dir=os.path.dirname(dest))
    try:
        for name in names:
            os.rename(os.path.join(dest, name), os.path.join(parking, name))
        yield
    finally:
        os.makedirs(dest, exist_ok=True)  # a failed create removes what it made, not dest
        for name in os.listdir(parking):
            os.rename(os.path.join(parking, name), os.path.join(dest, name))
        os.rmdir(parking)
