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


class TLSStream:
    def __init__(self, sock: _socket.socket, server: str, target: Target, display: str) -> None:
        self.sock = sock
        self.display = display
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._eof = False
        self._closed_write = False
        ctx = _context(target, display)
        self._obj = ctx.wrap_bio(self._in, self._out, server_hostname=server if target.verify else None)
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

    def _flush(self) -> None:
        data = self._out.read()
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                select.poll().poll(10)

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
        self.sendall(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        """Every byte decrypted so far (up to ``size``); ``BlockingIOError`` on a non-blocking socket
        with nothing yet; b"" at the end."""
        got: list[bytes] = []
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

    def shutdown(self, how: int) -> None:
        """The end of our side (close_notify); the daemon's output keeps coming."""
        if self._closed_write:
            return
        self._closed_write = True
        try:  # noqa: SIM105 - no contextlib on the hot path
            self._obj.unwrap()  # sends close_notify; the daemon's answer is read later, if ever
        except ssl.SSLError:
            pass
        self._flush()

    def close(self) -> None:
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
