"""Thin wrappers over the Linux system calls the runner needs. Each raises ``OSError`` with errno.

libc is bound on first use, once, through the C half of ctypes (``_ctypes``): importing the ``ctypes``
package costs ~3 ms more and the shim path pays for every millisecond. If ``_ctypes`` ever changes
shape, the ``ctypes`` package is used instead. Python 3.12's ``os.unshare``/``os.setns`` are preferred
when present.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_RELATIME = 0x200000

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10

AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1

# Syscalls without a glibc wrapper. openat2 (437) and mount_setattr (442) use the unified numbering
# shared by every architecture; pivot_root predates it.
_SYS_OPENAT2 = 437
_SYS_MOUNT_SETATTR = 442
_SYS_PIVOT_ROOT = {
    "x86_64": 155,
    "aarch64": 41,
    "riscv64": 41,
    "i686": 217,
    "i386": 217,
    "armv7l": 218,
    "ppc64le": 203,
    "s390x": 217,
}.get(os.uname().machine)

_functions: dict[str, Callable[..., int]] = {}
_get_errno: Callable[[], int] | None = None
_pointers: tuple = ()  # (char_p type, ulong type, addressof): a bytes object's address


def bind_libc() -> None:
    """Bind every libc function used below (done on first use; earlier when a root without the
    C half of ctypes will be entered first)."""
    global _get_errno, _pointers
    try:
        types, fn_type, lib, get_errno, addressof = _bind_with_c_ctypes()
    except (ImportError, AttributeError, TypeError, OSError):
        types, fn_type, lib, get_errno, addressof = _bind_with_ctypes()
    c_int, c_long, c_ulong, c_char_p = types
    _pointers = (c_char_p, c_ulong, addressof)
    # key: (symbol, result type, argument types). syscall(2) is bound once per use with longs for
    # every integer: it is variadic and the kernel reads whole registers.
    signatures: dict[str, tuple[str, object, tuple[object, ...]]] = {
        "unshare": ("unshare", c_int, (c_int,)),
        "setns": ("setns", c_int, (c_int, c_int)),
        "mount": ("mount", c_int, (c_char_p, c_char_p, c_char_p, c_ulong, c_char_p)),
        "umount2": ("umount2", c_int, (c_char_p, c_int)),
        "sethostname": ("sethostname", c_int, (c_char_p, c_ulong)),
        "setdomainname": ("setdomainname", c_int, (c_char_p, c_ulong)),
        "prctl": ("prctl", c_int, (c_int, c_ulong, c_ulong, c_ulong, c_ulong)),
        "prctl_ptr": ("prctl", c_int, (c_int, c_ulong, c_char_p, c_ulong, c_ulong)),
        "openat2": ("syscall", c_long, (c_long, c_long, c_char_p, c_char_p, c_long)),
        "mount_setattr": ("syscall", c_long, (c_long, c_long, c_char_p, c_long, c_char_p, c_long)),
        "pivot_root": ("syscall", c_long, (c_long, c_char_p, c_char_p)),
    }
    for key, (symbol, restype, argtypes) in signatures.items():
        fn = fn_type((symbol, lib))
        fn.restype = restype
        fn.argtypes = argtypes
        _functions[key] = fn
    _get_errno = get_errno


def _bind_with_c_ctypes() -> tuple:
    # _ctypes: only where the C helper is not built
    import _ctypes

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class CLong(_ctypes._SimpleCData):
        _type_ = "l"

    class CULong(_ctypes._SimpleCData):
        _type_ = "L"

    class CCharP(_ctypes._SimpleCData):
        _type_ = "z"

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    class Libc:
        _handle = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # None: this program itself

    return (CInt, CLong, CULong, CCharP), Function, Libc, _ctypes.get_errno, _ctypes.addressof


def _bind_with_ctypes() -> tuple:
    # ctypes (~2 ms): only where neither the C helper nor _ctypes serves
    import ctypes

    lib = ctypes.CDLL(None, use_errno=True)
    types = (ctypes.c_int, ctypes.c_long, ctypes.c_ulong, ctypes.c_char_p)
    return types, lib._FuncPtr, lib, ctypes.get_errno, ctypes.addressof


def _call(name: str, *args: object, path: str | bytes | None = None) -> int:
    if not _functions:
        bind_libc()
    result = _functions[name](*args)
    if result == -1:
        err = _get_errno()  # type: ignore[misc]
        raise OSError(err, os.strerror(err), None if path is None else os.fsdecode(path))
    return result


def _b(value: str | bytes | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    if hasattr(os, "unshare"):
        os.unshare(flags)
    else:
        _call("unshare", flags)


def setns(fd: int, nstype: int = 0) -> None:
    if hasattr(os, "setns"):
        os.setns(fd, nstype)
    else:
        _call("setns", fd, nstype)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _call("mount", _b(source), _b(target), _b(fstype), flags, _b(data), path=target)


def umount2(target: str, flags: int = 0) -> None:
    _call("umount2", _b(target), flags, path=target)


def pivot_root(new_root: str, put_old: str) -> None:
    if _SYS_PIVOT_ROOT is None:
        raise OSError(38, "pivot_root: unknown system call number on this architecture")
    _call("pivot_root", _SYS_PIVOT_ROOT, _b(new_root), _b(put_old), path=new_root)


def chroot(path: str) -> None:
    os.chroot(path)


def sethostname(name: str) -> None:
    data = name.encode()
    _call("sethostname", data, len(data))


def setdomainname(name: str) -> None:
    data = name.encode()
    _call("setdomainname", data, len(data))


def set_no_new_privs() -> None:
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def seccomp_filter(instructions: bytes) -> None:
    """Install a seccomp filter (``struct sock_filter`` entries, 8 bytes each) in this process."""
    if not _functions:
        bind_libc()
    char_p, ulong, addressof = _pointers
    keep = char_p(instructions)  # points at the bytes themselves: read that pointer back
    address = ulong.from_address(addressof(keep)).value
    fprog = (
        (len(instructions) // 8).to_bytes(2, sys.byteorder) + bytes(6) + address.to_bytes(8, sys.byteorder)
    )
    _call("prctl_ptr", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0)


def set_parent_death_signal(signum: int) -> None:
    _call("prctl", PR_SET_PDEATHSIG, signum, 0, 0, 0)


def set_dumpable(dumpable: bool) -> None:
    _call("prctl", PR_SET_DUMPABLE, int(dumpable), 0, 0, 0)


def _u64s(*values: int) -> bytes:
    """A struct of native u64s; the few the runner uses are made once (a start makes dozens of calls)."""
    data = _structs.get(values)
    if data is None:
        data = _structs[values] = b"".join(v.to_bytes(8, sys.byteorder) for v in values)
    return data


_structs: dict[tuple[int, ...], bytes] = {}


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2); ``struct open_how`` is three native u64s."""
    how = _u64s(flags, mode, resolve)
    return _call("openat2", _SYS_OPENAT2, dirfd, _b(path), how, len(how), path=path)


def mount_setattr(dirfd: int, path: str, at_flags: int, attr_set: int, attr_clr: int = 0) -> None:
    """mount_setattr(2); ``struct mount_attr`` is four native u64s."""
    attr = _u64s(attr_set, attr_clr, 0, 0)
    _call("mount_setattr", _SYS_MOUNT_SETATTR, dirfd, _b(path), at_flags, attr, len(attr), path=path)
