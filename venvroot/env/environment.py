"""The library API: create an environment from Settings, open one by path, act on it."""

from __future__ import annotations

import os
import sys
from functools import cached_property

from ..backends import envconfig, load_backend
from ..backends.envconfig import CFG_NAME
from ..backends.envstate import frozen_id
from ..backends.ns import rangehint
from ..backends.settings import Settings
from ..errors import UsageError, VenvrootError
from ..shims import writer
from ..shims.marker import is_shim

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from ..backends.base import Backend

STATE_DIR = ".venvroot"


class Environment:
    """An existing venvroot environment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Environment:
        """Open the environment at ``path``; NotAnEnvironment if there is none."""
        return cls(Settings.from_cfg(_abspath(path)))

    @property
    def dir(self) -> str:
        """The environment's directory (absolute), as the library itself uses it."""
        return self.settings.path

    @property
    def path(self) -> Path:
        from pathlib import Path  # (not on a create's path: pathlib costs it several ms)

        return Path(self.settings.path)

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    @cached_property
    def backend(self) -> Backend:
        return load_backend(self.settings)

    # -- shims -----------------------------------------------------------------------------
    def link(self, programs: list[str]) -> list[str]:
        """Write shims for ``programs``; return their paths."""
        for program in programs:  # refuse bad names and missing programs before writing any shim
            writer.shim_name(program)
            if not self.backend.has_program(program):
                raise UsageError(
                    f"cannot link {program!r}: no such program in the environment's root; "
                    "install it inside first or give its absolute path inside the root"
                )
        return [writer.write_shim(self.dir, p) for p in programs]

    def write_activators(self) -> None:
        """(Re)write ``bin/activate*`` for the settings' shells (the session hook, if any, exists)."""
        # the activators' templates: only a create writes them, not `venvroot run`
        from ..activators import ACTIVATORS, ActivationContext
        from ..activators.python import PythonActivator

        session = None
        if self.backend.uses_session:
            session = os.path.join(self.dir, "bin", writer.SESSION_HOOK)
        bin_dir = os.path.join(self.dir, "bin")
        ctx = ActivationContext(self.dir, bin_dir, self.settings.effective_prompt, session)
        for name in self.settings.activators:
            ACTIVATORS[name]().generate(ctx)
        PythonActivator().generate(ctx)  # bin/activate_this.py, whatever the shells

    def unlink(self, programs: list[str]) -> list[str]:
        return [writer.remove_shim(self.dir, p) for p in programs]

    def linked(self) -> list[str]:
        return writer.linked_programs(self.dir)

    def sync(self) -> list[str]:
        """Give every program the backend offers (e.g. new console scripts) a shim."""
        have = set(self.linked())
        wanted = [p for p in self.backend.programs_to_link() if writer.shim_name(p) not in have]
        return [writer.write_shim(self.dir, p) for p in wanted]

    # -- lifecycle -------------------------------------------------------------------------
    def run(self, argv: list[str]) -> int:
        """Run ``argv`` inside the environment, exactly as a shim would (automatic snapshots too):
        with the ns backend this process becomes the program. Run a shim to keep the caller."""
        # the snapshot rules: not on a create's path
        from ..snapshots import rules

        rules.apply(self, argv[0], argv[1:])
        cfg = envconfig.read(self.dir)
        rangehint.watch(cfg, argv[0])  # apt failing for want of subordinate ids: say so
        module = __import__(f"venvroot.backends.{self.settings.backend}.run", fromlist=["run"])
        return module.run(cfg, argv[0], argv[1:])

    def resync_shims(self, before: set[str]) -> None:
        """Shims follow the env's programs after its Python packages changed under them (a restore,
        a frozen env's session): those of programs now gone go, new ones come."""
        after = set(self.backend.programs_to_link())
        kept = {writer.shim_name(p) for p in [*self.settings.link, *after]}
        for program in before - after:
            name = writer.shim_name(program)
            shim = f"{self.dir}/bin/{name}"
            if name not in kept and is_shim(shim):
                os.unlink(shim)
        self.sync()

    def session(self, action: str, shell_pid: int) -> None:
        """An activated shell starts or ends; a frozen env's packages go back to its base then, and
        its shims follow."""
        before = set(self.backend.programs_to_link()) if frozen_id(self.dir) else None
        if action == "start":
            self.backend.session_start(shell_pid)
        else:
            self.backend.session_stop(shell_pid)
        if before is not None:
            self.resync_shims(before)

    def reset(self) -> None:
        self.backend.reset()

    def transfer(self, direction: str, paths: list[str]) -> None:
        """``push`` (this machine to the env) or ``pull`` ``paths`` (default: every mapping): for an
        env whose engine cannot see this machine's files."""
        copy = getattr(self.backend, "transfer", None)
        if copy is None:
            raise UsageError(
                f"venvroot {direction}: the {self.settings.backend} backend sees your files directly; "
                "there is nothing to copy"
            )
        copy(direction, paths)

    def destroy(self) -> None:
        """Stop everything the environment runs and remove everything it made."""
        # filetree (contextlib, collections.abc): not on `venvroot run`'s path
        from ..util import filetree

        self.backend.destroy()
        filetree.remove(self.dir)  # also directories a program inside made read-only

    def info(self) -> list[tuple[str, str]]:
        s = self.settings
        rows = [
            ("path", s.path),
            ("backend", s.backend),
            ("prompt", s.effective_prompt),
            ("root", s.root or ("(host system, copy-on-write)" if s.backend == "ns" else "")),
            ("image", s.image or ""),
            ("user", s.user or "(caller)"),
            ("directory", ", ".join(s.directory)),
            ("persistent", "yes" if s.persistent else "no"),
            ("pid", "own namespace" if s.pid else ""),
            ("on-activate", " ; ".join(s.on_activate)),
            ("on-deactivate", " ; ".join(s.on_deactivate)),
            ("hostname", s.hostname or ""),
            ("python", s.python or ""),
            ("activators", ", ".join(s.activators)),
            ("linked", " ".join(self.linked())),
        ]
        rows.extend(self.backend.info().items())
        return [(k, v) for k, v in rows if v]


def create(settings: Settings, *, clear: bool = False) -> Environment:
    """Create an environment; on any failure nothing is left on disk (or in the backend)."""
    settings.path = path = _abspath(settings.path)
    validate(settings)
    _check_target(path, clear)
    env = Environment(settings)
    backend = env.backend
    backend.preflight()
    if clear and os.path.exists(path):
        _clear(path)
    made = _make_dirs(path)
    try:
        _write_layout(env)
        backend.create()
        env.link(settings.link)
        env.sync()
        if settings.pip not in (None, "embed", "bundle", "none"):
            _fetch_pip(env.dir, settings.pip)
        settings.save()  # with backend facts
    except BaseException as exc:
        # filetree (contextlib, collections.abc): not on `venvroot run`'s path
        from ..util import filetree

        try:
            backend.destroy()
        except Exception as cleanup:  # the original error matters more; still say what is left
            print(f"venvroot: cleanup after a failed create also failed: {cleanup}", file=sys.stderr)
        if made is not None:
            filetree.remove(made)
        else:
            _empty(path)
        if isinstance(exc, OSError):  # a full disk, a quota, a read-only file system: one line
            where = f" ({exc.filename})" if exc.filename else ""
            raise VenvrootError(
                f"cannot create {path}: {exc.strerror or exc}{where}; nothing was left behind"
            ) from None
        raise
    return env


def validate(settings: Settings) -> None:
    """Check every setting as the CLI would (the library API gets the same errors)."""
    # the option table: only a create checks options, not `venvroot run`
    from . import options

    for key, value in (
        ("backend", settings.backend),
        ("user", settings.user or None),
        ("hostname", settings.hostname),
        ("root", settings.root),
        ("image", settings.image),
        ("python", settings.python),
        ("pip", settings.pip),
    ):
        if value is not None:
            setattr(settings, key, options.check(key, value))
    settings.directory = options.check("directory", settings.directory)  # type: ignore[assignment]
    settings.try_first_with = options.check("try-first-with", settings.try_first_with)  # type: ignore[assignment]
    settings.activators = options.check("activators", settings.activators)  # type: ignore[assignment]
    for program in settings.link:
        options.check("link", program)
        writer.shim_name(program)
    if settings.backend == "docker" and not settings.image:
        raise UsageError("the docker backend needs an image: add --image IMAGE")
    if settings.backend == "ns" and settings.image:
        raise UsageError("--image is for --backend docker; with ns use --root docker:IMAGE")


def _fetch_pip(path: str, pip: str) -> None:
    """--pip VERSION, --pip latest, --download: pip installs that pip inside, from the package index."""
    # subprocess: only when pip is fetched
    import subprocess

    python = f"{path}/bin/python"
    if not os.path.exists(python):
        raise UsageError(f"--pip {pip}: the environment has no Python (its root has none); drop --pip")
    spec = "pip" if pip == "latest" else f"pip=={pip}"
    argv = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", spec]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode:
        detail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise VenvrootError(f"--pip {pip}: pip could not install {spec} inside: {detail}")


def _abspath(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _check_target(path: str, clear: bool) -> None:
    if ":" in path:
        raise UsageError(f"the path {path!r} contains ':', which would break PATH; choose another path")
    if any(ord(c) < 32 for c in path):
        raise UsageError(f"the path {path!r} contains a control character; choose another path")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{path} exists and is not a directory; choose another path")
    if os.path.isdir(path) and os.listdir(path):
        if not clear:
            raise UsageError(
                f"{path} exists and is not empty; use --clear to replace it, or choose another path"
            )
        if not (os.path.isfile(f"{path}/{CFG_NAME}") or os.path.isfile(f"{path}/pyvenv.cfg")):
            raise UsageError(
                f"--clear refuses {path}: it is neither a venvroot nor a virtualenv environment; "
                "empty it yourself if you mean it"
            )
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise VenvrootError(f"cannot create {path}: {parent} is not writable; choose a path you can write to")


def _clear(path: str) -> None:
    """Replace an old environment: stop what it runs, then empty the directory."""
    # contextlib: not on `venvroot run`'s path
    import contextlib

    if os.path.isfile(f"{path}/{CFG_NAME}"):
        with contextlib.suppress(VenvrootError):  # a half-broken env is still cleared
            Environment.open(path).backend.destroy()
    _empty(path)


def _empty(path: str) -> None:
    # filetree (contextlib, collections.abc): not on `venvroot run`'s path
    from ..util import filetree

    for name in os.listdir(path):
        filetree.remove(os.path.join(path, name))


def _make_dirs(path: str) -> str | None:
    """mkdir -p; return the topmost directory created (to remove on failure), None if it existed."""
    missing = []
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for new in reversed(missing):
        os.mkdir(new)
    return missing[-1] if missing else None


def _write_layout(env: Environment) -> None:
    s, path = env.settings, env.dir
    bin_dir = f"{path}/bin"
    os.mkdir(bin_dir)
    os.mkdir(f"{path}/{STATE_DIR}")
    s.save()
    if not s.no_vcs_ignore:
        with open(f"{path}/.gitignore", "w", encoding="utf-8") as handle:
            handle.write("# created by venvroot automatically\n*\n")
    if env.backend.uses_session:
        writer.write_manage_script(path, writer.SESSION_HOOK, "session")
    env.write_activators()
    writer.write_manage_script(path, "destroy", "destroy")
