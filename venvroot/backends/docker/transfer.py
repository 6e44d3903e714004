"""Files between this machine and a remote env's volumes: ``venvroot push`` / ``pull`` (Engine API
archive endpoints), the env's programs listed from the container, and the volumes' removal.

What is copied: the named paths (by default the project directory and every ``--directory``),
each through the mapping that holds it; the env directory itself never (on the engine it holds
the env's Python, here its shims). A copy adds and overwrites, it deletes nothing.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from typing import Any

from ...errors import UsageError, VenvrootError
from ...util import progress
from . import layout
from .images import explain

_CHUNK = 1 << 20


def copy(client: Any, container: str, env_dir: str, maps: list[tuple[str, str]], direction: str,
         paths: list[str]) -> None:  # fmt: skip
    wanted = [os.path.abspath(p) for p in paths] or [host for host, _ in maps]
    for path in wanted:
        host, inside = _mapping_of(path, maps, env_dir, direction)
        rel = os.path.relpath(path, host)
        # The env directory, and what a deeper mapping holds (copied through that one), stay out.
        skip = {env_dir, *(h for h, _ in maps if h != host and h.startswith(host.rstrip("/") + "/"))}
        if direction == "push":
            _push(client, container, skip, path, host, inside, rel)
        else:
            _pull(client, container, skip, path, inside, rel)


def _mapping_of(path: str, maps: list[tuple[str, str]], env_dir: str, direction: str) -> tuple[str, str]:
    if path == env_dir or path.startswith(env_dir + "/"):
        raise UsageError(
            f"venvroot {direction} {path}: the env directory itself is not copied; name your files"
        )
    best = None
    for host, inside in maps:
        if (path == host or path.startswith(host.rstrip("/") + "/")) and (
            best is None or len(host) > len(best[0])
        ):
            best = (host, inside)
    if best is None:
        mapped = ", ".join(host for host, _ in maps)
        raise UsageError(
            f"venvroot {direction} {path}: not in a mapping of the env ({mapped}); copy from inside one, or "
            f"recreate the env with --directory {path}"
        )
    return best


def _push(client: Any, container: str, skip: set[str], path: str, host: str, inside: str, rel: str) -> None:
    if not os.path.lexists(path):
        raise UsageError(f"venvroot push {path}: no such file or directory here")
    with tempfile.TemporaryFile() as buf:
        with progress.Progress(f"packing {path}"), tarfile.open(fileobj=buf, mode="w") as tar:
            parts = [] if rel == "." else rel.split("/")
            for i in range(len(parts) - 1):  # the directories above it, so that it lands in place
                tar.add(
                    os.path.join(host, *parts[: i + 1]), arcname="/".join(parts[: i + 1]), recursive=False
                )
            _add(tar, path, rel, skip)
        buf.seek(0)
        try:
            ok = client.api.put_archive(container, inside, buf)
        except Exception as exc:  # the SDK's APIError, or a connection that broke
            raise VenvrootError(
                f"venvroot push {path}: the engine refused the files ({explain(exc)})"
            ) from None
        if not ok:
            raise VenvrootError(f"venvroot push {path}: the engine did not take the files")


def _add(tar: tarfile.TarFile, path: str, arcname: str, skip: set[str]) -> None:
    """``path`` and, for a directory, everything below it but the ``skip`` paths."""
    info = tar.gettarinfo(path, arcname=arcname)
    if info is None:  # a socket: nothing a tar can carry
        return
    progress.tick(1, info.size if info.isfile() else 0)
    if info.isfile():
        with open(path, "rb") as handle:
            tar.addfile(info, handle)
        return
    tar.addfile(info)
    if info.isdir():
        for name in sorted(os.listdir(path)):
            child = os.path.join(path, name)
            if child not in skip:
                _add(tar, child, name if arcname == "." else f"{arcname}/{name}", skip)


def _pull(client: Any, container: str, skip: set[str], path: str, inside: str, rel: str) -> None:
    source = inside if rel == "." else f"{inside.rstrip('/')}/{rel}"
    with tempfile.TemporaryFile() as buf:
        with progress.Progress(f"pulling {path}", unit="chunks"):
            try:
                stream, _stat = client.api.get_archive(container, source)
                for chunk in stream:
                    buf.write(chunk)
                    progress.tick(1, len(chunk))
            except Exception as exc:
                raise VenvrootError(
                    f"venvroot pull {path}: the engine gave nothing ({explain(exc)})"
                ) from None
        buf.seek(0)
        top = os.path.basename(source.rstrip("/")) or "."
        dest = os.path.dirname(path.rstrip("/"))
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(fileobj=buf) as tar:
            members = []
            for member in tar.getmembers():
                name = member.name
                rest = name[len(top) :] if name == top or name.startswith(top + "/") else None
                if rest is None:
                    continue
                member.name = os.path.basename(path.rstrip("/")) + rest
                target = os.path.join(dest, member.name)
                if any(target == s or target.startswith(s + "/") for s in skip):
                    continue
                members.append(member)
            _extract(tar, members, dest)


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: str) -> None:
    if hasattr(tarfile, "tar_filter"):  # refuses absolute names, '..' and device files
        tar.extractall(dest, members, filter="tar")
    else:  # Python before 3.11.4: the same checks by hand
        safe = [
            m
            for m in members
            if not m.name.startswith("/") and ".." not in m.name.split("/") and not m.isdev()
        ]
        tar.extractall(dest, safe)


def remote_programs(client: Any, container: str, bin_dir: str) -> list[str]:
    """The executables in the env's ``bin`` on the engine (its Python's: python, pip, scripts)."""
    # the docker SDK (~120 ms): only for a remote env's files
    import docker

    try:
        stream, _stat = client.api.get_archive(container, bin_dir)
    except docker.errors.NotFound:
        return []
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        found = []
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) != 2 or parts[1].startswith(("activate", "Activate", ".")):
                continue
            if member.issym() or (member.isfile() and member.mode & stat.S_IXUSR):
                found.append(parts[1])
    return sorted(found)


def remove_volumes(client: Any, env_dir: str) -> None:
    # the docker SDK (~120 ms): only for a remote env's files
    import docker

    for volume in client.volumes.list(filters={"label": f"{layout.LABEL_ENV}={env_dir}"}):
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise VenvrootError(f"cannot remove the env's volume {volume.name}: {explain(exc)}") from None
