"""A program in the container, driven through exec as if it were a local child process.

Standard library only (it is on a shim's hot path). What the docker CLI's ``exec`` does not do,
this does: signals sent to us reach the program (``docker exec`` drops them and leaves the program
running when the client dies), a missing and a non-executable command are told apart (127/126)
with a message instead of the runtime's error text on stdout, and the working directory is
entered by the program's own wrapper so that an invisible one gets a clear message.
"""

from __future__ import annotations

import _signal
import _socket
import fcntl
import os
import select

from .engine import Connection, EngineError, encode, quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .transport import Stream

# Runs every program: ``sh -c WRAPPER ENV_DIR CWD TTY_SIZE PROGRAM [ARG...]``. It sizes the tty
# (exec has no size until a resize call that can come after the program has looked), enters CWD,
# looks PROGRAM up on PATH as execvp would (first executable match wins, a non-executable match
# means 126), then replaces itself with PROGRAM, so the exec's pid is the program's.
WRAPPER = "\n".join(
    (
        'die() { printf "venvroot: %s\\n" "$2" >&2; exit "$1"; }',
        '[ -z "$2" ] || stty $2 2>/dev/null',
        "o=${OLDPWD-}",
        'cd "$1" 2>/dev/null || die 1 "cannot enter $1 inside the environment $0; cd into a mapped'
        ' directory (the project, or the host under /r)"',
        'if [ -n "$o" ]; then OLDPWD=$o; else unset OLDPWD; fi',
        "shift 2",
        "set -f",
        "case $1 in",
        "*/*) f=$1 ;;",
        "*) f= n=",
        "   IFS=:",
        "   for d in $PATH; do",
        '     if [ -f "${d:-.}/$1" ]; then',
        '       if [ -x "${d:-.}/$1" ]; then f=${d:-.}/$1; break; fi',
        "       n=${n:-${d:-.}/$1}",
        "     fi",
        "   done",
        "   unset IFS",
        "   f=${f:-$n} ;;",
        "esac",
        '[ -n "$f" ] && [ -e "$f" ] || die 127 "$1: command not found in $0"',
        '[ ! -d "$f" ] && [ -x "$f" ] || die 126 "$1: permission denied: not an executable file (in $0)"',
        "set +f",
        'exec "$@"',
    )
)

# Signals that reach the program; WINCH resizes the tty instead when there is one.
FORWARDED = (
    _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
    _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH,
)  # fmt: skip
# The docker default (ctrl-p,ctrl-q) would swallow ctrl-p, which shells use for history.
DETACH_KEYS = "ctrl-],ctrl-@"


def exec_body(
    argv: list[str], *, env_dir: str, cwd: str, env: list[str], user: str, tty: bool, stdin: bool = True
) -> bytes:
    size = terminal_size() if tty else None
    return encode(
        {
            "AttachStdin": stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": tty,
            "DetachKeys": DETACH_KEYS,
            "Env": env,
            "User": user,
            "Cmd": [
                "/bin/sh",
                "-c",
                WRAPPER,
                env_dir,
                cwd,
                f"rows {size[0]} cols {size[1]}" if size else "",
                *argv,
            ],
        }
    )


def terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of our terminal."""
    # termios (a shared library): only on a shim's path with a terminal
    import termios

    for fd in (1, 0, 2):
        try:
            packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        except OSError:
            continue
        rows, cols = int.from_bytes(packed[0:2], "little"), int.from_bytes(packed[2:4], "little")
        if rows and cols:
            return rows, cols
    return None


class RemoteProcess:
    """One exec: ``create()`` it, then ``run()`` pumps stdio until it ends and returns its status."""

    def __init__(self, container: str, body: bytes, tty: bool) -> None:
        self.container = container
        self.body = body
        self.tty = tty
        self.exec_id = ""
        self.pid = 0
        self.exit_code: int | None = None
        self.forwarded: set[int] = set()
        self._conn: Connection | None = None
        self._side: Connection | None = None  # for inspect/resize while the main one streams

    def create(self, conn: Connection) -> None:
        """Create the exec; EngineError with status 404 (no container) or 409 (not running)."""
        self._conn = conn
        found = conn.call("POST", f"/containers/{quote_path(self.container)}/exec", self.body, ok=(201,))
        self.exec_id = found["Id"]  # type: ignore[index]

    # -- the side connection ---------------------------------------------------------------
    def _side_call(
        self, method: str, path: str, body: bytes | None = None, ok: tuple[int, ...] = (200,)
    ) -> object:
        for attempt in (0, 1):
            try:
                if self._side is None:
                    self._side = Connection()
                return self._side.call(method, path, body, ok=ok)
            except EngineError:
                raise
            except Exception:
                if self._side is not None:
                    self._side.close()
                self._side = None
                if attempt:
                    raise
        return None

    def inspect(self) -> dict:
        found = self._side_call("GET", f"/exec/{self.exec_id}/json")
        assert isinstance(found, dict)
        if found.get("Pid"):
            self.pid = int(found["Pid"])
        if not found.get("Running") and found.get("ExitCode") is not None:
            self.exit_code = int(found["ExitCode"])
        return found

    def resize(self) -> None:
        size = terminal_size()
        if size:
            rows, cols = size
            try:  # noqa: SIM105 - contextlib would be one more import on the hot path
                self._side_call("POST", f"/exec/{self.exec_id}/resize?h={rows}&w={cols}", ok=(200, 201))
            except EngineError:
                pass  # the program may already be gone

    def signal(self, signum: int) -> None:
        """Deliver ``signum`` to the program (waiting for its pid if it is just starting)."""
        if signum == _signal.SIGWINCH and self.tty:
            self.resize()
            return
        self.forwarded.add(signum)
        for _ in range(200):
            if self.pid or self.exit_code is not None:
                break
            self.inspect()
            if not self.pid:
                select.poll().poll(5)
        if not self.pid or self.exit_code is not None:
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            self._signal_inside(signum)

    def _signal_inside(self, signum: int) -> None:
        # The program runs as another user (e.g. root): signal it from inside, as root, by its pid
        # in the container's pid namespace.
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as handle:
                nspid = next(line.split()[-1] for line in handle if line.startswith("NSpid:"))
        except (OSError, StopIteration):
            return
        body = encode({"User": "0", "Cmd": ["/bin/sh", "-c", 'kill -s "$0" "$1"', str(signum), nspid]})
        try:
            made = self._side_call("POST", f"/containers/{quote_path(self.container)}/exec", body, ok=(201,))
            self._side_call("POST", f"/exec/{made['Id']}/start", encode({"Detach": True}))  # type: ignore[index]
        except EngineError:
            pass  # it ended meanwhile

    # -- running ---------------------------------------------------------------------------
    def run(
        self, stdin_fd: int | None, out_fd: int = 1, err_fd: int = 2, wait_for_output: bool = True
    ) -> int:
        """Start the exec and relay stdio until the program ends; return its exit status.

        ``wait_for_output``: finish when the output ends (a shim: like a pipe, nothing is lost);
        otherwise finish soon after the program itself exits even if a background child keeps its
        output open (hooks that start daemons)."""
        conn = self._conn
        assert conn is not None
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        old_handlers = {s: _signal.signal(s, _note) for s in FORWARDED}
        try:
            data = conn.upgrade(f"/exec/{self.exec_id}/start", encode({"Detach": False, "Tty": self.tty}))
            if self.tty:
                self.resize()
            return self._pump(conn, data, stdin_fd, out_fd, err_fd, wake_r, wait_for_output)
        finally:
            for s, handler in old_handlers.items():
                _signal.signal(s, handler)
            _signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            conn.close()
            if self._side is not None:
                self._side.close()

    def _pump(
        self, conn: Connection, data: bytes, stdin_fd: int | None, out_fd: int, err_fd: int,
        wake_r: int, wait_for_output: bool,
    ) -> int:  # fmt: skip
        sock = conn.sock
        sock.setblocking(False)
        sfd = sock.fileno()
        buffered = getattr(sock, "buffered", None)  # TLS: bytes decrypted already, which poll cannot see
        wants_write = getattr(sock, "wants_write", None)  # TLS: records encrypted, not yet sent
        out = _Output(self.tty, out_fd, err_fd)
        pending = b""  # stdin bytes read but not yet sent
        stdin_open = stdin_fd is not None
        if not stdin_open:
            _shutdown(sock)
        quiet_polls = 0  # polls without output since the program exited
        try:
            if data:
                out.feed(data)
            while True:
                poller = select.poll()
                poller.register(wake_r, select.POLLIN)
                flushing = pending or (wants_write is not None and wants_write())
                poller.register(sfd, select.POLLIN | (select.POLLOUT if flushing else 0))
                if stdin_fd is not None and stdin_open and not pending:
                    poller.register(stdin_fd, select.POLLIN)
                timeout = 100 if self.exit_code is not None or not wait_for_output else 1000
                events = (
                    [(sfd, select.POLLIN)] if buffered is not None and buffered() else poller.poll(timeout)
                )
                if not events:
                    if self.exit_code is None:
                        self.inspect()
                    else:
                        quiet_polls += 1
                        if quiet_polls >= (10 if wait_for_output else 2):
                            # It exited and a background child holds the output: stop relaying.
                            return self.exit_code
                    continue
                for fd, ev in events:
                    if fd == wake_r:
                        self._signals(wake_r)
                    elif fd == sfd:
                        if ev & select.POLLOUT and (pending or wants_write is not None):
                            try:  # (TLS: a send flushes what the stream holds first, b"" too)
                                pending = pending[sock.send(pending) :]
                            except BlockingIOError:
                                pass
                            except OSError:
                                pending, stdin_open = b"", False
                            if not pending and not stdin_open:
                                _shutdown(sock)
                        if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                            try:
                                chunk = sock.recv(262144)
                            except BlockingIOError:
                                continue
                            except OSError:
                                chunk = b""
                            if not chunk:
                                return self._finish()
                            quiet_polls = 0
                            out.feed(chunk)
                    elif fd == stdin_fd:
                        try:
                            chunk = os.read(stdin_fd, 262144)
                        except OSError:
                            chunk = b""
                        if chunk:
                            pending = chunk
                        else:
                            stdin_open = False
                            _shutdown(sock)
        except BrokenPipeError:
            # Our stdout is gone (e.g. `| head`): the program gets what a local one would.
            self.signal(13)  # SIGPIPE
            return 128 + 13

    def _signals(self, wake_r: int) -> None:
        try:
            got = os.read(wake_r, 64)
        except BlockingIOError:
            return
        for signum in got:
            self.signal(signum)

    def _finish(self) -> int:
        """The output ended: wait for the program's exit status."""
        delay = 1
        while self.exit_code is None:
            self.inspect()
            if self.exit_code is None:
                select.poll().poll(delay)
                delay = min(delay * 2, 50)
        return self.exit_code


class _Output:
    """Writes the exec's stream to our stdout/stderr: raw with a tty, demultiplexed without."""

    def __init__(self, tty: bool, out_fd: int, err_fd: int) -> None:
        self.tty = tty
        self.fds = {1: out_fd, 2: err_fd, 0: out_fd}
        self.buf = b""

    def feed(self, chunk: bytes) -> None:
        if self.tty:
            _write(self.fds[1], chunk)
            return
        buf = self.buf + chunk if self.buf else chunk
        pos = 0
        end = len(buf)
        while end - pos >= 8:
            size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if end - pos - 8 < size:
                break
            _write(self.fds.get(buf[pos], self.fds[1]), buf[pos + 8 : pos + 8 + size])
            pos += 8 + size
        self.buf = buf[pos:]


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _shutdown(sock: Stream) -> None:
    try:  # noqa: SIM105 - contextlib would be one more import on the hot path
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def _note(signum: int, frame: object) -> None:
    """Signal handler: the wakeup fd carries the signal number to the pump loop."""
