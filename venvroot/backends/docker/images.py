"""The docker env's images: snapshots committed as images, the image its container is made from,
and its containers found and removed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Any

from ...errors import VenvrootError
from . import layout
from .engine import encode, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from ..settings import Settings

    class Backend(Protocol):
        """What the image code uses of backend.py's class (which imports it)."""

        settings: Settings

        @property
        def env_dir(self) -> str: ...
        @property
        def state(self) -> layout.StateDir: ...
        @property
        def container(self) -> str: ...
        @property
        def client(self) -> Any: ...


# Snapshots stack image layers; past this depth a new snapshot starts no new stack (see rebase).
MAX_LAYERS = 100


def explain(exc: Any) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def snapshot_root(b: Backend, dest: str, snap_id: str, previous: str | None) -> dict[str, str]:
    """Commit the container as ``<repository>:snap-<id>``: a layer with its changes on top of the
    image it was made from, which the snapshot shares. No container (after a reset or restore):
    the root is its image unchanged, which the snapshot tags."""
    # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
    import docker

    api = b.client.api
    repo = layout.image_repository(b.env_dir)
    tag = layout.snapshot_tag(snap_id)
    found = find_container(b)
    try:
        if found is None:
            image = spec_image(b)
            api.tag(image, repo, tag)
            size = 0
        else:
            changes = [f"LABEL {layout.LABEL_ROLE}=snapshot"]
            image = api.commit(found.id, repository=repo, tag=tag, changes=changes)["Id"]
            size = layer_size(b, image)
            rebase(b, found, image)
    except docker.errors.APIError as exc:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_image(f"{repo}:{tag}")
        raise VenvrootError(f"cannot commit the container {b.container}: {explain(exc)}") from None
    return {"docker-image": image, "docker-tag": f"{repo}:{tag}", "root-size": str(size)}


def rebase(b: Backend, container: Any, image: str) -> None:
    """A commit holds all the container's changes since it was made. When nothing runs in it,
    make it anew from the snapshot just taken (same files), so that the next snapshot's layer
    holds only what changes from now on - unless the image stack is getting deep (the
    storage driver allows some 125 layers)."""
    if container.status in ("running", "paused", "restarting"):
        return
    if len(b.client.api.inspect_image(image).get("RootFS", {}).get("Layers") or ()) > MAX_LAYERS:
        return
    fd = os.open(b.state.lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a shim is starting it right now
        container.reload()
        if container.status in ("running", "paused", "restarting"):
            return
        remove_containers(b)
        use_image(b, image)
    finally:
        os.close(fd)


def restore_root(b: Backend, src: str, facts: dict[str, str]) -> None:
    """Remove the container; the next use recreates it from the snapshot's image."""
    # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
    import docker

    image = facts.get("docker-image", "")
    try:
        b.client.images.get(image)
    except (docker.errors.ImageNotFound, docker.errors.NullResource):
        raise VenvrootError(
            f"the snapshot's image {image[7:19] or '?'} is gone (removed outside venvroot); "
            "this snapshot cannot be restored, delete it"
        ) from None
    remove_containers(b)
    use_image(b, image)


def drop_root_snapshot(b: Backend, src: str, facts: dict[str, str]) -> None:
    """Untag the snapshot's image; Docker deletes it when no other image, tag or container
    needs it."""
    # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
    import docker

    tag = facts.get("docker-tag")
    if not tag:
        return
    try:
        b.client.api.remove_image(tag)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise VenvrootError(f"cannot remove the snapshot's image {tag}: {explain(exc)}") from None
    prune(b)


def spec_image(b: Backend) -> str:
    with open(b.state.container_spec, "rb") as handle:
        spec = loads(handle.read().decode("utf-8", "surrogateescape"))
    return spec["Image"]  # type: ignore[index]


def use_image(b: Backend, image: str) -> None:
    """Make the container from ``image`` from now on (tagging it ``current`` unless it is the
    base), and let go of images nothing needs any more."""
    path = b.state.container_spec
    with open(path, "rb") as handle:
        spec = loads(handle.read().decode("utf-8", "surrogateescape"))
    spec["Image"] = image  # type: ignore[index]
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(encode(spec))
    os.replace(tmp, path)
    repo = layout.image_repository(b.env_dir)
    if image == b.settings.extra.get("docker-base-image"):
        # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
        import docker

        with contextlib.suppress(docker.errors.NotFound):  # the base is kept by its own tag
            b.client.api.remove_image(f"{repo}:{layout.CURRENT_TAG}")
    else:
        b.client.api.tag(image, repo, layout.CURRENT_TAG)
    prune(b)


def prune(b: Backend) -> None:
    # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
    import docker

    with contextlib.suppress(docker.errors.APIError):
        b.client.api.prune_images(filters={"dangling": True, "label": f"{layout.LABEL_ENV}={b.env_dir}"})


def layer_size(b: Backend, image: str) -> int:
    """Bytes the image adds to its parent (its own layer)."""
    api = b.client.api
    attrs = api.inspect_image(image)
    parent = attrs.get("Parent")
    below = int(api.inspect_image(parent).get("Size") or 0) if parent else 0
    return int(attrs.get("Size") or 0) - below


def find_container(b: Backend) -> Any:
    # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
    import docker

    try:
        return b.client.containers.get(b.container)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise VenvrootError(f"cannot look up container {b.container}: {explain(exc)}") from None


def remove_containers(b: Backend) -> None:
    # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
    import docker

    found = {
        c.id: c
        for c in b.client.containers.list(all=True, filters={"label": f"{layout.LABEL_ENV}={b.env_dir}"})
    }
    named = find_container(b)
    if named is not None and named.labels.get(layout.LABEL_ENV) == b.env_dir:
        found[named.id] = named
    for container in found.values():
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise VenvrootError(f"cannot remove container {container.name}: {explain(exc)}") from None
    # A removal is asynchronous for the name; wait until the name is free again.
    for _ in range(50):
        if find_container(b) is None:
            break
        time.sleep(0.05)


def remove_all(b: Backend) -> None:
    """Every image the env made (found by label): the base, the snapshots, the frozen base.
    Children first: Docker refuses to remove an image that another one is built on."""
    # the docker SDK (~120 ms): only for the calls that need it, not on `venvroot run`'s path
    import docker

    labelled = b.client.images.list(all=True, filters={"label": f"{layout.LABEL_ENV}={b.env_dir}"})
    # The SDK's list gives each image's full inspect data ("Parent"), not the listing's "ParentId".
    found = {image.id: image.attrs.get("Parent") or image.attrs.get("ParentId", "") for image in labelled}
    while found:
        parents = set(found.values())
        leaves = [i for i in found if i not in parents] or list(found)
        for image in leaves:
            del found[image]
            try:
                b.client.api.remove_image(image, force=True)
            except docker.errors.NotFound:
                pass  # removed with its child already
            except docker.errors.APIError as exc:
                raise VenvrootError(f"cannot remove the env's image {image[7:19]}: {explain(exc)}") from None
