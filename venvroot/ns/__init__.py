"""venvroot.ns: run commands, functions and ``with`` blocks inside a root, in Linux namespaces.

Rootless through user namespaces; as root, root-capable. The API::

    from venvroot.ns import Chroot, Mount, exec_command, run_command, run_function

    with Chroot("/srv/root", hostname="box"):        # pychroot's interface
        ...                                          # runs inside; locals and exceptions come back
    run_command("/srv/root", ["ls", "/"])            # -> exit status
    run_function("/srv/root", os.listdir, ("/",))    # -> return value (or its exception)
    exec_command(root, argv, mounts=[Mount.rbind("/home")], uid=None, pid=False)  # shims: never returns

Names load on first use, so that ``exec_command`` (the shim path) imports only what it needs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~10 ms to import, too much for the shim path
if TYPE_CHECKING:
    from typing import Any

    from .chroot import Chroot
    from .errors import ChrootError, ChrootMountError, NamespaceError, RemoteTraceback
    from .join import join_command
    from .mounts import Mount
    from .runner import DEFAULT, exec_command, make_spec, run_command, run_function

_WHERE = {
    "Chroot": "chroot",
    "ChrootError": "errors",
    "ChrootMountError": "errors",
    "NamespaceError": "errors",
    "RemoteTraceback": "errors",
    "Mount": "mounts",
    "DEFAULT": "runner",
    "exec_command": "runner",
    "join_command": "join",
    "make_spec": "runner",
    "run_command": "runner",
    "run_function": "runner",
}

__all__ = [
    "DEFAULT",
    "Chroot",
    "ChrootError",
    "ChrootMountError",
    "Mount",
    "NamespaceError",
    "RemoteTraceback",
    "exec_command",
    "join_command",
    "make_spec",
    "run_command",
    "run_function",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'venvroot.ns' has no attribute {name!r}")
    return getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
