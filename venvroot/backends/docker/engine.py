"""A small Docker Engine API client over the daemon's socket, standard library only.

This is on a shim's hot path, where every import counts: ``http.client`` and ``json`` together cost
~35 ms here and the docker SDK ~170 ms, so HTTP/1.1 and the little JSON the exec calls need are
spoken directly over ``_socket``. The management side uses the SDK instead.
"""

from __future__ import annotations

from ...errors import VenvrootError
from .transport import DEFAULT_HOST, DaemonUnreachableError, Target, connect, from_environ
from .transport import reason as _reason

__all__ = ["DEFAULT_HOST", "Connection", "DaemonUnreachableError", "EngineError", "Target", "use"]

_RECV = 262144
# The engine this process talks to: the env's own once ``use`` names it, else DOCKER_HOST's.
_TARGET: Target | None = None


class EngineError(VenvrootError):
    """The daemon answered with an error (``status`` is its HTTP status)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def use(target: Target | None) -> None:
    """Make ``target`` the engine of every later ``Connection()`` of this process."""
    global _TARGET
    _TARGET = target


def use_cfg(cfg) -> None:  # cfg: venvroot.backends.envconfig.EnvConfig
    """The engine recorded in an env's venvroot.cfg (``docker-host``...), whatever DOCKER_HOST says now."""
    host = cfg.get(CFG_HOST)
    if host:
        use(Target(host, cfg.get(CFG_TLS_DIR) or "", cfg.get_bool(CFG_TLS_VERIFY)))


def current() -> Target:
    return _TARGET or from_environ()


# Keys of venvroot.cfg naming the env's engine (written at create, read by every later call).
CFG_HOST = "docker-host"
CFG_TLS_DIR = "docker-tls-dir"
CFG_TLS_VERIFY = "docker-tls-verify"


class Connection:
    """One HTTP/1.1 connection to the daemon: keep-alive requests, or one upgraded stream."""

    def __init__(self, target: Target | None = None) -> None:
        self.sock, self.display = connect(target or current())
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _gone(self, why: str) -> DaemonUnreachableError:
        hangup = getattr(self.sock, "hangup", None)  # ssh: its own words say why
        if hangup is not None:
            return DaemonUnreachableError(hangup())
        return DaemonUnreachableError(f"the Docker daemon at {self.display} hung up: {why}")

    def _send(self, method: str, path: str, body: bytes | None, extra: str = "") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: venvroot\r\n{extra}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method == "POST":
            head += "Content-Length: 0\r\n"
        data = (head + "\r\n").encode("latin-1", "replace")
        try:
            self.sock.sendall(data + body if body else data)
        except OSError as exc:
            raise self._gone(_reason(exc)) from None

    def _head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            chunk = self._recv()
            if not chunk:
                raise self._gone("closed the connection")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise DaemonUnreachableError(f"{self.display} does not speak the Docker Engine API") from None
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return status, headers

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(_RECV)
        except OSError as exc:
            raise self._gone(_reason(exc)) from None

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self._recv()
            if not chunk:
                raise self._gone("closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", ""):
            out = b""
            while True:
                while b"\r\n" not in self.buf:
                    chunk = self._recv()
                    if not chunk:
                        raise self._gone("closed the connection")
                    self.buf += chunk
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self._read(2)
                    return out
                out += self._read(size)
                self._read(2)
        return self._read(int(headers.get("content-length", "0")))

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send one request; return (status, body). The connection stays usable."""
        self._send(method, path, body)
        status, headers = self._head()
        return status, self._body(headers) if status not in (204, 304) else b""

    def call(self, method: str, path: str, body: bytes | None = None, ok: tuple[int, ...] = (200,)) -> object:
        """A request whose status must be in ``ok``; return the decoded JSON answer (or None)."""
        status, data = self.request(method, path, body)
        if status not in ok:
            raise EngineError(error_message(data) or f"HTTP {status} for {method} {path}", status)
        return loads(data.decode("utf-8", "replace")) if data.strip() else None

    def upgrade(self, path: str, body: bytes) -> bytes:
        """POST ``path`` asking to take over the connection as a raw stream (exec start). Return the
        stream bytes that arrived with the answer; the socket is then the stream."""
        self._send("POST", path, body, "Connection: Upgrade\r\nUpgrade: tcp\r\n")
        status, headers = self._head()
        if status not in (101, 200):
            raise EngineError(error_message(self._body(headers)) or f"HTTP {status} for POST {path}", status)
        data, self.buf = self.buf, b""
        return data


def error_message(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            found = loads(text)
        except ValueError:
            return text
        if isinstance(found, dict) and isinstance(found.get("message"), str):
            return found["message"]
    return text


def quote_path(text: str) -> str:
    """Percent-encode a path segment or query value."""
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


# -- JSON: the subset the Engine API exchanges, without importing json (and re) ------------------

_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})


def dumps(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(dumps(str(k)) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode(value: object) -> bytes:
    """JSON bytes; text that came from undecodable bytes (surrogate escapes) goes out as those bytes."""
    return dumps(value).encode("utf-8", "surrogateescape")


def loads(text: str) -> object:
    value, end = _value(text, _skip(text, 0))
    if _skip(text, end) != len(text):
        raise ValueError("trailing data after JSON value")
    return value


def _skip(t: str, i: int) -> int:
    while i < len(t) and t[i] in " \t\r\n":
        i += 1
    return i


_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _string(t: str, i: int) -> tuple[str, int]:
    parts = []
    j = i + 1
    while True:
        end = t.find('"', j)
        if end < 0:
            raise ValueError("unterminated JSON string")
        bs = t.find("\\", j, end)
        if bs < 0:
            parts.append(t[j:end])
            return "".join(parts), end + 1
        parts.append(t[j:bs])
        esc = t[bs + 1]
        if esc == "u":
            code = int(t[bs + 2 : bs + 6], 16)
            j = bs + 6
            if 0xD800 <= code < 0xDC00 and t.startswith("\\u", j):
                low = int(t[j + 2 : j + 6], 16)
                if 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    j += 6
            parts.append(chr(code))
        else:
            parts.append(_SIMPLE[esc])
            j = bs + 2


def _value(t: str, i: int) -> tuple[object, int]:
    c = t[i]
    if c == '"':
        return _string(t, i)
    if c == "{":
        obj: dict[str, object] = {}
        i = _skip(t, i + 1)
        if t[i] == "}":
            return obj, i + 1
        while True:
            key, i = _string(t, _skip(t, i))
            i = _skip(t, i)
            if t[i] != ":":
                raise ValueError("expected ':' in JSON object")
            obj[key], i = _value(t, _skip(t, i + 1))
            i = _skip(t, i)
            if t[i] == "}":
                return obj, i + 1
            if t[i] != ",":
                raise ValueError("expected ',' in JSON object")
            i += 1
    if c == "[":
        arr: list[object] = []
        i = _skip(t, i + 1)
        if t[i] == "]":
            return arr, i + 1
        while True:
            item, i = _value(t, _skip(t, i))
            arr.append(item)
            i = _skip(t, i)
            if t[i] == "]":
                return arr, i + 1
            if t[i] != ",":
                raise ValueError("expected ',' in JSON array")
            i += 1
    for word, val in (("true", True), ("false", False), ("null", None)):
        if t.startswith(word, i):
            return val, i + len(word)
    j = i
    while j < len(t) and t[j] in "+-0123456789.eE":
        j += 1
    if j == i:
        raise ValueError(f"unexpected {c!r} in JSON")
    num = t[i:j]
    return (float(num) if any(x in num for x in ".eE") else int(num)), j
