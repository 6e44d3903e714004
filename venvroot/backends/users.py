"""Who programs run as inside an environment, and the passwd/group entries that make it real.

Both backends use it, so ``--user`` means the same everywhere. No tool of the root is used (many
images have no ``useradd``): the entries are merged into the root's own ``/etc/passwd`` and
``/etc/group`` text here; the docker backend writes them with the archive API, the ns backend into
the root's writable layer.
"""

from __future__ import annotations

import grp
import os
import pwd

from ..errors import UsageError
from .mapping import UserSpec

SYSTEM_IDS = range(999, 99, -1)  # like useradd -r: system accounts count down from 999


class Account:
    """A user inside (a plain class: ``dataclasses`` would cost every create ~5 ms to import)."""

    def __init__(
        self,
        name: str,
        uid: int,
        gid: int,
        group: str,
        home: str,
        shell: str = "/bin/sh",
        groups: list[tuple[str, int]] | None = None,
    ) -> None:
        self.name = name
        self.uid = uid
        self.gid = gid
        self.group = group
        self.home = home
        self.shell = shell
        # Supplementary groups (name, gid) the account is a member of.
        self.groups = [] if groups is None else groups

    def __repr__(self) -> str:
        return "Account(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    @property
    def user_spec(self) -> str:
        """For exec's User: numeric, so it works whatever the image's files say."""
        return f"{self.uid}:{self.gid}"


def resolve(spec: UserSpec, image_passwd: str) -> Account:
    """The account for ``--user`` (``spec``): the caller, root, or ``[system:][ID:]NAME``."""
    if spec.is_caller:
        uid, gid = os.getuid(), os.getgid()
        try:
            entry = pwd.getpwuid(uid)
            name, home = entry.pw_name, entry.pw_dir
        except KeyError:
            name, home = os.environ.get("USER") or f"user{uid}", os.environ.get("HOME") or f"/home/user{uid}"
        groups = []
        for extra in sorted(set(os.getgroups()) - {gid}):
            groups.append((_group_name(extra), extra))
        if uid == 0:
            home = _home_in_image(image_passwd, 0) or "/root"
        return Account(name, uid, gid, _group_name(gid, default=name), home, groups=groups)
    if spec.name == "root":
        return Account("root", 0, 0, "root", _home_in_image(image_passwd, 0) or "/root")
    assert spec.name is not None
    if spec.uid is not None:
        uid = gid = spec.uid
    elif spec.system:
        used = {_fields(line)[2] for line in image_passwd.splitlines() if len(_fields(line)) > 2}
        uid = next((i for i in SYSTEM_IDS if str(i) not in used), None)  # type: ignore[assignment]
        if uid is None:
            raise UsageError(f"--user {spec}: no free system user ID (100-999) in the image; give one")
        gid = uid
    else:
        # A name of your choosing with your own IDs: files in the mapped directories stay yours.
        uid, gid = os.getuid(), os.getgid()
    return Account(spec.name, uid, gid, spec.name, f"/home/{spec.name}")


def _group_name(gid: int, default: str | None = None) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return default or f"group{gid}"


def _fields(line: str) -> list[str]:
    return line.split(":")


def _home_in_image(passwd: str, uid: int) -> str | None:
    for line in passwd.splitlines():
        f = _fields(line)
        if len(f) >= 7 and f[2] == str(uid):
            return f[5]
    return None


def merge_passwd(text: str, acct: Account) -> str:
    """The image's passwd with ``acct`` in it: an entry of the same name is replaced; the new
    entry goes before another that has the same uid, so lookups by uid find it."""
    lines = [ln for ln in text.splitlines() if ln.strip() and _fields(ln)[0] != acct.name]
    entry = f"{acct.name}:x:{acct.uid}:{acct.gid}:{acct.name}:{acct.home}:{acct.shell}"
    if acct.uid == 0 and not any(_fields(ln)[0] == "root" for ln in lines) and acct.name != "root":
        lines.insert(0, "root:x:0:0:root:/root:/bin/sh")
    same_uid = [i for i, ln in enumerate(lines) if len(_fields(ln)) > 2 and _fields(ln)[2] == str(acct.uid)]
    lines.insert(same_uid[0] if same_uid else len(lines), entry)
    return "\n".join(lines) + "\n"


def merge_group(text: str, acct: Account) -> str:
    """The image's group file with the account's primary group and its membership of each
    supplementary group (an existing group of that gid gains the member; else one is added)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    by_gid: dict[str, int] = {}
    for i, ln in enumerate(lines):
        f = _fields(ln)
        if len(f) >= 3:
            by_gid.setdefault(f[2], i)
    if str(acct.gid) not in by_gid:
        lines.append(f"{acct.group}:x:{acct.gid}:")
        by_gid[str(acct.gid)] = len(lines) - 1
    for name, gid in acct.groups:
        at = by_gid.get(str(gid))
        if at is None:
            lines.append(f"{name}:x:{gid}:{acct.name}")
            by_gid[str(gid)] = len(lines) - 1
            continue
        f = _fields(lines[at])
        while len(f) < 4:
            f.append("")
        members = [m for m in f[3].split(",") if m]
        if acct.name not in members:
            members.append(acct.name)
        f[3] = ",".join(members)
        lines[at] = ":".join(f)
    return "\n".join(lines) + "\n"
