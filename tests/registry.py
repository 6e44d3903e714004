"""A registry the tests serve themselves (no image registry is reachable here): the Docker Registry
HTTP API v2, read-only, just what ``docker pull`` asks for, over plain HTTP on loopback (the Engine
treats 127.0.0.0/8 as an insecure registry by default)."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """``with Registry() as r: r.add("name", "tag", root)`` serves ``root`` (a directory) as a
    one-layer image ``127.0.0.1:PORT/name:tag``; ``r.requests`` lists the paths asked for."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def add(self, name: str, tag: str, root: Path) -> str:
        layer = subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "--owner=0", "--group=0", "-cf", "-", "."],
            capture_output=True,
            check=True,
        ).stdout
        packed = gzip.compress(layer, mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
            }
        ).encode()
        self.blobs[_digest(packed)] = packed
        self.blobs[_digest(config)] = config
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(packed),
                    "digest": _digest(packed),
                }
            ],
        }
        self.manifests[(name, tag)] = json.dumps(manifest).encode()
        return f"{self.host}/{name}:{tag}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                registry.requests.append(self.path)
                found, kind = registry._lookup(self.path)
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    data = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(found)))
                if found:
                    self.send_header("Docker-Content-Digest", _digest(found))
                self.end_headers()
                if body:
                    self.wfile.write(found)

        return Handler

    def _lookup(self, path: str) -> tuple[bytes | None, str]:
        if path.rstrip("/") == "/v2":
            return b"{}", "application/json"
        parts = path.split("/")
        if len(parts) >= 5 and parts[1] == "v2" and parts[-2] == "manifests":
            name, ref = "/".join(parts[2:-2]), parts[-1]
            found = self.manifests.get((name, ref))
            if found is None and ref.startswith("sha256:"):  # asked again by the digest it answered
                found = next(
                    (m for (n, _), m in self.manifests.items() if n == name and _digest(m) == ref), None
                )
            return found, MANIFEST_TYPE
        if len(parts) >= 5 and parts[1] == "v2" and parts[-2] == "blobs":
            return self.blobs.get(parts[-1]), "application/octet-stream"
        return None, ""

    def __enter__(self) -> Registry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
