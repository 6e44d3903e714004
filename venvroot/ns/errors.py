"""The runner's errors: one line that names the problem and the fix."""

from __future__ import annotations

from ..errors import VenvrootError


class ChrootError(VenvrootError):
    """The root could not be entered or set up (bad root, mount failure, namespaces refused)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class ChrootMountError(ChrootError):
    """A mount could not be made: missing source, bad destination, or the kernel refused it."""


class NamespaceError(ChrootError):
    """The kernel, a sysctl or a container refused to create the namespaces."""


class RemoteTraceback(Exception):  # noqa: N818 - named after what it shows, like concurrent.futures'
    """Set as ``__cause__`` of an exception raised inside the root: its text is the inner traceback."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


KINDS: dict[str, type[ChrootError]] = {
    cls.__name__: cls for cls in (ChrootError, ChrootMountError, NamespaceError)
}
