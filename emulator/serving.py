"""How the registry is served: the one place that knows which HTTP server runs the WSGI app.

The server is this module's own: a threaded HTTP/1.1 server (one thread per connection, as Werkzeug's and
Go's are) on :mod:`socketserver`, with keep-alive, ``sendfile(2)`` for blobs and a request parser that does
the least work it can. It replaced Werkzeug's development server after the candidates were measured behind
the same app (manifest GET, filesystem storage, ``wrk -t2 -c32``, on 2 cores shared with wrk):

===============================  ===========  ========  ==============================================
server                           requests/s   p99       what it cannot do
===============================  ===========  ========  ==============================================
Werkzeug threaded (before)       1.0k         47 ms     keep-alive: it closes every connection
cheroot, 32 threads              2.2k         300 ms    (its p99)
granian, 1 worker, 4 threads     2.6k         20 ms     TLS 1.0/1.1, cipher suites, several client-CA
                                                        files, the Let's Encrypt SNI callback; its
                                                        worker is a second process
this module                      4.5k         17 ms     -
docker-registry 2.8.2            1.9k         70 ms     (the peer, same run as this module)
===============================  ===========  ========  ==============================================

(The first three rows were measured while planning; the last two come from one ``python -m benchmarks``
run, which interleaves the two servers; see the README's performance section.) Granian was the fastest
third-party server on plain HTTP but cannot honour ``http.tls`` as distribution does: the minimum version
tls1.0/1.1, cipher suites, one file per client CA and the SNI callback that picks the current ACME
certificate all need Python's :class:`ssl.SSLContext`; and its worker process would slow the start and
hold a second copy of ``inmemory`` storage. One server for every configuration was preferred over a
split: this one takes the configured context as it is (the handshake runs in the connection's thread),
serves in-memory storage from one process, starts in well under a millisecond and runs in a thread for
tests (:class:`BackgroundServer`).

What makes it fast:

- Keep-alive (HTTP/1.1, and HTTP/1.0 clients that ask): one accept and one thread per client, not per
  request. A request body the app left unread is drained so that the connection stays usable.
- Request lines and headers are read from one buffered reader; the environ is a per-connection template
  plus what differs per request; a small response leaves with its headers in one ``send``. Sockets are
  blocking, with the idle timeout in the kernel (``SO_RCVTIMEO``), so no ``poll`` precedes each call.
- A blob handed over through ``wsgi.file_wrapper`` goes out with ``sendfile(2)`` on plain connections (no
  copy through Python; byte ranges too); over TLS, in 1 MiB reads. Request bodies are read straight from
  the socket in the sizes the app asks for.
- Turns (see :class:`_Server`): on local storage, connections run the app one at a time instead of
  fighting for the interpreter lock, which keeps the p99 latency under load low.
- Waiting connections are all accepted at once and their threads started without waiting for them:
  under load, TLS clients that dial spare connections (Go's) otherwise fill the backlog.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import selectors
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import typing as t
from urllib.parse import unquote_to_bytes

if t.TYPE_CHECKING:
    import ssl

    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("emulator.serving")

#: How long a client may take over its TLS handshake before its connection is dropped.
HANDSHAKE_TIMEOUT = 10.0
#: How long a connection may stay silent (between requests, or in the middle of one) before it is closed.
IDLE_TIMEOUT = 300.0
_IDLE_TIMEVAL = struct.pack("ll", int(IDLE_TIMEOUT), 0)
#: The longest request line or header line accepted, and how many header lines.
MAX_LINE = 65536
MAX_HEADERS = 128
#: A request body the app did not read is drained (to keep the connection) up to this much.
DRAIN_LIMIT = 1 << 30
#: How many waiting connections are accepted in one go.
ACCEPT_BATCH = 256
#: Buffer of the reader a connection reads requests from; bodies larger than this bypass it.
READ_BUFFER = 1 << 16
#: Reads from a blob file when ``sendfile`` cannot be used (TLS).
FILE_BUFFER = 1 << 20
#: Responses whose first chunk is at most this large leave with their headers in one ``send``.
COALESCE_LIMIT = 1 << 16

_REASONS = {
    400: "Bad Request",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NO_BODY_STATUS = frozenset({204, 304})


class _Date:
    """The ``Date`` header line, formatted once a second."""

    second = -1
    line = ""

    @classmethod
    def header(cls) -> str:
        now = int(time.time())
        if now != cls.second:
            tm = time.gmtime(now)
            cls.line = (
                f"Date: {_WEEKDAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTHS[tm.tm_mon - 1]} {tm.tm_year} "
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT\r\n"
            )
            cls.second = now
        return cls.line


def _close_after_alert(sock: ssl.SSLSocket) -> None:
    """Let the alert of a refused handshake reach the client before the socket closes.

    A TLS 1.3 client sends its request right after its Finished message; closing a socket with that data
    unread makes the kernel answer with a reset, which can destroy the alert before the client reads it
    (the client then reports "connection reset" instead of, say, "certificate required").
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)  # also drops the TLS layer: what follows reads raw bytes
        sock.settimeout(1.0)
        for _ in range(16):
            if not sock.recv(READ_BUFFER):
                break


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _client_disconnected() -> Exception:
    # Werkzeug's own "client went away while sending the body" error, which the app answers with 400.
    from werkzeug.exceptions import ClientDisconnected

    return ClientDisconnected()


class _FileWrapper:
    """``wsgi.file_wrapper``: lets the server send a file with ``sendfile`` instead of iterating it.

    The server never sends more than the response's ``Content-Length``, so a handler may hand over a file
    positioned at the start of a byte range.
    """

    def __init__(self, file: t.BinaryIO, block_size: int = FILE_BUFFER) -> None:
        self.file = file
        self.block_size = block_size

    def __iter__(self) -> t.Iterator[bytes]:
        while data := self.file.read(self.block_size):
            yield data

    def close(self) -> None:
        self.file.close()


class _Body:
    """``wsgi.input`` for a body with a ``Content-Length``: never reads past it."""

    def __init__(self, rfile: t.BinaryIO, length: int, on_read: t.Callable[[], None] | None = None) -> None:
        self._rfile = rfile
        self.remaining = length
        #: Called before the first read: the connection gives up its turn (see :class:`_Server`).
        self._on_read = on_read

    def _reading(self) -> None:
        if self._on_read is not None:
            self._on_read()
            self._on_read = None

    @property
    def done(self) -> bool:
        return self.remaining <= 0

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        self._reading()
        try:
            data = self._rfile.read(size)
        except OSError:
            data = b""
        self.remaining -= len(data)
        if len(data) < size:
            self.remaining = -1  # the rest will never come: the connection is closed after this request
            raise _client_disconnected()
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        self._reading()
        try:
            line = self._rfile.readline(size)
        except OSError:
            line = b""
        if not line:
            self.remaining = -1
            raise _client_disconnected()
        self.remaining -= len(line)
        return line

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> t.Iterator[bytes]:
        while line := self.readline():
            yield line

    def drain(self, limit: int) -> bool:
        """Read and drop what is left, if at most ``limit``; whether the connection can be reused."""
        if self.remaining < 0 or self.remaining > limit:
            return False
        try:
            while self.remaining > 0:
                self.read(min(self.remaining, FILE_BUFFER))
        except Exception:
            return False
        return True


class _ChunkedBody(_Body):
    """``wsgi.input`` for ``Transfer-Encoding: chunked``: yields the data, never the framing."""

    def __init__(self, rfile: t.BinaryIO, on_read: t.Callable[[], None] | None = None) -> None:
        super().__init__(rfile, 0, on_read)
        self._finished = False
        self._broken = False
        self.received = 0

    @property
    def done(self) -> bool:
        return self._finished

    def _next_chunk(self) -> None:
        # After a chunk's data comes a CRLF, before the next chunk's size line.
        if self.received and self._rfile.readline(MAX_LINE) not in (b"\r\n", b"\n"):
            raise ValueError("chunk not followed by CRLF")
        line = self._rfile.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise ValueError("truncated chunk size line")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size < 0:
            raise ValueError("negative chunk size")
        if size == 0:
            while self._rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers are dropped
            self._finished = True
        self.remaining = size
        self.received += 1

    def read(self, size: int | None = -1) -> bytes:
        parts: list[bytes] = []
        wanted = sys.maxsize if size is None or size < 0 else size
        self._reading()
        try:
            while wanted > 0 and not self._finished:
                if self.remaining == 0:
                    self._next_chunk()
                    continue
                data = self._rfile.read(min(wanted, self.remaining))
                if not data:
                    raise ValueError("connection closed inside a chunk")
                self.remaining -= len(data)
                wanted -= len(data)
                parts.append(data)
        except (OSError, ValueError):
            self._broken = self._finished = True
            raise _client_disconnected() from None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        # Chunked bodies are blobs and manifests, never line-oriented forms: a simple, correct version.
        line = bytearray()
        while not line.endswith(b"\n") and (size is None or size < 0 or len(line) < size):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return bytes(line)

    def drain(self, limit: int) -> bool:
        drained = 0
        try:
            while not self._finished and drained <= limit:
                drained += len(self.read(FILE_BUFFER))
        except Exception:
            return False
        return self._finished and not self._broken


_EMPTY_BODY = _Body(t.cast(t.BinaryIO, None), 0)


class _Connection:
    """One client connection: reads requests, calls the app, writes responses, until either side ends."""

    def __init__(self, server: _Server, sock: socket.socket, client_address: t.Any) -> None:
        self.server = server
        self.sock = sock
        self.rfile = t.cast(t.BinaryIO, sock.makefile("rb", READ_BUFFER))
        if isinstance(client_address, tuple):
            remote_addr, remote_port = str(client_address[0]), str(client_address[1])
        else:
            remote_addr, remote_port = "<local>", "0"  # a Unix socket's peer has no address
        self.tls = server.tls_context is not None
        self.environ: dict[str, t.Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.tls else "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": _FileWrapper,
            "SERVER_SOFTWARE": "pax-registry-emulator",
            "SCRIPT_NAME": "",
            "SERVER_NAME": server.server_name,
            "SERVER_PORT": server.server_port,
            "REMOTE_ADDR": remote_addr,
            "REMOTE_PORT": remote_port,
        }
        if self.tls:
            self._add_client_certificate()
        # Per response:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.chunked = False
        self.keep_alive = True
        self.to_send: int | None = None  # bytes of body still allowed by Content-Length
        self.head_request = False
        self.has_turn = False

    def _add_client_certificate(self) -> None:
        import ssl

        with contextlib.suppress(ValueError, AttributeError):
            der = t.cast("ssl.SSLSocket", self.sock).getpeercert(binary_form=True)
            if der is not None:
                self.environ["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der)

    # -- the request loop --------------------------------------------------------------------------

    def serve(self) -> None:
        server = self.server
        try:
            while server.connection_idle(self):
                try:
                    line = self.rfile.readline(MAX_LINE + 1)
                except OSError:
                    line = b""
                server.connection_busy(self)
                try:
                    if not line or not self.handle(line):
                        return
                finally:
                    server.request_done()
        finally:
            server.connection_gone(self)
            with contextlib.suppress(OSError):
                self.rfile.close()

    def handle(self, line: bytes) -> bool:
        """Serve the request that starts with ``line``; whether the connection stays open."""
        try:
            environ, body = self.parse(line)
        except _BadRequest as e:
            self.send_error(e.status, str(e))
            return False
        except OSError:
            return False
        if environ is None:
            return True  # an empty line between requests, which RFC 9112 lets servers ignore
        self.status = None
        self.headers = []
        self.head_sent = self.chunked = False
        self.to_send = None
        try:
            self.run_app(environ)
        except OSError:
            return False  # the client went away while the response was being sent
        except Exception:
            log.exception("error serving %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            if self.head_sent:
                return False
            self.keep_alive = False
            with contextlib.suppress(OSError):
                self.send_error(500, "Internal Server Error")
            return False
        if self.to_send:
            return False  # the app sent less than its Content-Length: the client would wait forever
        if not body.done and not body.drain(DRAIN_LIMIT):
            self.keep_alive = False
        return self.keep_alive

    def parse(self, line: bytes) -> tuple[dict[str, t.Any] | None, _Body]:
        if len(line) > MAX_LINE:
            raise _BadRequest(414, "request line too long")
        parts = line.split()
        if not parts:
            return None, _EMPTY_BODY
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise _BadRequest(400, "malformed request line")
        method_b, target_b, version_b = parts
        environ = self.environ.copy()
        version = version_b.decode("latin-1")
        http11 = version != "HTTP/1.0"
        keep_alive = http11
        length: int | None = None
        chunked = expect_continue = False
        rfile = self.rfile
        for _ in range(MAX_HEADERS):
            header = rfile.readline(MAX_LINE + 1)
            if header in (b"\r\n", b"\n"):
                break
            if not header.endswith(b"\n"):
                if not header:
                    raise OSError("connection closed inside the request headers")
                raise _BadRequest(431, "header line too long")
            name, sep, value_b = header.partition(b":")
            if not sep or not name or name != name.strip() or header[0] in b" \t":
                raise _BadRequest(400, "malformed header line")
            value = value_b.strip().decode("latin-1")
            key = name.decode("latin-1").upper()
            if key == "CONTENT-LENGTH":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise _BadRequest(400, "invalid Content-Length")
                length = int(value)
                environ["CONTENT_LENGTH"] = value
                continue
            if key == "CONTENT-TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if key == "TRANSFER-ENCODING":
                codings = [c.strip().lower() for c in value.split(",")]
                if codings[-1] != "chunked":
                    raise _BadRequest(400, "unsupported Transfer-Encoding")
                chunked = True
            elif key == "CONNECTION":
                tokens = value.lower()
                if "close" in tokens:
                    keep_alive = False
                elif "keep-alive" in tokens:
                    keep_alive = True
            elif key == "EXPECT":
                expect_continue = value.lower() == "100-continue"
            if "_" in key:
                continue  # as Werkzeug does: HTTP_X_FOO must not be forgeable as "X_Foo"
            key = "HTTP_" + key.replace("-", "_")
            existing = environ.get(key)
            environ[key] = value if existing is None else f"{existing},{value}"
        else:
            raise _BadRequest(431, "too many header lines")

        target = target_b.decode("latin-1")
        environ["REQUEST_METHOD"] = method = method_b.decode("latin-1")
        environ["SERVER_PROTOCOL"] = version
        environ["REQUEST_URI"] = environ["RAW_URI"] = target
        if not target.startswith("/") and "://" in target:
            # absolute-form: the authority is the host
            _, _, rest = target.partition("://")
            authority, slash, path_and_query = rest.partition("/")
            environ["HTTP_HOST"] = authority
            target = slash + path_and_query
        path, _, query = target.partition("?")
        environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1") if "%" in path else path
        environ["QUERY_STRING"] = query

        body: _Body
        if chunked:
            environ.pop("CONTENT_LENGTH", None)
            body = _ChunkedBody(rfile, self.leave_turn)
            if length is not None:
                keep_alive = False  # both framings: RFC 9112 asks to close after the response
        elif length:
            body = _Body(rfile, length, self.leave_turn)
        else:
            body = _EMPTY_BODY
        environ["wsgi.input"] = body
        environ["werkzeug.socket"] = self.sock
        if expect_continue and http11 and not body.done:
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.keep_alive = self.keep_alive and keep_alive  # False already if the server is stopping
        self.http11 = http11
        self.head_request = method == "HEAD"
        return environ, body

    # -- responses ---------------------------------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
    ) -> t.Callable[[bytes], None]:
        if exc_info:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response was already called")
        self.status = status
        self.headers = headers
        return self.write

    def run_app(self, environ: WSGIEnvironment) -> None:
        turn = self.server.turn
        if turn is not None:
            turn.acquire()
            self.has_turn = True
        try:
            result = self.server.app(environ, self.start_response)
        finally:
            self.leave_turn()
        try:
            if type(result) is _FileWrapper:
                self.send_head(b"")
                if self.to_send:
                    self.send_file(result.file, self.to_send)
                return
            for data in result:
                if data:
                    self.write(data)
            if not self.head_sent:
                self.send_head(b"")
            if self.chunked:
                self.sock.sendall(b"0\r\n\r\n")
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def leave_turn(self) -> None:
        if self.has_turn:
            self.has_turn = False
            self.server.turn.release()  # type: ignore[union-attr]

    def write(self, data: bytes) -> None:
        self.leave_turn()  # the app writes to the socket itself: it may block
        if not self.head_sent:
            if len(data) <= COALESCE_LIMIT:
                self.send_head(data)
                return
            self.send_head(b"")
        self.send_body(data)

    def send_head(self, first: bytes) -> None:
        status = self.status
        if status is None:
            raise AssertionError("the app returned without calling start_response")
        code = int(status[:3])
        lines = ["HTTP/1.1 ", status, "\r\n"]
        length: int | None = None
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                length = int(value)
                continue
            elif lower == "connection":
                if "close" in value.lower():
                    self.keep_alive = False
                continue
            elif lower == "transfer-encoding":
                continue  # hop-by-hop: the server frames the body
            lines += (name, ": ", value, "\r\n")
        lines.append(_Date.header())
        body_allowed = not self.head_request and code >= 200 and code not in _NO_BODY_STATUS
        if length is not None:
            lines += ("Content-Length: ", str(length), "\r\n")
        if not body_allowed:
            self.to_send = 0
        elif length is not None:
            self.to_send = length
        elif self.http11:
            self.chunked = True
            lines.append("Transfer-Encoding: chunked\r\n")
        else:
            self.keep_alive = False  # the end of the body is the end of the connection
        if not self.keep_alive:
            lines.append("Connection: close\r\n")
        elif not self.http11:
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        self.head_sent = True
        if first:
            self.sock.sendall(head + self.frame(first))
        else:
            self.sock.sendall(head)

    def frame(self, data: bytes) -> bytes:
        """``data`` as it goes on the wire: cut to the Content-Length, or as one chunk."""
        if self.to_send is not None:
            if len(data) > self.to_send:
                data = data[: self.to_send]
            self.to_send -= len(data)
            return data
        if self.chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data

    def send_body(self, data: bytes) -> None:
        if self.to_send is not None:
            if self.to_send <= 0:
                return
            if len(data) > self.to_send:
                data = data[: self.to_send]
            self.to_send -= len(data)
            self.sock.sendall(data)
        elif self.chunked:
            self.sock.sendall(b"%x\r\n" % len(data))
            self.sock.sendall(data)
            self.sock.sendall(b"\r\n")
        else:
            self.sock.sendall(data)

    def send_file(self, file: t.BinaryIO, count: int) -> None:
        """Send ``count`` bytes of ``file`` from its current position: with ``sendfile`` when both ends
        are real descriptors (zero copy), else in 1 MiB reads."""
        remaining = count
        if not self.tls:
            try:
                file.fileno()
                offset = file.tell()
            except (OSError, ValueError, AttributeError):
                pass  # not a real file (in-memory storage)
            else:
                remaining -= self.sock.sendfile(file, offset, count)
                self.to_send = remaining
                return
        while remaining > 0:
            data = file.read(min(remaining, FILE_BUFFER))
            if not data:
                break
            self.sock.sendall(data)
            remaining -= len(data)
        self.to_send = remaining

    def send_error(self, status: int, message: str) -> None:
        body = f"{message}\n".encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n{_Date.header()}"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        self.sock.sendall(head.encode("latin-1") + body)


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Accepts connections and serves each in its own thread; knows which are idle, so that stopping
    can close those at once and wait for the others (as Go's ``Server.Shutdown`` does).

    With ``turns``, connections take turns to run the app: one at a time, from the moment a request is
    parsed until the app returns, or first reads the request body or writes to the client, at which
    point the request gives up its turn and finishes without it (so an upload or a slow client never
    holds up the others; responses are sent outside the turn too). Python runs one thread at a time
    anyway; without turns, 32 connections fight for the interpreter lock at every system call and the
    unlucky ones wait many rounds: taking turns cut the p99 latency of manifest GETs at concurrency 32
    from 50-90 ms to about 20 ms and raised throughput by about 10%. It is for local storage only: an
    app waiting on a remote store (S3) in its turn would hold up every other client.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        sock: socket.socket,
        app: WSGIApplication,
        tls_context: ssl.SSLContext | None = None,
        *,
        turns: bool = False,
    ) -> None:
        # BaseServer, not TCPServer: the socket is already bound and listening.
        socketserver.BaseServer.__init__(self, sock.getsockname(), _Connection)  # type: ignore[arg-type]
        self.socket = sock
        sock.setblocking(False)  # accepted until none is left: see _handle_request_noblock
        self.address_family = sock.family
        self.app = app
        self.tls_context = tls_context
        self.turn = threading.Lock() if turns else None
        address = sock.getsockname()
        if isinstance(address, tuple):
            self.server_name, self.server_port = str(address[0]), str(address[1])
        else:
            self.server_name, self.server_port = "localhost", "80"
        self._lock = threading.Condition()
        self._idle: set[_Connection] = set()
        self._connections: set[_Connection] = set()
        self._active = 0
        self._closing = False

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls_context

    # -- connections -------------------------------------------------------------------------------

    def _handle_request_noblock(self) -> None:
        """Accept every connection waiting, not one per wake-up.

        Under load the accepting thread waits for the interpreter lock after every system call; taking
        one connection per turn let TLS clients that dial spare connections (Go's) fill the backlog
        faster than it drained, and a new client then waited seconds for its handshake.
        """
        for _ in range(ACCEPT_BATCH):
            try:
                request, client_address = self.socket.accept()
            except OSError:
                return  # BlockingIOError: nothing more waiting (the socket is non-blocking)
            self.process_request(request, client_address)

    def process_request(self, request: t.Any, client_address: t.Any) -> None:
        # Thread.start() waits until the new thread has run; under load that wait is a wait for the
        # interpreter lock, so the connection's thread is started without it (it is a daemon thread).
        _thread.start_new_thread(self.process_request_thread, (request, client_address))

    def process_request_thread(self, request: t.Any, client_address: t.Any) -> None:
        try:
            if self.address_family != socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls_context is not None:
                request.settimeout(HANDSHAKE_TIMEOUT)
                request = self.tls_context.wrap_socket(
                    request, server_side=True, do_handshake_on_connect=False
                )
                try:
                    request.do_handshake()
                except (OSError, ValueError):
                    _close_after_alert(request)
                    raise
            # Blocking, with the idle timeout in the kernel (SO_RCVTIMEO/SO_SNDTIMEO): a Python-level timeout
            # would add a poll() before every recv and send.
            request.settimeout(None)
            request.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _IDLE_TIMEVAL)
            request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _IDLE_TIMEVAL)
            connection = _Connection(self, request, client_address)
            with self._lock:
                self._connections.add(connection)
            connection.serve()
        except (OSError, ValueError):
            # A failed handshake (no client certificate, an old protocol) is the client's problem,
            # and so is a connection reset.
            pass
        except Exception:
            log.exception("error on a connection from %s", client_address)
        finally:
            self.shutdown_request(request)

    def connection_idle(self, connection: _Connection) -> bool:
        """``connection`` waits for its next request; ``False`` when the server is stopping."""
        with self._lock:
            if self._closing:
                return False
            self._idle.add(connection)
            return True

    def connection_busy(self, connection: _Connection) -> None:
        with self._lock:
            self._idle.discard(connection)
            self._active += 1
            if self._closing:
                connection.keep_alive = False

    def request_done(self) -> None:
        with self._lock:
            self._active -= 1
            if not self._active:
                self._lock.notify_all()

    def connection_gone(self, connection: _Connection) -> None:
        with self._lock:
            self._idle.discard(connection)
            self._connections.discard(connection)

    def close_idle_connections(self) -> None:
        """Stop reading new requests: idle connections are closed now, busy ones after their response."""
        with self._lock:
            self._closing = True
            idle, self._idle = self._idle, set()
        for connection in idle:
            with contextlib.suppress(OSError):
                # socket.socket's own shutdown, also for TLS sockets: wakes the reading thread.
                socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being served, up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def server_close(self) -> None:
        super().server_close()
        self.close_idle_connections()

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        log.exception("error on a connection from %s", client_address)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket for ``host:port`` (or ``unix://PATH``); errors are raised, not printed."""
    address: str | tuple[t.Any, ...]
    if host.startswith("unix://"):
        family, address = socket.AF_UNIX, host[len("unix://") :]
    else:
        # As Werkzeug chose them: IPv6 for a host with a colon, and the resolver's first address.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)[0][4]
        except socket.gaierror:
            address = (host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(t.cast(str, address))
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Large blobs move faster with a large socket buffer than with the small default.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock


def create_server(
    app: WSGIApplication,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    *,
    turns: bool = False,
) -> _Server:
    """A threaded server bound to ``host:port`` (``port`` 0 picks a free one); ``host`` may be
    ``unix://PATH`` for a Unix socket. A failure to bind raises :class:`OSError`. ``turns``: see
    :class:`_Server`."""
    return _Server(bind_socket(host, port), app, ssl_context, turns=turns)


def _local_storage(app: WSGIApplication) -> bool:
    """Whether ``app`` is a registry on filesystem or in-memory storage (see :class:`_Server`)."""
    driver = getattr(getattr(app, "registry", None), "driver", None)
    return getattr(driver, "name", None) in ("filesystem", "inmemory")


class BackgroundServer:
    """A server running in a daemon thread: what tests and the pytest plugin use.

    Its loop waits on the listening socket and on a wake-up pipe, so :meth:`stop` returns within a
    millisecond instead of waiting out a poll interval: a test suite that starts one registry per test
    would otherwise spend most of its time stopping them.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self._server = create_server(app, host, port, ssl_context)
        self.port: int = self._server.socket.getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        self.host = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"{scheme}://{self.host}"
        self._stopping = False
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"registry-{self.port}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # socketserver's serve_forever can only notice shutdown() at its next poll; this loop is the
        # same accept-and-dispatch, plus the wake-up socket.
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._server and not self._stopping:
                        self._server._handle_request_noblock()
                self._server.service_actions()

    def stop(self) -> None:
        """Stop accepting connections and close the socket; requests being served finish on their own."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        self._thread.join()
        self._server.server_close()
        self._wake_read.close()
        self._wake_write.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    app: WSGIApplication,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    drain_timeout: float = 0.0,
    on_ready: t.Callable[[_Server], None] | None = None,
) -> None:
    """Serve in the foreground until SIGTERM or SIGINT.

    Then, as Go's ``Server.Shutdown``: stop accepting, close idle connections, and give requests being
    served up to ``drain_timeout`` seconds to finish.
    """
    server = create_server(app, host, port, ssl_context, turns=_local_storage(app))
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever to return, so it must run off the main thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.close_idle_connections()
        if drain_timeout > 0:
            server.wait_idle(drain_timeout)
        server.server_close()
        if host.startswith("unix://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(host[len("unix://") :])
