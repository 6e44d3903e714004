"""Who runs inside an ns env's root: the account recorded at create, its passwd/group entries and home."""

from __future__ import annotations

import os

from ...errors import VenvrootError
from .. import users
from ..mapping import UserSpec
from .layout import CFG_GID, CFG_HOME, CFG_LOGIN, CFG_UID, State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..settings import Settings
    from .rootview import RootView


def record(settings: Settings, view: RootView) -> None:
    """Record who runs inside when it is not the caller (users are resolved as the docker
    backend does, so both backends agree)."""
    spec = UserSpec.parse(settings.user)
    if spec.is_caller:
        return
    account = users.resolve(spec, _text(view, "/etc/passwd"))
    extra = settings.extra
    extra[CFG_UID], extra[CFG_GID] = str(account.uid), str(account.gid)
    extra[CFG_LOGIN], extra[CFG_HOME] = account.name, account.home


def write_users(settings: Settings, view: RootView, state: State) -> None:
    """passwd/group entries and a home for the user inside, in the writable layer, when the
    root does not know that user yet."""
    passwd = _text(view, "/etc/passwd")
    group = _text(view, "/etc/group")
    account = users.resolve(UserSpec.parse(settings.user), passwd)
    known = any(
        line.split(":")[:1] == [account.name] and line.split(":")[2:3] == [str(account.uid)]
        for line in passwd.splitlines()
    )
    if not known:
        _write_etc(view, state, "passwd", users.merge_passwd(passwd, account))
        _write_etc(view, state, "group", users.merge_group(group, account))
    home = view.lookup(account.home)
    owner = account.uid if os.geteuid() == 0 else os.getuid()  # host uid of the user inside
    if home is None or (os.path.isdir(home) and os.stat(home).st_uid != owner):
        # Missing, or someone else's (rootless, the root's own /root shows as nobody): the
        # writable layer gets the user's own copy.
        if home is None:
            view.ensure(account.home)
        else:
            view.mirror(account.home)
        home = view.lookup(account.home)
        if home is not None and os.geteuid() == 0:
            os.chown(home, account.uid, account.gid)


def _text(view: RootView, path: str) -> str:
    data = view.read(path)
    return data.decode("utf-8", "surrogateescape") if data else ""


def _write_etc(view: RootView, state: State, name: str, text: str) -> None:
    inside = f"/etc/{name}"
    view.ensure("/etc")
    target = view.target_for_write(inside)
    if target is None:  # /etc has no writable layer here: bind a generated file over it
        target = f"{state.base}/{name}"
    elif os.path.lexists(target) and not os.path.isfile(target):
        raise VenvrootError(f"cannot write {inside} in the environment's root: it is not a file")
    tmp = target + ".venvroot-tmp"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
