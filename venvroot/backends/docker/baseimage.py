"""The env's base image: the user's image with the env's account (passwd, group, home) committed
on top, made at create and again by a reset that finds it gone."""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import tarfile
import time

from ...errors import VenvrootError
from .. import users
from ..mapping import UserSpec
from . import layout
from .images import explain

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from . import images

    class Backend(images.Backend, Protocol):
        """What the base image code uses of backend.py's class (which imports it)."""

        @property
        def _image(self) -> Any: ...
        def labels(self) -> dict[str, str]: ...


def make(b: Backend) -> tuple[users.Account, str]:
    """Merge the env's user into the image; commit the result as the env's base image."""
    # the docker SDK (~120 ms): only when the base image is made
    import docker

    labels = b.labels() | {layout.LABEL_ROLE: "base"}
    api = b.client.api
    try:
        setup = api.create_container_from_config(
            {"Image": b._image.id, "Entrypoint": ["/bin/sh"], "Cmd": [], "Labels": labels}, None
        )["Id"]
    except docker.errors.APIError as exc:
        raise VenvrootError(f"cannot make a container from {b.settings.image}: {explain(exc)}") from None
    try:
        passwd = _read_file(b, setup, "/etc/passwd")
        group = _read_file(b, setup, "/etc/group")
        account = users.resolve(UserSpec.parse(b.settings.user), passwd)
        files = {
            "etc/passwd": users.merge_passwd(passwd, account),
            "etc/group": users.merge_group(group, account),
        }
        home = None if _exists(b, setup, account.home) else account.home
        api.put_archive(setup, "/", _tar(files, home, account))
        committed = api.commit(setup, repository=layout.image_repository(b.env_dir), tag="base")
        return account, committed["Id"]
    except docker.errors.APIError as exc:
        raise VenvrootError(f"cannot prepare the image {b.settings.image}: {explain(exc)}") from None
    finally:
        with contextlib.suppress(docker.errors.APIError):  # else destroy finds it by its label
            api.remove_container(setup, force=True)


def _read_file(b: Backend, container: str, path: str) -> str:
    # the docker SDK (~120 ms): only when the base image is made
    import docker

    try:
        stream, _stat = b.client.api.get_archive(container, path)
    except docker.errors.NotFound:
        return ""
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                return extracted.read().decode("utf-8", "surrogateescape") if extracted else ""
    return ""


def _exists(b: Backend, container: str, path: str) -> bool:
    # the docker SDK (~120 ms): only when the base image is made
    import docker

    try:
        stream, _stat = b.client.api.get_archive(container, path)
    except docker.errors.NotFound:
        return False
    if hasattr(stream, "close"):
        stream.close()
    return True


def env_value(attrs: dict, key: str) -> str | None:
    for item in (attrs.get("Config") or {}).get("Env") or []:
        name, _, value = item.partition("=")
        if name == key:
            return value
    return None


def login_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _tar(files: dict[str, str], home: str | None, account: users.Account) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode("utf-8", "surrogateescape")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        if home:
            info = tarfile.TarInfo(home.strip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            info.uid, info.gid = account.uid, account.gid
            tar.addfile(info)
    return buf.getvalue()
