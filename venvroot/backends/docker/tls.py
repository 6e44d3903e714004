"""TLS to a tcp:// engine, as ``docker --tlsverify`` speaks it: ``ca.pem``, ``cert.pem``, ``key.pem``.

Imported only for a TLS engine (``ssl`` costs a shim ~10 ms). The stream drives an ``SSLObject``
over memory buffers instead of wrapping the socket, for two things the exec pump needs: a
half-close (stdin's end is sent as TLS close_notify while the program's output keeps coming, as
the docker CLI does it) and no plaintext left hidden in a buffer the pump's ``poll`` cannot see
(every ``recv`` decrypts all that arrived).
"""

from __future__ import annotations

import _socket
import os
import select
import ssl

from .address import DaemonUnreachableError, Target

_RAW = 262144
# One context and the last session per process: a shim makes three or four connections, and a
# resumed session saves each later one the certificate work of a full handshake.
_CONTEXTS: dict[tuple[str, bool], ssl.SSLContext] = {}
_SESSIONS: dict[tuple[str, bool, str], ssl.SSLSession] = {}


class TLSStream:
    def __init__(self, sock: _socket.socket, server: str, target: Target, display: str) -> None:
        self.sock = sock
        self.display = display
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._eof = False
        self._closed_write = False
        self._plain = b""  # decrypted before a half-close, not yet taken (see shutdown)
        self._unsent = b""  # encrypted, not yet taken by a non-blocking socket
        key = (target.tls_dir, target.verify)
        ctx = _CONTEXTS.get(key) or _CONTEXTS.setdefault(key, _context(target, display))
        self._key = (*key, display)
        self._obj = ctx.wrap_bio(
            self._in,
            self._out,
            server_hostname=server if target.verify else None,
            session=_SESSIONS.get(self._key),
        )
        try:
            self._handshake()
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise DaemonUnreachableError(
                f"the TLS certificate of the Docker daemon at {display} does not verify against "
                f"{os.path.join(target.tls_dir, 'ca.pem')} ({exc.verify_message}); point DOCKER_CERT_PATH "
                "(or the docker context) at the daemon's CA, or check the address"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise DaemonUnreachableError(
                f"TLS with the Docker daemon at {display} failed ({_why(exc)}): is it the daemon's TLS port, "
                f"and does it accept the client certificate in {target.tls_dir}?"
            ) from None

    def _handshake(self) -> None:
        while True:
            try:
                self._obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ConnectionResetError(
                        "the daemon closed the connection during the TLS handshake"
                    ) from None

    def _flush(self, block: bool = True) -> bool:
        """Send the encrypted bytes waiting; without ``block``, as many as the socket takes now.
        Return whether all went."""
        self._unsent += self._out.read()
        while self._unsent:
            try:
                self._unsent = self._unsent[self.sock.send(self._unsent) :]
            except BlockingIOError:
                if not block:
                    return False
                poller = select.poll()
                poller.register(self.sock.fileno(), select.POLLOUT)
                poller.poll()
        return True

    def _fill(self) -> bool:
        """Read what the socket has into the TLS object (blocking when the socket is); False at EOF."""
        data = self.sock.recv(_RAW)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    # -- the socket's interface, as the Engine API client and the exec pump use it --------------
    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def sendall(self, data: bytes) -> None:
        self._obj.write(data)
        self._flush()

    def send(self, data: bytes) -> int:
        """Take ``data`` whole once what was held before has gone (else ``BlockingIOError``, as a
        full socket would say); what the socket does not take now waits for the next send."""
        if not self._flush(block=False):
            raise BlockingIOError
        if data:
            self._obj.write(data)
            self._flush(block=False)
        return len(data)

    def wants_write(self) -> bool:
        """Whether encrypted bytes wait for the socket (the pump polls for POLLOUT then)."""
        return bool(self._unsent)

    def recv(self, size: int) -> bytes:
        """Every byte decrypted so far (up to ``size``); ``BlockingIOError`` on a non-blocking socket
        with nothing yet; b"" at the end."""
        got: list[bytes] = []
        if self._plain:
            got.append(self._plain[:size])
            self._plain = self._plain[size:]
            size -= len(got[0])
            if size <= 0 or self._plain:
                return got[0]
        while True:
            try:
                chunk = self._obj.read(size)
            except ssl.SSLWantReadError:
                if got:
                    return b"".join(got)
                if self._eof:
                    return b""
                if not self._fill():  # raises BlockingIOError when nothing arrived
                    self._eof = True
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b"".join(got)
            except ssl.SSLError as exc:
                if got:
                    return b"".join(got)
                raise ConnectionResetError(_why(exc)) from None
            if not chunk:
                return b"".join(got)
            got.append(chunk)
            size -= len(chunk)
            if size <= 0 or not (self._obj.pending() or self._in.pending):
                return b"".join(got)

    def buffered(self) -> bool:
        """Whether bytes wait here (not in the socket, where poll would see them)."""
        return bool(self._plain)

    def shutdown(self, how: int) -> None:
        """The end of our side (close_notify); the daemon's output keeps coming. Python's unwrap
        calls SSL_shutdown twice, and the second call reads - and throws away - records that have
        arrived: everything that can be decrypted is taken out first, so only an empty buffer is
        there to read. Records arriving later are read as before (TLS 1.3 allows the half-close)."""
        if self._closed_write:
            return
        self._closed_write = True
        taken = [self._plain]
        while True:
            try:
                chunk = self._obj.read(_RAW)
            except ssl.SSLError:  # want-read (all taken), or the end
                break
            if not chunk:
                break
            taken.append(chunk)
        self._plain = b"".join(taken)
        try:  # noqa: SIM105 - no contextlib on the hot path
            self._obj.unwrap()  # sends close_notify; the daemon's answer is read later, if ever
        except ssl.SSLError:
            pass
        self._flush(block=False)  # the rest goes with the next sends (wants_write)

    def close(self) -> None:
        session = self._obj.session
        if session is not None and session.has_ticket:
            _SESSIONS[self._key] = session
        self.sock.close()


def _context(target: Target, display: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca, cert, key = (os.path.join(target.tls_dir, n) for n in ("ca.pem", "cert.pem", "key.pem"))
    try:
        if target.verify:
            ctx.load_verify_locations(ca)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if os.path.exists(cert) or os.path.exists(key):
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise DaemonUnreachableError(
            f"cannot use the TLS files in {target.tls_dir} for the Docker daemon at {display} ({_why(exc)}); "
            "it needs ca.pem, cert.pem and key.pem (DOCKER_CERT_PATH or the docker context's TLS material)"
        ) from None
    return ctx


def _why(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
