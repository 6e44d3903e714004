"""The holder's record (``state/holder``: "PID TOKEN") and its liveness marker (``live-TOKEN`` in the
hidden directory inside), read and written here only (starter.c writes the same two)."""

from __future__ import annotations

import os

from ..activations import read_head
from .layout import MARKER_PREFIX, State


def marker(token: str) -> str:
    return MARKER_PREFIX + token


def read_holder(state: State) -> tuple[int, str] | None:
    """The recorded holder (pid, token) if that process is alive and really this env's holder."""
    try:
        with open(state.holder, encoding="ascii") as handle:
            pid_text, _, token = handle.read().strip().partition(" ")
    except OSError:
        return None
    if not pid_text.isdigit() or not token:
        return None
    pid = int(pid_text)
    # The marker exists only in the root of this env's live holder: a reused pid never has it.
    if not os.path.exists(f"/proc/{pid}/root{state.hidden}/{marker(token)}"):
        return None
    return pid, token


def record(state_fd: int, pid: int, token: str) -> None:
    """Write the holder's record (``state_fd``: the state directory, wherever this process is)."""
    fd = os.open("holder.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644, dir_fd=state_fd)
    try:
        os.write(fd, f"{pid} {token}\n".encode())
    finally:
        os.close(fd)
    os.replace("holder.tmp", "holder", src_dir_fd=state_fd, dst_dir_fd=state_fd)


def recorded(state_fd: int, token: str) -> int | None:
    """The pid in the holder's record if the record is the one of ``token``."""
    try:
        words = read_head("holder", 256, dir_fd=state_fd).split()
    except OSError:
        return None
    if len(words) == 2 and words[1] == token.encode() and words[0].isdigit():
        return int(words[0])
    return None


def forget_record(state_fd: int, token: str) -> None:
    if recorded(state_fd, token) is not None:
        remove("holder", state_fd)


def remove(path: str, dir_fd: int | None = None) -> None:
    try:  # noqa: SIM105 - contextlib costs ~1.5 ms to import on the shims' path
        os.unlink(path, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
