"""Tagged, length-prefixed messages on a pipe: how a process inside reports back to its caller."""

from __future__ import annotations

import os


def send(fd: int, tag: bytes, payload: bytes) -> None:
    """Write one message: a one-byte tag, the payload's length, the payload."""
    data = memoryview(tag + len(payload).to_bytes(8, "big") + payload)
    while data:
        data = data[os.write(fd, data) :]


def receive(fd: int) -> tuple[bytes, bytes] | None:
    """(tag, payload) of the next message, or None at end of file."""
    header = read_exact(fd, 9)
    if len(header) < 9:
        return None
    return header[:1], read_exact(fd, int.from_bytes(header[1:], "big"))


def read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_to_end(fd: int) -> bytes:
    """Everything written on ``fd`` until its last writer closes it (a child's report); closes it."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)
