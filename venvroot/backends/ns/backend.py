"""Management side of the ``ns`` backend."""

from __future__ import annotations

import os

from ...errors import UsageError
from ..base import Backend as BaseBackend


class Backend(BaseBackend):
    name = "ns"

    @property
    def root_dir(self) -> str:
        return self.settings.root or "/"

    def preflight(self) -> None:
        root = self.settings.root
        if root is not None and not os.path.isdir(root):
            raise UsageError(f"root {root} is not a directory; give an existing root with --root DIR")

    def has_program(self, program: str) -> bool:
        root = self.root_dir
        if program.startswith("/"):
            candidates = [program]
        else:
            candidates = [f"{d}/{program}" for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                                     "/usr/bin", "/sbin", "/bin")]
        return any(os.access(os.path.join(root, c.lstrip("/")), os.X_OK) for c in candidates)
