"""Pulling an image that is not on the engine yet, with a progress line of its layers and bytes."""

from __future__ import annotations

from ...util import progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PullError(Exception):
    """The engine's reason, reported in the pull's stream rather than as an HTTP error."""


def pull(client: Any, ref: str) -> None:
    """``docker pull REF``: the layers done and the bytes downloaded are drawn on a terminal (not
    with ``-q``). Raises ``docker.errors.APIError`` or :class:`PullError`."""
    # the docker SDK (~120 ms): only when an image is pulled
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(ref)
    downloaded: dict[str, int] = {}
    totals: dict[str, int] = {}
    with progress.Progress(f"pulling {ref}", unit="layers"):
        for event in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if event.get("error"):
                raise PullError(event.get("error"))
            layer, status = event.get("id") or "", event.get("status") or ""
            detail = event.get("progressDetail") or {}
            if status == "Downloading" and isinstance(detail.get("current"), int):
                totals[layer] = detail.get("total") or totals.get(layer, 0)
                _count(downloaded, layer, detail["current"])
            elif status == "Download complete":  # the engine reports progress sparsely: the rest
                _count(downloaded, layer, max(totals.get(layer, 0), downloaded.get(layer, 0)))
            elif status in ("Pull complete", "Already exists"):
                progress.tick(1, 0)


def _count(downloaded: dict[str, int], layer: str, now: int) -> None:
    progress.tick(0, now - downloaded.get(layer, 0))
    downloaded[layer] = now
