"""``with Chroot(path):`` - pychroot's context manager, rebuilt on the explicit runner.

The caller's process forks; the child enters the root and runs the body of the ``with`` block; the
caller waits, skips the body (an exception raised at the body's first instruction, swallowed by
``__exit__``), then takes back the locals the body assigned and re-raises its exception. The child
leaves through ``os._exit`` straight from ``__exit__``, so the caller's ``except`` and ``finally``
blocks run once, in the caller.
"""

from __future__ import annotations

import os
import pickle
import sys
from types import FrameType, MappingProxyType
from typing import Any

from . import remote, runner
from .errors import ChrootError
from .mounts import DEFAULT_MOUNTPOINTS, from_mountpoints

_STORE_OPS = {name: None for name in ("STORE_NAME", "STORE_FAST", "STORE_GLOBAL", "STORE_DEREF")}


class _SkipBody(Exception):  # noqa: N818 - a control-flow signal, never seen by users
    pass


class Chroot:
    """Run the body of a ``with`` block inside ``path``.

    pychroot's interface: ``mountpoints`` maps ``"source[:dest]"`` to options (``recursive``,
    ``readonly``, ``create``, ``optional``) and adds to :attr:`default_mounts`; a key whose
    destination matches a default replaces it, and ``None`` as options removes it.
    ``default_mounts=None`` starts from no mounts at all. An FQDN ``hostname`` sets the domain name
    too; ``skip_chdir`` keeps the current directory. Keyword-only extras are passed to
    :func:`venvroot.ns.runner.make_spec` (uid, gid, pid, net, cwd); as in pychroot, ``pid`` is on.

    After the block, ``exit_status`` holds the child's status (0, 1 when the body raised, 128+N when
    it was killed by signal N). Picklable locals the body assigned are set in the caller's frame.
    """

    default_mounts = MappingProxyType({k: MappingProxyType(dict(v)) for k, v in DEFAULT_MOUNTPOINTS.items()})

    def __init__(
        self,
        path: str | os.PathLike[str],
        log: Any = None,
        mountpoints: Any = None,
        hostname: str | None = None,
        skip_chdir: bool = False,
        *,
        default_mounts: Any = runner.DEFAULT,
        **options: Any,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.log = log  # accepted for pychroot compatibility
        defaults = self.default_mounts if default_mounts is runner.DEFAULT else default_mounts
        self.mounts = from_mountpoints(mountpoints, defaults)
        self.hostname = hostname
        self.skip_chdir = skip_chdir
        options.setdefault("pid", True)  # pychroot's default: the body runs in a new PID namespace
        self.spec = runner.make_spec(
            self.path, mounts=self.mounts, hostname=hostname, skip_chdir=skip_chdir, **options
        )
        self.exit_status: int | None = None
        self.locals: dict[str, Any] = {}
        self._frame: FrameType | None = None
        self._before: dict[str, Any] = {}
        self._message: Any = None
        self._undo_skip: Any = None
        self._inside = False

    def __enter__(self) -> Chroot:
        if self._frame is not None:
            raise ChrootError("a Chroot cannot be entered twice at once")
        frame = sys._getframe(1)
        self._frame = frame
        self._before = dict(frame.f_locals)
        remote.preload(frame)
        status, message = runner.spawn(self.spec, None)
        if message is runner.IN_ROOT:
            self._inside = True
            return self
        self.exit_status = status
        self._message = message
        self._undo_skip = _skip_body(frame)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if self._inside:
            self._finish_inside(exc)  # never returns
        frame, self._frame = self._frame, None
        if self._undo_skip is not None:
            self._undo_skip()
            self._undo_skip = None
        if exc_type is not _SkipBody:
            if exc_type is None:
                raise ChrootError("the body of the with block ran outside the root (body skipping failed)")
            return False  # something failed in the caller itself
        message, self._message = self._message, None
        if not isinstance(message, tuple) or message[0] != b"R":
            raise ChrootError(
                f"the body inside {self.path} ended without a result (exit status {self.exit_status})"
            )
        names, exception = pickle.loads(message[1])
        self.locals = {name: pickle.loads(data) for name, data in names.items()}
        if frame is not None and self.locals:
            _set_locals(frame, self.locals)
        if exception is not None:
            raise remote.load_exception(*exception)
        return True

    def _finish_inside(self, exc: BaseException | None) -> None:
        """In the child, inside the root: send the assigned locals and the exception, then exit."""
        status = 0
        try:
            names: dict[str, bytes] = {}
            frame = self._frame
            if frame is not None:
                for name, value in frame.f_locals.items():
                    if value is self or (name in self._before and self._before[name] is value):
                        continue
                    try:
                        names[name] = pickle.dumps(value)
                    except Exception:
                        continue  # unpicklable values stay behind, as documented
            packed = None
            if exc is not None:
                status = 1
                packed = remote.pack_exception(exc)
            payload = pickle.dumps((names, packed))
        except BaseException as err:
            status = 1
            payload = pickle.dumps(({}, remote.pack_exception(err)))
        remote.finish(runner.report_fd(), payload, status)


def _skip_body(frame: FrameType) -> Any:
    """Make ``frame`` raise _SkipBody at the first instruction of the with block's body (after the
    ``as`` target is stored). Returns the function that undoes it."""
    code = frame.f_code
    # opcode: only inside a with block, not for every importer of venvroot.ns
    import opcode

    stores = {opcode.opmap[name] for name in _STORE_OPS if name in opcode.opmap}

    fired = False

    def at(offset: int) -> None:
        nonlocal fired
        if not fired and code.co_code[offset] not in stores:
            fired = True  # once: the with statement's own exception handler runs instructions too
            raise _SkipBody

    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:  # 3.12+: settrace no longer reaches an already running frame at once
        tool = next(t for t in (4, 3, 2, 1, 0, 5) if monitoring.get_tool(t) is None)
        monitoring.use_tool_id(tool, "venvroot.ns.Chroot")
        events = monitoring.events.INSTRUCTION

        def callback(code_: Any, offset: int) -> Any:
            if code_ is code and sys._getframe(1) is frame:
                at(offset)
            return None

        monitoring.register_callback(tool, events, callback)
        monitoring.set_local_events(tool, code, events)

        def undo() -> None:
            monitoring.set_local_events(tool, code, 0)
            monitoring.register_callback(tool, events, None)
            monitoring.free_tool_id(tool)

        return undo

    old_trace = sys.gettrace()
    old_local = frame.f_trace
    old_opcodes = frame.f_trace_opcodes

    def tracer(frame_: FrameType, event: str, arg: Any) -> Any:
        if event in ("opcode", "line"):
            at(frame_.f_lasti)
        return tracer

    sys.settrace(lambda *args: None)  # frame-local tracing only works while some trace is set
    frame.f_trace_opcodes = True
    frame.f_trace = tracer

    def undo_trace() -> None:
        sys.settrace(old_trace)
        frame.f_trace = old_local
        frame.f_trace_opcodes = old_opcodes

    return undo_trace


def _set_locals(frame: FrameType, values: dict[str, Any]) -> None:
    if frame.f_locals is frame.f_globals or sys.version_info >= (3, 13):
        for name, value in values.items():
            frame.f_locals[name] = value  # module level: the globals; 3.13+: a write-through proxy
        return
    frame.f_locals.update(values)
    # ctypes (~2 ms): only for a function's locals before Python 3.13
    import ctypes

    ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))
