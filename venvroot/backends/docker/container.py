"""Starting the env's container over the Engine API, recreating it from its spec when it is gone.

Hot path (a shim whose container is stopped): standard library only.
"""

from __future__ import annotations

import os
import time

from ...errors import VenvrootError
from . import layout
from .engine import Connection, encode, error_message, loads, quote_path


def ensure_running(conn: Connection, container: str, state: layout.StateDir, missing: bool = False) -> bool:
    """Start the container; recreate it first when it is gone. Return True if it was not running."""
    name = quote_path(container)
    if not missing:
        status, data = _start(conn, name)
        if status == 304:
            return False
        if status == 204:
            return True
        # dockerd says "bind source path does not exist"; runc, later, "error mounting ... no such file"
        gone = b"bind source path does not exist" in data or b"no such file or directory" in data
        if status != 404 and not (gone and _drop_gone_mounts(state)):
            raise _start_error(container, data)
        if status != 404:  # made anew without the host mounts gone since
            conn.request("DELETE", f"/containers/{name}?force=1")
    try:
        with open(state.container_spec, "rb") as handle:
            spec = handle.read()
    except FileNotFoundError:
        raise VenvrootError(
            f"the environment's container {container} is gone and {state.container_spec} is missing; "
            f"run `venvroot reset {state.env_dir}` to rebuild it"
        ) from None
    status, data = conn.request("POST", f"/containers/create?name={name}", spec)
    if status == 404:
        raise VenvrootError(
            f"cannot recreate the container {container}: the environment's image is gone ({_msg(data)}); "
            f"run `venvroot reset {state.env_dir}` to rebuild it from the original image"
        )
    if status not in (201, 409):  # 409: another shim recreated it just now
        raise VenvrootError(f"cannot recreate the container {container}: {_msg(data)}")
    status, data = _start(conn, name)
    if status not in (204, 304):
        raise _start_error(container, data)
    return True


def _drop_gone_mounts(state: layout.StateDir) -> bool:
    """The host view (``/r``) binds each host mount point; one unmounted since (a removable disk, a
    test's engine) must not keep the container from starting: drop it from the spec. Whether any
    was dropped (anything else missing is the user's mapping, told as it is)."""
    with open(state.container_spec, "rb") as handle:
        spec: dict = loads(handle.read().decode("utf-8", "surrogateescape"))  # type: ignore[assignment]
    mounts = spec.get("HostConfig", {}).get("Mounts") or []
    kept = [m for m in mounts if not m["Target"].startswith("/r/") or os.path.exists(m["Source"])]
    if len(kept) == len(mounts):
        return False
    spec["HostConfig"]["Mounts"] = kept
    tmp = state.container_spec + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(encode(spec))
    os.replace(tmp, state.container_spec)
    return True


def _start(conn: Connection, name: str) -> tuple[int, bytes]:
    """POST start. Docker 20.10 sometimes fails a start that follows a stop of the same container
    closely, inside the runtime's hooks ("error running hook"); a second try a moment later works."""
    for delay in (0.2, 0.5, 0.0):
        status, data = conn.request("POST", f"/containers/{name}/start")
        if status != 500 or b"error running hook" not in data or not delay:
            return status, data

        time.sleep(delay)
    return status, data


def stop_container(conn: Connection, container: str) -> None:
    # The keeper exits on SIGTERM at once; everything else in the container dies with it.
    status, data = conn.request("POST", f"/containers/{quote_path(container)}/stop?t=10")
    if status not in (204, 304, 404):
        raise VenvrootError(f"cannot stop the container {container}: {_msg(data)}")


def _start_error(container: str, data: bytes) -> VenvrootError:
    return VenvrootError(f"cannot start the environment's container {container}: {_msg(data)}")


def _msg(data: bytes) -> str:
    return error_message(data)
