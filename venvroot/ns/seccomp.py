"""The terminal filter: no program inside may push keystrokes into the caller's terminal.

``ioctl(TIOCSTI)`` queues input on a terminal as if typed: a program inside an environment that
shares the caller's terminal could type a command that the user's own shell runs once the shim
exits, outside the environment. ``TIOCLINUX`` can do the like on a virtual console. A seccomp
filter makes both fail with EPERM (flatpak does the same; bubblewrap's other answer, a new
session, breaks job control). Installed once per process entering a root, inherited by everything
it starts; the compiled starter installs the same filter, instruction for instruction.
Architectures other than x86_64 and aarch64 get none.
"""

from __future__ import annotations

import os
import sys

from . import syscalls

_ALLOW = 0x7FFF0000
_DENY = 0x00050000 | 1  # SECCOMP_RET_ERRNO | EPERM
_LD, _JEQ, _RET = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
# machine -> (audit arch, ioctl, x32 ioctl, 32-bit audit arch, 32-bit ioctl)
_ARCHES = {
    "x86_64": (0xC000003E, 16, 0x40000000 | 514, 0x40000003, 54),
    "aarch64": (0xC00000B7, 29, 29, 0x40000028, 54),
}


def program() -> list[tuple[int, int, int, int]] | None:
    """The filter as (code, jt, jf, k) instructions, or None on an architecture without one."""
    arch = _ARCHES.get(os.uname().machine)
    if arch is None or sys.byteorder != "little":
        return None
    native, nr, nr_x32, arch32, nr32 = arch
    return [
        (_LD, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 3, 0, native),
        (_JEQ, 0, 8, arch32),
        (_LD, 0, 0, 0),  # seccomp_data.nr
        (_JEQ, 3, 6, nr32),
        (_LD, 0, 0, 0),
        (_JEQ, 1, 0, nr),
        (_JEQ, 0, 3, nr_x32),
        (_LD, 0, 0, 24),  # the low half of seccomp_data.args[1], the request
        (_JEQ, 2, 0, _TIOCSTI),
        (_JEQ, 1, 0, _TIOCLINUX),
        (_RET, 0, 0, _ALLOW),
        (_RET, 0, 0, _DENY),
    ]


def _encode(code: list[tuple[int, int, int, int]] | None) -> bytes:
    return b"".join(
        c.to_bytes(2, "little") + bytes((jt, jf)) + k.to_bytes(4, "little") for c, jt, jf, k in code or ()
    )


# Made and bound on import, outside any root: inside, the C half of ctypes may not be found.
_FILTER = _encode(program())
if _FILTER:
    syscalls.bind_libc()


def deny_tty_injection() -> None:
    """Install the filter in this process (needs no_new_privs or CAP_SYS_ADMIN in its user
    namespace, which every caller has). Raises OSError."""
    if not _FILTER:
        return
    try:
        syscalls.seccomp_filter(_FILTER)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot install the terminal filter: {exc.strerror}") from None
