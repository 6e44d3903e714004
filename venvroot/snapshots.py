"""Snapshots, automatic snapshots and freezing, the same for every backend.

A snapshot lives in ``<env>/.venvroot/snapshots/<id>/``:

* ``meta.json``: its name, id, time, the program whose call took it (automatic snapshots) and the
  backend's facts (the docker backend's image, for one);
* ``python/``: the env's Python packages - everything in the env directory but the env's own
  files (``bin/`` with its shims, ``venvroot.cfg``, venvroot's state), plus what the backend says
  belongs to them (the docker backend's inner ``bin``). Files unchanged since the previous snapshot
  are hard links to its copy;
* what the backend keeps of the root itself (the ``ns`` backend's writable layer, in ``root/``).

Beside them: ``state.json`` (which snapshot the env is at, a counter for generated names),
``frozen`` (the id of the frozen base, when frozen) and ``lock`` (serialises all changes).

The top of this module imports only ``os``: session code and the shims' automatic-snapshot check
import it, and a shim pays for every import.
"""

from __future__ import annotations

import os

from .errors import UsageError, VenvrootError
from .util.atomicfile import write_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from .backends.envconfig import EnvConfig
    from .env.environment import Environment

STORE = os.path.join(".venvroot", "snapshots")
FROZEN_FILE = "frozen"
# The env directory's own entries: never part of a snapshot's Python state.
OWN_PATHS = ("bin", ".venvroot", "venvroot.cfg", ".gitignore")
# venvroot.cfg keys of automatic snapshots: ``auto-snapshot.PROGRAM = REGEX`` and
# ``auto-snapshot-name.PROGRAM = TEMPLATE``.
AUTO_KEY = "auto-snapshot."
AUTO_NAME_KEY = "auto-snapshot-name."
# <store>/auto/PROGRAM exists while PROGRAM has a rule, <store>/auto while any program has one: a
# backend's fast way into the env that skips Python (and so the rules) must not be taken then.
AUTO_DIR = "auto"
DEFAULT_NAME = "snap-{n}"
FREEZE_NAME = "frozen-{n}"
DEFAULT_AUTO_NAME = "{program}-{id}"
PLACEHOLDERS = ("id", "n", "program", "date", "time")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+@")


def store_dir(env_dir: str) -> str:
    return os.path.join(env_dir, STORE)


def frozen_id(env_dir: str) -> str | None:
    """The frozen base's id, None when the env is not frozen (one ``open``: sessions ask it)."""
    try:
        with open(os.path.join(store_dir(env_dir), FROZEN_FILE), encoding="ascii") as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def frozen_dir(env_dir: str) -> str | None:
    """The frozen base's directory (``root/`` in it is the ns backend's frozen layer)."""
    sid = frozen_id(env_dir)
    return os.path.join(store_dir(env_dir), sid) if sid else None


def python_paths(
    env_dir: str, snapshot_dir: str | None, own: tuple[str, ...], extra: tuple[str, ...]
) -> list[str]:
    """The env's Python state, as paths relative to the env: the env's top-level entries (and the
    snapshot's, when restoring one) minus the env's own, the entries of ``bin/`` that are not
    venvroot's (a venv's console scripts, where the backend keeps them beside the shims), plus the
    backend's ``extra``."""
    tops = [env_dir] + ([os.path.join(snapshot_dir, "python")] if snapshot_dir else [])
    names: set[str] = set()
    programs: set[str] = set()
    for top in tops:
        if os.path.isdir(top):
            names.update(os.listdir(top))
        if os.path.isdir(os.path.join(top, "bin")):
            programs.update(os.listdir(os.path.join(top, "bin")))
    skip = set(OWN_PATHS) | set(own)
    found = sorted(n for n in names if n not in skip)
    found += [f"bin/{n}" for n in sorted(programs) if not _venvroot_owned(env_dir, n)]
    return found + [p for p in extra if p not in names]


def _venvroot_owned(env_dir: str, name: str) -> bool:
    """Whether ``<env>/bin/NAME`` is venvroot's (a shim, bin/destroy, the session hook, an
    activate script, a file being written), not the env's Python's."""
    if name.startswith(("activate", ".")) or name == "destroy":
        return True
    import stat

    path = os.path.join(env_dir, "bin", name)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            head = handle.read(200).split(b"\n")
    except FileNotFoundError:
        return False
    return len(head) > 1 and head[1].startswith(b"# venvroot")


def restore_python(env_dir: str, snapshot_dir: str, own: tuple[str, ...], extra: tuple[str, ...]) -> int:
    """Make the env's Python state exactly the snapshot's; return how many entries changed."""
    from .util import filetree

    changed = 0
    for rel in python_paths(env_dir, snapshot_dir, own, extra):
        changed += filetree.sync(os.path.join(snapshot_dir, "python", rel), os.path.join(env_dir, rel))
    return changed


def discard_python_changes(env_dir: str, own: tuple[str, ...], extra: tuple[str, ...]) -> int:
    """A frozen env's session starts or ends: its Python packages go back to the frozen base."""
    base = frozen_dir(env_dir)
    if base is None or not os.path.isdir(base):
        return 0
    return restore_python(env_dir, base, own, extra)


def remove_all(env_dir: str) -> None:
    """``destroy``: the snapshots go (copies of a root may hold directories their mode closes)."""
    from .util import filetree

    filetree.remove(store_dir(env_dir))


# -- names -------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not name or len(name) > 100 or not set(name) <= _NAME_CHARS or name[0] in ".-":
        raise UsageError(
            f"bad snapshot name {name!r}: use up to 100 letters, digits and . _ - + @, "
            "not starting with . or -"
        )
    return name


def render_name(template: str, *, sid: str, n: int, program: str, when: float) -> str:
    import time

    stamp = time.localtime(when)
    values = {
        "id": sid,
        "n": str(n),
        "program": program,
        "date": time.strftime("%Y%m%d", stamp),
        "time": time.strftime("%H%M%S", stamp),
    }
    try:
        return template.format_map(values)
    except KeyError as exc:
        raise UsageError(
            f"name template {template!r}: unknown placeholder {{{exc.args[0]}}}; use "
            + " ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        ) from None
    except (ValueError, IndexError, AttributeError) as exc:
        raise UsageError(
            f"name template {template!r} is malformed ({exc}); write placeholders as {{id}}"
        ) from None


def check_template(template: str) -> str:
    check_name(render_name(template, sid="0123abcd", n=1, program="prog", when=0.0))
    return template


# -- the automatic snapshot, on a shim's path ---------------------------------------------------------


def auto_snapshot(cfg: EnvConfig, program: str, args: list[str]) -> None:
    """Called by a shim when the env has rules: take a snapshot when the program has one and its
    arguments match (``re.search`` in the arguments joined by spaces). A script of the env's own
    ``bin`` that reached the interpreter's shim through its ``#!`` line (``python <env>/bin/pip
    install ...``) counts as that script. A frozen env takes none (its changes do not last
    anyway). A failed snapshot stops the program from running."""
    env_dir = cfg.env_dir
    name = program.rpartition("/")[2]
    if args and args[0].startswith(env_dir + "/bin/") and "/" not in args[0][len(env_dir) + 5 :]:
        name, args = args[0][len(env_dir) + 5 :], args[1:]
    pattern = cfg.get(AUTO_KEY + name)
    if pattern is None:
        return
    import re

    if not re.search(pattern, " ".join(args)) or frozen_id(env_dir):
        return
    import site
    import sys

    site.main()  # the management side may need site-packages (the docker SDK)
    from .env.environment import Environment

    template = cfg.get(AUTO_NAME_KEY + name) or DEFAULT_AUTO_NAME
    try:
        snap = Snapshots(Environment.open(env_dir)).create(program=name, template=template)
    except VenvrootError as exc:
        raise VenvrootError(
            f"automatic snapshot before `{name} {' '.join(args)}` failed, so it did not run: {exc}"
        ) from None
    sys.stderr.write(
        f"venvroot: snapshot {snap.name} taken (undo with: venvroot snapshot restore {env_dir} {snap.name})\n"
    )


# -- snapshots -----------------------------------------------------------------------------------------


class Snapshot:
    __slots__ = ("created", "facts", "id", "name", "path", "program")

    def __init__(
        self, sid: str, name: str, created: float, program: str | None, facts: dict[str, str], path: str
    ) -> None:
        self.id = sid
        self.name = name
        self.created = created
        self.program = program
        self.facts = facts
        self.path = path

    @classmethod
    def load(cls, path: str) -> Snapshot | None:
        import json

        try:
            with open(os.path.join(path, "meta.json"), encoding="utf-8") as handle:
                meta = json.load(handle)
            return cls(
                meta["id"],
                meta["name"],
                float(meta["created"]),
                meta.get("program"),
                dict(meta.get("facts") or {}),
                path,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # incomplete or foreign: not a snapshot

    def meta(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "program": self.program,
            "facts": self.facts,
        }


class Snapshots:
    """The snapshots of one environment."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.env_dir = env.dir
        self.dir = store_dir(self.env_dir)

    @property
    def _backend(self):  # a Backend (annotating it would import the module)
        return self.env.backend

    def _paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        backend = self._backend
        return tuple(getattr(backend, "own_paths", ())), tuple(getattr(backend, "python_extra_paths", ()))

    # -- reading ---------------------------------------------------------------------------------
    def all(self) -> list[Snapshot]:
        """Oldest first."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = [Snapshot.load(os.path.join(self.dir, n)) for n in names if not n.startswith(".")]
        snaps = [s for s in found if s is not None]
        return sorted(snaps, key=lambda s: (s.created, s.id))

    def find(self, ref: str) -> Snapshot:
        """By name, else by id, else by a unique id prefix (4 characters at least)."""
        snaps = self.all()
        for snap in snaps:
            if snap.name == ref:
                return snap
        for snap in snaps:
            if snap.id == ref:
                return snap
        matches = [s for s in snaps if len(ref) >= 4 and s.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise UsageError(
            f"no snapshot named {ref!r} (or with that id) in {self.env_dir}; "
            f"`venvroot snapshot list {self.env_dir}` shows them"
        )

    def _state(self) -> dict:
        import json

        try:
            with open(os.path.join(self.dir, "state.json"), encoding="utf-8") as handle:
                state = json.load(handle)
            return state if isinstance(state, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def _save_state(self, state: dict) -> None:
        import json

        write_text(os.path.join(self.dir, "state.json"), json.dumps(state, indent=1) + "\n")

    def current(self) -> Snapshot | None:
        """The snapshot the env was last taken as or restored from (None after changes were reset)."""
        sid = self._state().get("current")
        return next((s for s in self.all() if s.id == sid), None)

    def frozen(self) -> Snapshot | None:
        sid = frozen_id(self.env_dir)
        return next((s for s in self.all() if s.id == sid), None) if sid else None

    def sizes(self) -> dict[str, int]:
        """Bytes each snapshot adds on disk: its files not shared with an older snapshot, plus what
        the backend keeps outside (e.g. an image layer)."""
        from .util import filetree

        seen: set[tuple[int, int]] = set()
        return {
            s.id: filetree.usage(s.path, seen) + int(s.facts.get("root-size", "0") or 0) for s in self.all()
        }

    # -- changing ----------------------------------------------------------------------------------
    def _lock(self):  # a context manager
        import contextlib
        import fcntl

        @contextlib.contextmanager
        def locked() -> Iterator[None]:
            os.makedirs(self.dir, exist_ok=True)
            fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

        return locked()

    def _call(self, method: str, *args: object) -> object:
        try:
            return getattr(self._backend, method)(*args)
        except NotImplementedError:
            raise VenvrootError(
                f"snapshots are not available with the {self.env.settings.backend} backend yet"
            ) from None

    def _refuse_if_frozen(self, doing: str) -> None:
        sid = frozen_id(self.env_dir)
        if sid:
            base = next((s.name for s in self.all() if s.id == sid), sid)
            raise VenvrootError(
                f"{self.env_dir} is frozen (at snapshot {base}): {doing} is refused; "
                f"`venvroot unfreeze {self.env_dir}` first"
            )

    def create(
        self, name: str | None = None, *, program: str | None = None, template: str | None = None
    ) -> Snapshot:
        """Take a snapshot. ``name`` must be new; without one, ``template`` (or ``snap-{n}``) makes one,
        made unique with a ``.2``, ``.3``... suffix."""
        from .util import progress

        with self._lock():
            self._refuse_if_frozen("taking a snapshot")
            with progress.Progress(f"snapshot of {os.path.basename(self.env_dir)}"):
                return self._create(name, program, template or DEFAULT_NAME)

    def _create(self, name: str | None, program: str | None, template: str) -> Snapshot:
        import errno
        import json
        import time

        from .util import filetree

        snaps = self.all()
        names = {s.name for s in snaps}
        state = self._state()
        n = int(state.get("counter", 0)) + 1
        sid = _new_id({s.id for s in snaps})
        now = time.time()
        if name is not None:
            check_name(name)
            if name in names:
                raise UsageError(
                    f"a snapshot named {name!r} exists in {self.env_dir}; "
                    "choose another name or delete that snapshot first"
                )
        else:
            name = base = check_name(render_name(template, sid=sid, n=n, program=program or "", when=now))
            k = 2
            while name in names:
                name, k = f"{base}.{k}", k + 1
        current = next((s for s in snaps if s.id == state.get("current")), None)
        previous = current or (snaps[-1] if snaps else None)
        tmp = os.path.join(self.dir, f".new-{sid}")
        final = os.path.join(self.dir, sid)
        facts: dict[str, str] | None = None
        own, extra = self._paths()
        try:
            os.makedirs(os.path.join(tmp, "python"))
            for rel in python_paths(self.env_dir, None, own, extra):
                src = os.path.join(self.env_dir, rel)
                if not os.path.lexists(src):
                    continue
                dst = os.path.join(tmp, "python", rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                link_dest = os.path.join(previous.path, "python", rel) if previous else None
                filetree.copy(src, dst, link_dest)
            # The root last: the docker backend may re-base an idle container on the new image,
            # which a failure after it could not take back.
            found = self._call("snapshot_root", tmp, sid, previous.path if previous else None)
            facts = dict(found or {})  # type: ignore[call-overload]
            snap = Snapshot(sid, name, now, program, facts, final)
            write_text(os.path.join(tmp, "meta.json"), json.dumps(snap.meta(), indent=1) + "\n")
            state.update(counter=n, current=sid)
            self._save_state(state)
            os.rename(tmp, final)
        except BaseException as exc:
            if facts is not None:
                try:
                    self._backend.drop_root_snapshot(tmp, facts)
                except Exception as drop_exc:  # the first error matters more; still say what is left
                    import sys

                    print(
                        f"venvroot: removing the partial snapshot's root also failed: {drop_exc}",
                        file=sys.stderr,
                    )
            filetree.remove(tmp)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise VenvrootError(
                    f"no space left on the disk for a snapshot of {self.env_dir} "
                    f"({exc.filename or self.dir}): "
                    "the partial snapshot was removed and the env is unchanged; free some space "
                    "(`venvroot snapshot delete` old snapshots) and try again"
                ) from None
            if isinstance(exc, OSError):
                raise VenvrootError(
                    f"cannot take a snapshot of {self.env_dir}: {exc.strerror or exc} ({exc.filename}); "
                    "the partial snapshot was removed"
                ) from None
            raise
        return snap

    def restore(self, ref: str) -> Snapshot:
        """Bring back the root and the Python packages exactly as ``ref`` captured them. What runs in
        the env is stopped first, as by ``reset``."""
        import errno

        from .util import progress

        with self._lock():
            snap = self.find(ref)
            self._refuse_if_frozen(f"restoring {snap.name}")
            before = self._offered()
            with progress.Progress(f"restoring {snap.name}"):
                self._call("restore_root", snap.path, snap.facts)
                own, extra = self._paths()
                try:
                    restore_python(self.env_dir, snap.path, own, extra)
                except OSError as exc:
                    why = (
                        "no space left on the disk"
                        if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                        else exc.strerror
                    )
                    raise VenvrootError(
                        f"restoring the Python packages of {snap.name} failed ({why}: {exc.filename}); "
                        f"they are partly restored: fix that and restore {snap.name} again"
                    ) from None
            state = self._state()
            state["current"] = snap.id
            self._save_state(state)
            self.resync_shims(before)
            return snap

    def delete(self, ref: str) -> Snapshot:
        from .util import filetree

        with self._lock():
            snap = self.find(ref)
            if frozen_id(self.env_dir) == snap.id:
                raise VenvrootError(
                    f"{snap.name} is the frozen base of {self.env_dir} and cannot be deleted; "
                    f"`venvroot unfreeze {self.env_dir}` first"
                )
            self._call("drop_root_snapshot", snap.path, snap.facts)
            trash = os.path.join(self.dir, f".delete-{snap.id}")
            os.rename(snap.path, trash)  # gone from the list at once, even if removal is cut short
            filetree.remove(trash)
            state = self._state()
            if state.get("current") == snap.id:
                state["current"] = None
                self._save_state(state)
            return snap

    def freeze(self, name: str | None = None) -> Snapshot:
        """Take a snapshot and make it the base every session starts from."""
        with self._lock():
            if frozen_id(self.env_dir):
                self._refuse_if_frozen("freezing again")
            snap = self._create(name, None, FREEZE_NAME)
            self._call("freeze_root", snap.path, snap.facts)
            write_text(os.path.join(self.dir, FROZEN_FILE), snap.id + "\n")
            return snap

    def unfreeze(self) -> Snapshot:
        """Changes last again; the env stays at its frozen state (the base stays as a snapshot)."""
        with self._lock():
            snap = self.frozen()
            if snap is None:
                raise UsageError(f"{self.env_dir} is not frozen")
            self._call("unfreeze_root", snap.path, snap.facts)
            os.unlink(os.path.join(self.dir, FROZEN_FILE))
            return snap

    def reset(self) -> None:
        """``venvroot reset``: the root back to its state right after creation; when frozen, the
        root and the Python packages back to the frozen base."""
        if not os.path.isdir(self.dir):
            self.env.reset()
            return
        with self._lock():
            before = self._offered()
            base = self.frozen()
            if base is None:
                self.env.reset()
            else:
                self._call("restore_root", base.path, base.facts)
                own, extra = self._paths()
                restore_python(self.env_dir, base.path, own, extra)
            state = self._state()
            state["current"] = base.id if base else None
            self._save_state(state)
            self.resync_shims(before)

    def _offered(self) -> set[str]:
        return set(self._backend.programs_to_link())

    def resync_shims(self, before: set[str]) -> None:
        """Shims follow the env's programs: those of programs the restore removed go, new ones come."""
        from .shims import writer

        after = self._offered()
        kept = {writer.shim_name(p) for p in [*self.env.settings.link, *after]}
        for program in before - after:
            name = writer.shim_name(program)
            shim = f"{self.env.dir}/bin/{name}"
            if name not in kept and writer.is_shim(shim):
                os.unlink(shim)
        self.env.sync()

    # -- automatic snapshots ---------------------------------------------------------------------
    def rules(self) -> dict[str, tuple[str, str]]:
        """PROGRAM -> (pattern, name template), from venvroot.cfg."""
        extra = self.env.settings.extra
        return {
            key[len(AUTO_KEY) :]: (value, extra.get(AUTO_NAME_KEY + key[len(AUTO_KEY) :], DEFAULT_AUTO_NAME))
            for key, value in sorted(extra.items())
            if key.startswith(AUTO_KEY)
        }

    def configure(self, program: str, pattern: str | None, template: str | None, off: bool = False) -> str:
        import re

        name = _program_name(program)
        from .backends.settings import Settings

        settings = Settings.from_cfg(self.env.dir)  # fresh: keep whatever changed meanwhile
        if off:
            if settings.extra.pop(AUTO_KEY + name, None) is None:
                raise UsageError(f"no automatic snapshot is configured for {name} in {self.env_dir}")
            settings.extra.pop(AUTO_NAME_KEY + name, None)
        else:
            if not pattern:
                raise UsageError("give --pattern REGEX (searched in the program's arguments), or --off")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise UsageError(f"--pattern {pattern!r} is not a valid regular expression: {exc}") from None
            settings.extra[AUTO_KEY + name] = pattern
            settings.extra[AUTO_NAME_KEY + name] = check_template(template or DEFAULT_AUTO_NAME)
        settings.save()
        self.env.settings.extra = settings.extra
        # A marker per rule, for shims whose backend has a fast way in that skips Python: with a
        # marker there, they take the Python path, which applies the rule.
        marker = os.path.join(self.dir, AUTO_DIR, name)
        if off:
            if os.path.exists(marker):
                os.unlink(marker)
            if os.path.isdir(os.path.dirname(marker)) and not os.listdir(os.path.dirname(marker)):
                os.rmdir(os.path.dirname(marker))  # no rule left: fast ways in are fine again
        else:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            open(marker, "w").close()
        return name

    def info(self) -> list[tuple[str, str]]:
        snaps = self.all()
        frozen = self.frozen()
        current = self.current()
        rows = [("frozen", f"yes (base: snapshot {frozen.name})" if frozen else "no")]
        if snaps:
            rows.append(("snapshots", f"{len(snaps)}" + (f" (current: {current.name})" if current else "")))
        rules = self.rules()
        if rules:
            rows.append(("auto-snapshot", "; ".join(f"{p} /{pat}/ -> {t}" for p, (pat, t) in rules.items())))
        return rows


def _program_name(program: str) -> str:
    name = program.rstrip("/").rpartition("/")[2]
    if not name or name in (".", "..") or any(c.isspace() or c == "=" or ord(c) < 32 for c in name):
        raise UsageError(f"bad program {program!r}: give the name of a shim in the env's bin/")
    return name


def _new_id(taken: set[str]) -> str:
    while True:
        sid = os.urandom(4).hex()
        if sid not in taken:
            return sid


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
