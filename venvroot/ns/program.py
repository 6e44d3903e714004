"""The program a launch runs: its argv and environment, its execve, and failures told as one line."""

from __future__ import annotations

import os

from . import process
from .errors import KINDS, ChrootError
from .frames import send

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import NoReturn

STATUS_NOT_EXECUTABLE = 126
STATUS_NOT_FOUND = 127

PROGRAM = "venvroot"  # prefix of messages printed by processes inside; the CLI sets "venvroot chroot"


class Command:
    __slots__ = ("argv", "env")

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.argv = argv
        self.env = env


def make_command(argv: Sequence[str], env: Mapping[str, str] | None) -> Command:
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) for a in argv):
        raise ChrootError(f"bad command {argv!r}: give a non-empty list of strings")
    return Command(list(argv), os.environ if env is None else env)


def execute(command: Command, where: str) -> NoReturn:
    process.flush()
    try:
        execvpe(command.argv, command.env)
    except OSError as exc:
        missing = isinstance(exc, (FileNotFoundError, NotADirectoryError))
        print_line(f"{PROGRAM}: cannot run {command.argv[0]!r} inside {where}: {exc.strerror}")
        os._exit(STATUS_NOT_FOUND if missing else STATUS_NOT_EXECUTABLE)


def execvpe(argv: list[str], env: Mapping[str, str]) -> NoReturn:
    """os.execvpe without its lazy imports (inside the root, the standard library may be missing)."""
    name = argv[0]
    if "/" in name:
        os.execve(name, argv, env)
    first_error: OSError | None = None
    last_error: OSError = FileNotFoundError(2, "No such file or directory", name)
    for directory in (env.get("PATH") or os.defpath).split(":"):
        try:
            os.execve(os.path.join(directory or ".", name), argv, env)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last_error = exc
        except OSError as exc:  # e.g. EACCES: remembered, but a later directory may still have it
            first_error = first_error or exc
    raise first_error or last_error


def report(launch: process.Launch, exc: BaseException) -> None:
    """Send a failure up the report pipe, or print it when there is no one to read it."""
    if isinstance(exc, ChrootError):
        kind, errno, text = type(exc).__name__, exc.errno, str(exc)
    elif isinstance(exc, OSError):
        kind, errno, text = (
            "ChrootError",
            exc.errno,
            f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc),
        )
    else:
        try:  # the traceback module may be missing inside the root
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__)
        except ImportError:
            pass
        kind, errno, text = "ChrootError", None, f"unexpected failure: {exc!r}"
    payload = f"{kind}\0{'' if errno is None else errno}\0{text}".encode("utf-8", "surrogateescape")
    try:
        if launch.report_w < 0:
            raise OSError
        send(launch.report_w, b"E", payload)
    except OSError:
        print_line(f"{PROGRAM}: {text}")


def error_from(payload: bytes) -> ChrootError:
    kind, errno, text = payload.decode("utf-8", "surrogateescape").split("\0", 2)
    return KINDS.get(kind, ChrootError)(text, int(errno) if errno else None)


def warn(problems: list[str]) -> None:
    for problem in problems:
        print_line(f"{PROGRAM}: warning: {problem}")


def print_line(line: str) -> None:
    try:  # noqa: SIM105 - see above
        os.write(2, (line + "\n").encode("utf-8", "surrogateescape"))
    except OSError:
        pass
