"""Root sources of the ``ns`` backend: the host, a directory, a tarball, a docker image (and debian.py's).

A tarball or an image is unpacked once, at create, into the env's pristine lower layer. Unpacking
never writes outside that directory: members with absolute or ``..`` paths are refused, nothing is
written through a symlink (a member under a path that is a symlink is refused, a member replacing
a symlink removes the link first), hard links must point at earlier members, and device nodes are
skipped (rootless they cannot be made; as root they would be a way out). As root, owners are kept;
rootless with subordinate ids too, shifted into the range (mappedroot.py); else every file is the
caller's.
"""

from __future__ import annotations

import contextlib
import os

from ...errors import UsageError, VenvrootError
from ...util import progress
from . import mappedroot

TYPE_CHECKING = False  # typing costs every create ~2 ms to import
if TYPE_CHECKING:
    import tarfile
    from typing import IO, Any

TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar.bz2", ".tbz2")
DOCKER_PREFIX = "docker:"
DEBIAN_PREFIX = "debian:"  # debian.py: made by debootstrap
EMPTY = "cannot use {} as a root: the tarball is empty"


def kind_of(root: str | None) -> str:
    """host, directory, tarball, docker or debian; raise UsageError for a root that is none of them."""
    if root is None:
        return "host"
    if root.startswith(DOCKER_PREFIX):
        if not root[len(DOCKER_PREFIX) :]:
            raise UsageError("--root docker: needs an image name, e.g. --root docker:debian:12")
        return "docker"
    if root.startswith(DEBIAN_PREFIX) and not os.path.isdir(root):
        from .debian import suite_of  # debian (subprocess, shutil: ~9 ms): only for a debian:SUITE root

        suite_of(root)
        return "debian"
    if os.path.isdir(root):
        return "directory"
    if root.endswith(TARBALL_SUFFIXES):
        if not os.path.isfile(root):
            raise UsageError(f"root tarball {root} does not exist; check the path")
        return "tarball"
    if not os.path.exists(root):
        raise UsageError(
            f"root {root} does not exist; give a directory, a tarball (.tar, .tar.gz, .tar.xz, .tar.zst), "
            "docker:IMAGE or debian:SUITE"
        )
    raise UsageError(
        f"root {root} is neither a directory nor a tarball (.tar, .tar.gz, .tar.xz, .tar.zst); "
        "give one of those, docker:IMAGE or debian:SUITE"
    )


# -- tarballs ---------------------------------------------------------------------------------------


def unpack_tarball(path: str, dest: str, inside: tuple[int, int]) -> None:
    """Unpack ``path`` (.tar, .gz, .xz, .bz2, or .zst with the zstd tool) into ``dest``."""
    # shutil, subprocess (~9 ms): only to unpack, not on a session hook's path (backend.py loads this module)
    import shutil
    import subprocess

    if path.endswith((".zst", ".tzst")):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise VenvrootError(
                f"cannot unpack {path}: .zst needs the zstd tool, which is not installed; install zstd "
                "or give a .tar, .tar.gz or .tar.xz"
            )
        with subprocess.Popen(
            [zstd, "-dc", "--", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None
            try:
                _unpack_stream(proc.stdout, dest, path, "r|", inside)
            finally:
                proc.stdout.close()
                err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                code = proc.wait()
            if code:
                raise VenvrootError(f"cannot unpack {path}: zstd failed: {err or f'exit status {code}'}")
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the stream
    except OSError as exc:
        raise VenvrootError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        _unpack_stream(handle, dest, path, "r|*", inside)


def _unpack_stream(stream: IO[bytes], dest: str, shown: str, mode: str, inside: tuple[int, int]) -> None:
    # tarfile, lzma, zlib (~6 ms): only to unpack, not on a session hook's path
    import lzma
    import tarfile
    import zlib

    try:
        with tarfile.open(fileobj=stream, mode=mode) as tar:  # type: ignore[call-overload]  # a stream mode
            count = _extract(tar, dest, shown, inside)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, (tarfile.TarError, EOFError)) and exc.errno:
            raise VenvrootError(f"cannot unpack {shown}: {exc.strerror}: {exc.filename or ''}") from None
        raise VenvrootError(
            f"cannot unpack {shown}: not a valid tarball ({exc or type(exc).__name__})"
        ) from None
    if count == 0:
        raise VenvrootError(EMPTY.format(shown))


def _clean_name(name: str, shown: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise VenvrootError(f"refusing to unpack {shown}: the member {name!r} points outside the root")
    return "/".join(parts)


def _through_symlink(name: str, symlinks: set[str], last: bool) -> bool:
    """Whether resolving ``name`` would follow a symlink member (its own last part too if ``last``)."""
    parts = name.split("/")
    upto = len(parts) if last else len(parts) - 1
    return any("/".join(parts[:i]) in symlinks for i in range(1, upto + 1))


def _extract(tar: tarfile.TarFile, dest: str, shown: str, inside: tuple[int, int]) -> int:
    """Rootless with subordinate ids, as root of a namespace mapping them as the env will (the
    caller backing ``inside``), so that every file keeps its owner, shifted into the range."""
    if not mappedroot.needed():
        with progress.Progress(f"unpacking {shown}"):
            return extract_safely(tar, dest, shown)

    def work() -> None:  # the line is drawn where the files are counted: in the child
        with progress.Progress(f"unpacking {shown}"):
            if extract_safely(tar, dest, shown) == 0:
                raise VenvrootError(EMPTY.format(shown))

    mappedroot.run(work, inside)
    return 1  # the child counted: an empty tarball failed there


def extract_safely(tar: tarfile.TarFile, dest: str, shown: str) -> int:
    """Extract every member under ``dest`` (see the module's docstring); return how many."""
    import shutil  # shutil (re, bz2, lzma: ~5 ms): only to unpack, not on a session hook's path

    symlinks: set[str] = set()  # member paths that are symlinks now
    dirs: list[tarfile.TarInfo] = []
    count = 0
    as_root = os.geteuid() == 0
    for member in tar:
        name = _clean_name(member.name, shown)
        if not name:
            continue  # "./" itself
        count += 1
        progress.tick(1, member.size)
        if member.ischr() or member.isblk():
            continue
        if _through_symlink(name, symlinks, last=False):
            raise VenvrootError(
                f"refusing to unpack {shown}: the member {member.name!r} lies under a symlink"
            )
        target = os.path.join(dest, name)
        if member.islnk():
            link = _clean_name(member.linkname, shown)
            if not link or _through_symlink(link, symlinks, last=True):
                raise VenvrootError(f"refusing to unpack {shown}: the hard link {member.name!r} is unsafe")
            member.linkname = link
        if os.path.lexists(target) and not (
            member.isdir() and os.path.isdir(target) and name not in symlinks
        ):
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)
        symlinks.discard(name)
        member.name = name
        if member.issym():
            symlinks.add(name)
        if member.isdir():
            os.makedirs(target, 0o700, exist_ok=True)
            dirs.append(member)
            continue
        tar.extract(member, dest, set_attrs=not member.issym() or as_root, numeric_owner=True)
    # Directories last, deepest first: a read-only directory must not stop its own extraction.
    for member in sorted(dirs, key=lambda m: m.name.count("/"), reverse=True):
        target = os.path.join(dest, member.name)
        if as_root:
            tar.chown(member, target, numeric_owner=True)
        tar.chmod(member, target)
        tar.utime(member, target)
    return count


# -- docker images -----------------------------------------------------------------------------------


def export_image(ref: str, dest: str, inside: tuple[int, int]) -> dict[str, Any]:
    """Export the filesystem of the image ``ref`` into ``dest``; return the image's config."""
    try:
        import docker  # the docker SDK (~95 ms): only for a docker:IMAGE root
    except ImportError:
        raise VenvrootError(
            "--root docker:IMAGE needs the docker Python package; pip install docker"
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise VenvrootError(
            f"--root docker:{ref}: cannot reach the Docker daemon ({exc}); start it or use another root"
        ) from None
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise VenvrootError(
            f"--root docker:{ref}: no such image on this machine; `docker pull {ref}` or build it first"
        ) from None
    except docker.errors.APIError as exc:
        raise VenvrootError(f"--root docker:{ref}: {exc.explanation or exc}") from None
    container = client.api.create_container(image.id, command=["/venvroot-export"], entrypoint=[])
    try:
        stream = client.api.export(container["Id"])
        reader = _ChunkReader(stream)
        _unpack_stream(reader, dest, f"the image {ref}", "r|", inside)  # type: ignore[arg-type]
    except docker.errors.APIError as exc:
        raise VenvrootError(f"cannot export the image {ref}: {exc.explanation or exc}") from None
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(container["Id"], force=True)
    return image.attrs.get("Config") or {}


class _ChunkReader:
    """A file-like ``read`` over an iterator of byte chunks (the export stream)."""

    def __init__(self, chunks: Any) -> None:
        self.chunks = iter(chunks)
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def image_path(config: dict[str, Any]) -> str | None:
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        if key == "PATH":
            return value
    return None
