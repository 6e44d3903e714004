"""Bringing Python results, exceptions and locals back from inside the root.

Imported before forking: once inside, the root may not have these modules (or Python at all).
"""

from __future__ import annotations

import contextlib
import linecache
import os
import pickle
import sys
import traceback
from typing import Any

from .errors import ChrootError, RemoteTraceback
from .frames import send


def preload(*objects: Any) -> None:
    """Cache the source of the callers' files so that tracebacks from inside show their lines."""
    for obj in objects:
        code = getattr(obj, "__code__", None) or getattr(obj, "f_code", None)
        filename = code.co_filename if code is not None else obj if isinstance(obj, str) else None
        if filename:
            linecache.getlines(filename)


def pack_exception(exc: BaseException) -> tuple[bytes, str]:
    # Inside the root the source files are usually missing, and linecache would drop what
    # preload() cached; an entry without mtime is never checked. (This process is about to exit.)
    for name, entry in list(linecache.cache.items()):
        if len(entry) == 4:
            linecache.cache[name] = (entry[0], None, entry[2], entry[3])
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)  # some exceptions pickle but cannot be rebuilt; find out here, not outside
    except Exception:
        data = pickle.dumps(
            ChrootError(f"{type(exc).__name__}: {exc} (the exception itself could not be pickled)")
        )
    return data, text


def run_and_exit(fd: int, fn: Any, args: tuple, kwargs: dict) -> None:
    """In the process inside the root: call ``fn``, send its result or exception, exit."""
    status = 0
    try:
        payload = pickle.dumps(("result", fn(*args, **kwargs)))
    except BaseException as exc:
        status = 1
        payload = pickle.dumps(("exception", *pack_exception(exc)))
    finish(fd, payload, status)


def finish(fd: int, payload: bytes, status: int) -> None:
    try:
        send(fd, b"R", payload)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


def unpack(message: object, status: int) -> Any:
    """In the caller: return the result sent from inside, or raise the exception sent from inside."""
    if not isinstance(message, tuple) or message[0] != b"R":
        raise ChrootError(f"the code inside the root ended without a result (exit status {status})")
    kind, *rest = pickle.loads(message[1])
    if kind == "result":
        return rest[0]
    return raise_remote(rest[0], rest[1])


def load_exception(data: bytes, text: str) -> BaseException:
    try:
        exc = pickle.loads(data)
    except Exception:
        exc = ChrootError(f"an exception inside the root could not be rebuilt here:\n{text}")
    exc.__cause__ = RemoteTraceback(text)
    exc.__suppress_context__ = True  # the caller's side of the story (body skipping) is noise
    return exc


def raise_remote(data: bytes, text: str) -> Any:
    raise load_exception(data, text)
