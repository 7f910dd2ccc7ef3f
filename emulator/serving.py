"""How the registry is served: the one place that knows which HTTP server runs the WSGI app.

The server is this module's own thread-per-connection server; HTTP/1.1 itself is h11's. h11 parses every
request head (request line, header syntax, ``Host`` rules, Content-Length and Transfer-Encoding), decodes
chunked bodies, decides keep-alive, and frames every response (Content-Length or chunked, no body for HEAD,
204 and 304). What h11 leaves to its user, and this module therefore decides:

- Limits: a request head of at most 1 MiB (431 beyond), a request line of at most 64 KiB (414), a
  Content-Length below 2**63 (as Go's server), HTTP/1.x only (505; 1.2 and up served as 1.1), an
  origin-form or absolute-form request target (400 otherwise, CONNECT included: its answer would open a
  tunnel), a valid Host (RFC 9112 section 3.2), no Transfer-Encoding on HTTP/1.0 (RFC 9112 section 6.1:
  its framing is faulty), no obsolete line folding. Chunk sizes are h11's: up to 20 hex digits; a large
  declared chunk, like a large Content-Length, waits for its bytes under the idle timeout. A request
  carrying both Content-Length and chunked is framed as chunked and its connection is closed after the
  response (RFC 9112 section 6.3).
- Any framing error answers 400 (431/414 for sizes, 501 for an unknown transfer coding, as RFC 9112 asks and
  Go answers) and closes the connection: nothing read after a bad head or a bad body is ever taken as a
  request.
- Content-Length bodies are read straight from the socket, after h11 has validated the framing: feeding
  them through h11 costs two more copies of every byte (1.17 s per GiB, measured here, against 0.8 s for
  the sha256 of the same GiB), which would halve the push rate. Chunked bodies go through h11.
- ``Expect: 100-continue`` is answered when the app first reads the body, so after authentication and
  routing; a body the app did not read is drained up to 256 KiB, beyond which the connection is closed.
- Blobs handed over through ``wsgi.file_wrapper`` leave with ``sendfile(2)`` on plain connections (h11
  frames them: its ``send_with_data_passthrough`` hands back the object it was given), in 1 MiB reads over
  TLS, chunked when they have no length. On TCP the head and the file go out corked (``TCP_CORK``, nginx's
  ``tcp_nopush``): with ``TCP_NODELAY`` on, each 64 KiB piece ``sendfile`` moves would leave as one full
  segment and a runt of a few bytes, and a pull of a large blob ran at 0.78 of nginx's rate on loopback
  (1.05 corked). Over TLS corking made pulls slower (0.89 of nginx against 1.14): records already leave
  in full segments.
- Time: sockets are blocking with the idle timeout in the kernel (``SO_RCVTIMEO``/``SO_SNDTIMEO``), so it
  bounds every read and write, ``sendfile`` included, without a ``poll`` before each call; the TLS handshake
  has its own timeout. Plain HTTP sent to a TLS port answers 400, as distribution does.
- Connections: at most ``max_connections`` are served at once (``http.maxconnections``, default 1,000).
  At the cap, a connection that has not sent a complete request head yet (idle keep-alive, half-open,
  slowloris) is closed to make room, as nginx reuses idle keep-alive connections; otherwise new connections
  wait in the listen backlog.
- Turns (see :class:`Server`): on local storage connections run the app one at a time. No one can hold
  a turn across their own I/O: it is given up when the app first reads the body or writes, and through
  ``environ["emulator.leave_turn"]`` before slow work that needs no interpreter (password hashing).
- ``environ["emulator.head_size"]`` (:data:`HEAD_SIZE`): the characters of the request's method, target,
  protocol and header names and values as they arrived (separators aside), counted while the environ is
  built; the metrics' request size uses it instead of walking the environ again.

Measured while choosing the server (manifest GET, filesystem storage, ``wrk -t2 -c32``, 2 cores shared with
wrk): Werkzeug's threaded server 1.0k requests/s (no keep-alive), cheroot 2.2k with a p99 of 300 ms, granian
2.6k but without TLS 1.0/1.1, cipher suites, several client-CA files or an SNI callback, this module's server
(before h11) 4.5k with a p99 of 17 ms, docker-registry 1.9k. h11 costs about 55 us per request here (mostly
header validation when sending the response), which the benchmark suite measures against distribution.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import logging
import os
import re
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import typing as t
from urllib.parse import unquote_to_bytes

import h11

from .config.model import HTTPConfig
from .drivers.base import StorageDriver
from .reference import is_valid_host
from .turns import LEAVE_TURN

if t.TYPE_CHECKING:
    import ssl

    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("emulator.serving")

#: The environ key of the request head's size: method, target, protocol, every header's name and value.
HEAD_SIZE = "emulator.head_size"

#: How long a client may take over its TLS handshake before its connection is dropped.
HANDSHAKE_TIMEOUT = 10.0
#: How long a socket read or write may wait (between requests, or in the middle of one).
IDLE_TIMEOUT = 300.0
#: Connections served at once: ``http.maxconnections``'s default.
MAX_CONNECTIONS = HTTPConfig.maxconnections
#: The largest request head (request line and headers), as Go's ``DefaultMaxHeaderBytes``.
MAX_HEAD = 1 << 20
#: The longest request line.
MAX_REQUEST_LINE = 1 << 16
#: Go's server refuses Content-Lengths that do not fit an int64.
MAX_CONTENT_LENGTH = (1 << 63) - 1
#: A request body the app did not read is drained (to keep the connection) up to this much.
DRAIN_LIMIT = 256 << 10
#: Connections being closed at once to make room at the cap (their threads are still ending).
RECLAIM_IN_FLIGHT = 16
#: How many waiting connections are accepted in one go.
ACCEPT_BATCH = 256
#: Reads of request heads and chunked bodies.
READ_BUFFER = 1 << 16
#: Reads from a blob file when ``sendfile`` cannot be used (TLS, in-memory storage).
FILE_BUFFER = 1 << 20
#: Responses whose body is at most this large leave with their head in one ``send``.
COALESCE_LIMIT = 1 << 16

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_REASONS = {
    400: "Bad Request",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
_OBS_FOLD = re.compile(rb"\n[ \t]")
_ABSOLUTE_FORM = re.compile(rb"https?://([^/?#]+)([/?].*)?", re.IGNORECASE)
#: The starts of a plain HTTP request, to tell one sent to a TLS port from a broken handshake (Go's list).
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO", b"PATCH", b"DELET")
_TLS_HANDSHAKE_RECORD = 0x16
#: distribution's (Go's) answer to plain HTTP on a TLS port.
_PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class _Date:
    """The ``Date`` header value, formatted once a second."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        now = int(time.time())
        if now != cls.second:
            tm = time.gmtime(now)
            cls.value = (
                f"{_WEEKDAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTHS[tm.tm_mon - 1]} {tm.tm_year} "
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT"
            )
            cls.second = now
        return cls.value


def _parser() -> h11.Connection:
    """h11's state for one request (a new one per request: see :meth:`_Connection.handle`)."""
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)


class _BadRequest(Exception):
    """A request the server refuses before the app sees it; the connection is closed after the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Gone(Exception):
    """The client closed the connection, or let it idle past the timeout: nothing more to answer."""


def _client_disconnected() -> Exception:
    # Werkzeug's own "client went away while sending the body" error, which the app answers with 400.
    from werkzeug.exceptions import ClientDisconnected

    return ClientDisconnected()


def _linger_close(sock: socket.socket, limit: int = DRAIN_LIMIT) -> None:
    """Close after a final answer without destroying it.

    Closing a socket with unread input makes the kernel send a reset, which can overtake the answer
    (a refused TLS handshake's alert, a 400 after a bad body) before the client reads it. So our side is
    shut down first and what the client still sends is read and dropped, briefly.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)  # for TLS sockets this also drops the TLS layer: raw bytes follow
        sock.settimeout(1.0)
        drained = 0
        while drained < limit:
            data = sock.recv(READ_BUFFER)
            if not data:
                break
            drained += len(data)


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


class _FileSpan:
    """``count`` bytes of a file from its current position, as the data of one h11 ``Data`` event.

    h11 only needs its length to frame it and hands the object back from ``send_with_data_passthrough``;
    the connection then sends the bytes itself.
    """

    def __init__(self, file: t.BinaryIO, count: int) -> None:
        self.file = file
        self.count = count

    def __len__(self) -> int:
        return self.count


class _Body:
    """``wsgi.input`` for a body with a Content-Length: never reads past it.

    The bytes h11 had buffered past the head come first, then the socket.
    """

    def __init__(self, connection: _Connection, length: int, buffered: bytes) -> None:
        self._connection = connection
        self.remaining = length
        self._buffered = buffered
        self.started = False
        #: The client stopped sending inside the body (or idled past the timeout).
        self.broken = False

    @property
    def done(self) -> bool:
        return self.remaining <= 0

    def leftover(self) -> bytes:
        """What was received past the body: the start of the next request. Only once the body is done."""
        data, self._buffered = self._buffered, b""
        return data

    def _take_buffered(self, size: int) -> bytes:
        data = self._buffered[:size]
        self._buffered = self._buffered[size:]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        if not self.started:
            self.started = True
            self._connection.body_started()
        if self._buffered:
            data = self._take_buffered(min(size, self.remaining))
        else:
            data = self._connection.receive(size)
        self.remaining -= len(data)
        if not data:
            self.broken = True
            self.remaining = 0
            raise _client_disconnected()
        return data

    def readline(self, size: int | None = -1) -> bytes:
        # Bodies here are blobs and manifests, never line-oriented forms: a simple, correct version.
        line = bytearray()
        while not line.endswith(b"\n") and (size is None or size < 0 or len(line) < size):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return bytes(line)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> t.Iterator[bytes]:
        while line := self.readline():
            yield line

    def drain(self, limit: int) -> bool:
        """Read and drop what is left, if at most ``limit``; whether the connection can be reused."""
        if self.broken or self.remaining > limit:
            return False
        try:
            while self.remaining > 0:
                self.read(min(self.remaining, FILE_BUFFER))
        except Exception:
            return False
        return True


class _ChunkedBody(_Body):
    """``wsgi.input`` for ``Transfer-Encoding: chunked``, decoded by h11."""

    def __init__(self, connection: _Connection, parser: h11.Connection) -> None:
        super().__init__(connection, 0, b"")
        self._parser = parser
        self._pending = b""
        self._finished = False

    @property
    def done(self) -> bool:
        return self._finished and not self._pending

    def leftover(self) -> bytes:
        return self._parser.trailing_data[0]

    def _next_data(self) -> bytes:
        while True:
            try:
                event = self._parser.next_event()
                if event is h11.NEED_DATA:
                    self._parser.receive_data(self._connection.receive(READ_BUFFER))
                    continue
            except h11.RemoteProtocolError:
                # A malformed chunk, or the connection closed inside the body: whatever follows cannot be
                # told apart from a request, so the connection ends with the answer.
                self._connection.closing = True
                self.broken = self._finished = True
                raise _client_disconnected() from None
            if isinstance(event, h11.Data):
                return bytes(event.data)
            self._finished = True  # EndOfMessage: trailers are dropped
            return b""

    def read(self, size: int | None = -1) -> bytes:
        if not self.started:
            self.started = True
            self._connection.body_started()
        wanted = sys.maxsize if size is None or size < 0 else size
        parts: list[bytes] = []
        while wanted > 0:
            if not self._pending:
                if self._finished:
                    break
                self._pending = self._next_data()
                continue
            data, self._pending = self._pending[:wanted], self._pending[wanted:]
            wanted -= len(data)
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def drain(self, limit: int) -> bool:
        drained = 0
        try:
            while not self.done and drained <= limit:
                drained += len(self.read(FILE_BUFFER))
        except Exception:
            return False
        return self.done and not self.broken


class _Connection:
    """One client connection: reads requests, calls the app, writes responses, until either side ends."""

    def __init__(self, server: Server, sock: socket.socket, client_address: t.Any) -> None:
        self.server = server
        self.sock = sock
        self.tls = server.tls_context is not None
        #: Whether file bodies are sent corked (see the module's docstring): plain TCP on Linux.
        self.cork = (
            not self.tls and sock.family in (socket.AF_INET, socket.AF_INET6) and hasattr(socket, "TCP_CORK")
        )
        if isinstance(client_address, tuple):
            remote_addr, remote_port = str(client_address[0]), str(client_address[1])
        else:
            remote_addr, remote_port = "<local>", "0"  # a Unix socket's peer has no address
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
            "werkzeug.socket": sock,
        }
        if server.turn is not None:
            self.environ[LEAVE_TURN] = self.leave_turn
        #: Bytes received past the previous request: the start of the next one.
        self.buffered = b""
        #: Set when the connection must close after the current response.
        self.closing = False
        #: Closed by the server to make room for another client (see :meth:`Server._make_room`).
        self.reclaimed = False
        self.has_turn = False
        # Per request:
        self.parser = _parser()
        self.body: _Body = _Body(self, 0, b"")
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.to_send: int | None = None  # bytes of body still allowed by the response's Content-Length
        self.body_allowed = True
        self.expecting_continue = False

    def start_tls(self, sock: ssl.SSLSocket) -> None:
        """The handshake is done: requests are read from ``sock`` and carry the client's certificate."""
        import ssl

        self.sock = sock
        self.environ["werkzeug.socket"] = sock
        with contextlib.suppress(ValueError, AttributeError):
            der = sock.getpeercert(binary_form=True)
            if der is not None:
                self.environ["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der)

    # -- reading -----------------------------------------------------------------------------------

    def receive(self, size: int) -> bytes:
        """Up to ``size`` bytes from the socket; ``b""`` when the client closed or idled past the timeout.

        On plain sockets ``MSG_WAITALL`` fills a large read in one call, straight into the bytes object
        that is returned.
        """
        try:
            if not self.tls:
                return self.sock.recv(size, socket.MSG_WAITALL if size > READ_BUFFER else 0)
            if size <= READ_BUFFER:
                return self.sock.recv(size)
            # TLS hands out one 16 KiB record per call: fill the read, for fewer trips through the app.
            buffer = bytearray(size)
            view = memoryview(buffer)
            received = 0
            while received < size:
                count = self.sock.recv_into(view[received:])
                if not count:
                    break
                received += count
            return bytes(view[:received])
        except OSError:  # a reset, or EAGAIN: the idle timeout (SO_RCVTIMEO) ran out
            return b""

    def _read_head(self) -> h11.Request:
        """The next request's head, parsed by h11; :class:`_Gone` if the client leaves first."""
        parser = self.parser
        line_length = 0
        line_done = False
        received: list[bytes] = []  # the head's bytes, for the checks h11 leaves to servers
        data = self.buffered
        self.buffered = b""
        while True:
            if not received:
                # RFC 9112 section 2.2: empty lines before a request line are ignored (some clients send
                # a CRLF after a POST body).
                data = data.lstrip(b"\r\n")
            if data:
                if not line_done:
                    newline = data.find(b"\n")
                    line_done = newline >= 0
                    line_length += newline if line_done else len(data)
                    if line_length > MAX_REQUEST_LINE:
                        raise _BadRequest(414, "request line too long")
                received.append(data)
                parser.receive_data(data)
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as e:
                status = e.error_status_hint
                raise _BadRequest(status, str(e) or _REASONS.get(status, "bad request")) from None
            if isinstance(event, h11.Request):
                # What h11 holds past the head: the body's start, or pipelined requests.
                self.buffered = parser.trailing_data[0]
                head = b"".join(received)
                head = head[: len(head) - len(self.buffered)]
                if _OBS_FOLD.search(head):
                    # h11 unfolds continuation lines; RFC 9112 section 5.2 also allows refusing them, which
                    # leaves no room for a proxy in front to read the header differently.
                    raise _BadRequest(400, "obsolete line folding in a header")
                return event
            if event is not h11.NEED_DATA:
                raise _Gone()  # ConnectionClosed before any request
            data = self.receive(READ_BUFFER)
            if not data:
                if line_length == 0 and not parser.trailing_data[0]:
                    raise _Gone()  # closed (or timed out) between requests: nothing to answer
                parser.receive_data(b"")  # h11 answers a head cut short with an error

    def body_started(self) -> None:
        """The app reads the body: it gives up its turn, and a client waiting for it gets its 100."""
        self.leave_turn()
        if self.parser.they_are_waiting_for_100_continue:
            self.sock.sendall(self.parser.send(h11.InformationalResponse(status_code=100, headers=[])))

    # -- the request loop --------------------------------------------------------------------------

    def serve(self) -> None:
        server = self.server
        try:
            while server.connection_waiting(self):
                try:
                    request = self._read_head()
                except _Gone:
                    return
                except _BadRequest as e:
                    self.send_error(e.status, str(e))
                    return
                server.connection_busy(self)
                try:
                    if not self.handle(request):
                        return
                finally:
                    server.request_done()
        finally:
            if self.closing:
                _linger_close(self.sock)

    def _environ(self, request: h11.Request) -> WSGIEnvironment:
        """The WSGI environ of ``request``, or :class:`_BadRequest` for what h11 leaves to servers."""
        version = request.http_version
        if not version.startswith(b"1."):
            # RFC 9110 section 2.5: a higher minor version is served as the highest we know (h11: 1.1).
            raise _BadRequest(505, "HTTP version not supported")
        if request.method == b"CONNECT":
            # Its answer would turn the connection into a tunnel: this is a registry, not a proxy.
            raise _BadRequest(400, "CONNECT is not served here")
        environ = self.environ.copy()
        target = request.target
        environ["REQUEST_URI"] = environ["RAW_URI"] = target.decode("latin-1")
        if not target.startswith(b"/"):
            absolute = _ABSOLUTE_FORM.fullmatch(target)
            if absolute is not None:
                environ["HTTP_HOST"] = absolute.group(1).decode("latin-1")
                target = absolute.group(2) or b"/"
            elif not (target == b"*" and request.method == b"OPTIONS"):
                raise _BadRequest(400, "malformed request target")
        chunked = False
        header_size = 0
        for name, value in request.headers:
            header_size += len(name) + len(value)
            if name == b"content-length":
                if int(value) > MAX_CONTENT_LENGTH:
                    raise _BadRequest(400, "Content-Length too large")
                environ["CONTENT_LENGTH"] = value.decode("latin-1")
                continue
            if name == b"content-type":
                environ["CONTENT_TYPE"] = value.decode("latin-1")
                continue
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"host":
                if not is_valid_host(value.decode("latin-1")):
                    raise _BadRequest(400, "invalid Host header")  # RFC 9112 section 3.2
                if "HTTP_HOST" in environ:
                    continue  # absolute-form: the target's authority wins (RFC 9112 section 3.2.2)
            key = name.decode("latin-1")
            if "_" in key:
                continue  # as Werkzeug does: HTTP_X_FOO must not be forgeable as "X_Foo"
            key = "HTTP_" + key.upper().replace("-", "_")
            text = value.decode("latin-1")
            existing = environ.get(key)
            environ[key] = text if existing is None else f"{existing},{text}"
        if chunked:
            if version == b"1.0":
                raise _BadRequest(400, "Transfer-Encoding in an HTTP/1.0 request")
            if "CONTENT_LENGTH" in environ:
                del environ["CONTENT_LENGTH"]
                self.closing = True  # both framings: RFC 9112 asks to close after the response
        path, _, query = target.decode("latin-1").partition("?")
        environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1") if "%" in path else path
        environ["QUERY_STRING"] = query
        environ["REQUEST_METHOD"] = request.method.decode("latin-1")
        environ["SERVER_PROTOCOL"] = f"HTTP/{version.decode()}"
        environ[HEAD_SIZE] = header_size + len(request.method) + len(request.target) + len(version) + 5
        return environ

    def handle(self, request: h11.Request) -> bool:
        """Serve one request; whether the connection stays open."""
        try:
            environ = self._environ(request)
        except _BadRequest as e:
            self.send_error(e.status, str(e))
            return False
        buffered, self.buffered = self.buffered, b""
        length = environ.get("CONTENT_LENGTH")
        if "CONTENT_LENGTH" not in environ and "HTTP_TRANSFER_ENCODING" in environ:
            self.body = _ChunkedBody(self, self.parser)
        else:
            self.body = _Body(self, int(length) if length else 0, buffered)
        environ["wsgi.input"] = self.body
        self.status = None
        self.headers = []
        self.head_sent = False
        self.to_send = None
        self.body_allowed = request.method != b"HEAD"
        # Read now: h11 forgets that the client waits for a 100 once the final answer has been sent.
        self.expecting_continue = self.parser.they_are_waiting_for_100_continue
        try:
            self.run_app(environ)
        except _BadRequest as e:
            if not self.head_sent:
                self.send_error(e.status, str(e))
            self.closing = True
            return False
        except (OSError, h11.LocalProtocolError):
            # The client went away while the response was being sent, or the app sent less than its
            # Content-Length (the client would wait forever).
            self.closing = True
            return False
        except Exception:
            log.exception("error serving %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            if not self.head_sent:
                with contextlib.suppress(OSError):
                    self.send_error(500, "Internal Server Error")
            self.closing = True
            return False
        return self._finish_request()

    def _finish_request(self) -> bool:
        """After the response: whether the connection can carry another request."""
        body = self.body
        if self.closing or body.broken or self.parser.our_state is not h11.DONE:
            self.closing = True  # h11's keep-alive rules (Connection: close, HTTP/1.0) or ours
            return False
        if not body.done and not body.drain(DRAIN_LIMIT):
            self.closing = True
            return False
        self.buffered = body.leftover()
        self.parser = _parser()
        return True

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
                self.send_file(result.file)
                return
            for data in result:
                if data:
                    self.write(data)
            if not self.head_sent:
                self.send_head(b"")
            self.sock.sendall(self.parser.send(h11.EndOfMessage()))
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
        self.sock.sendall(self.frame(data))

    def send_head(self, first: bytes) -> None:
        status = self.status
        if status is None:
            raise AssertionError("the app returned without calling start_response")
        code = int(status[:3])
        headers: list[tuple[str, str]] = []
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                if self.body_allowed and code not in (204, 304):
                    self.to_send = int(value)
            elif lower == "transfer-encoding":
                continue  # hop-by-hop: h11 frames the body
            headers.append((name, value))
        if code in (204, 304) or not self.body_allowed:
            self.to_send = 0
        headers.append(("Date", _Date.now()))
        if self.expecting_continue and not self.body.started and not self.body.done:
            # The answer comes before the body the client holds back for its 100: whether it sends that
            # body anyway cannot be known, so the connection ends with this answer (as Go's server does).
            self.closing = True
        if self.closing or self.server.closing:
            self.closing = True
            headers.append(("Connection", "close"))
        try:
            head = self.parser.send(h11.Response(status_code=code, headers=headers, reason=status[4:]))
        except h11.LocalProtocolError:
            log.error("the app sent a malformed response head: %r %r", status, self.headers)
            raise _BadRequest(500, "Internal Server Error") from None
        self.head_sent = True
        self.sock.sendall(head + self.frame(first) if first else head)

    def frame(self, data: bytes) -> bytes:
        """``data`` as it goes on the wire: cut to the Content-Length, or as one chunk; nothing for HEAD."""
        if self.to_send is not None:
            if len(data) > self.to_send:
                data = data[: self.to_send]
            self.to_send -= len(data)
        if not data:
            return b""
        return self.parser.send(h11.Data(data=data))

    def send_file(self, file: t.BinaryIO) -> None:
        """Send a file handed over with ``wsgi.file_wrapper``: ``Content-Length`` bytes from its current
        position with ``sendfile`` when both ends are real descriptors, else in 1 MiB reads; a file
        without a length as chunks (or, to HTTP/1.0 clients, until the connection closes)."""
        self.leave_turn()
        if self.cork:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        try:
            self.send_head(b"")
            count = self.to_send
            if count is None:
                while data := file.read(FILE_BUFFER):
                    self.sock.sendall(self.parser.send(h11.Data(data=data)))
            elif count > 0:
                pieces = self.parser.send_with_data_passthrough(
                    h11.Data(data=t.cast(bytes, _FileSpan(file, count)))
                )
                for piece in pieces or ():
                    if isinstance(piece, _FileSpan):
                        self._send_span(piece)
                    else:
                        self.sock.sendall(piece)
                self.to_send = 0
            self.sock.sendall(self.parser.send(h11.EndOfMessage()))
        finally:
            if self.cork:
                # Uncorking sends what is left at once (a last partial segment would wait up to 200 ms).
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)

    def _send_span(self, span: _FileSpan) -> None:
        remaining = span.count
        offset: int | None = None
        if not self.tls:
            try:
                file_fd = span.file.fileno()
                offset = span.file.tell()
            except (OSError, ValueError, AttributeError):
                offset = None  # not a real file (in-memory storage)
        if offset is not None:
            # os.sendfile, not socket.sendfile: on EAGAIN (the send timeout ran out) the latter waits
            # forever in select() on a blocking socket.
            out_fd = self.sock.fileno()
            while remaining > 0:
                sent = os.sendfile(out_fd, file_fd, offset, min(remaining, 1 << 30))
                if sent == 0:
                    raise OSError("file shorter than its Content-Length")
                offset += sent
                remaining -= sent
            return
        while remaining > 0:
            data = span.file.read(min(remaining, FILE_BUFFER))
            if not data:
                raise OSError("file shorter than its Content-Length")
            self.sock.sendall(data)
            remaining -= len(data)

    def send_error(self, status: int, message: str) -> None:
        """A final answer from the server itself (the app never saw the request); the connection closes."""
        self.closing = True
        body = f"{message}\n".encode("latin-1", "replace")
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nDate: {_Date.now()}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            self.sock.sendall(head.encode("latin-1") + body)


class Server:
    """Accepts connections and serves each in its own thread, at most ``max_connections`` at once.

    It knows which connections wait for a request (no complete head received yet), so that stopping can
    close those at once and wait for the others (as Go's ``Server.Shutdown`` does), and so that at the cap
    the longest-waiting one makes room for a new client.

    With ``turns``, connections take turns to run the app: one at a time, from the moment a request is
    parsed until the app returns, first reads the request body, writes to the client or calls
    ``environ["emulator.leave_turn"]``, at which point the request gives up its turn and finishes without
    it (so an upload, a slow client or a password check never holds up the others). Python runs one
    thread at a time anyway; without turns, 32 connections fight for the interpreter lock at every system
    call and the unlucky ones wait many rounds: taking turns cut the p99 latency of manifest GETs at
    concurrency 32 from 50-90 ms to about 20 ms. It is for local storage only: an app waiting on a remote
    store (S3) in its turn would hold up every other client.
    """

    def __init__(
        self,
        sock: socket.socket,
        app: WSGIApplication,
        tls_context: ssl.SSLContext | None = None,
        *,
        turns: bool = False,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.socket = sock
        sock.setblocking(False)  # accepted until none is left: see _accept
        self.app = app
        self.tls_context = tls_context
        self.turn = threading.Lock() if turns else None
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self._idle_timeval = _timeval(idle_timeout)
        address = sock.getsockname()
        if isinstance(address, tuple):
            self.server_name, self.server_port = str(address[0]), str(address[1])
        else:
            self.server_name, self.server_port = "localhost", "80"
        self._lock = threading.Condition()
        #: Connections waiting for a request head, oldest first.
        self._waiting: collections.OrderedDict[_Connection, None] = collections.OrderedDict()
        #: Sockets accepted and not yet closed (a connection counts from its accept to its close).
        self._open = 0
        #: Connections closed to make room whose threads have not ended yet.
        self._reclaiming = 0
        self._active = 0
        self.closing = False
        self._stopping = False
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls_context

    # -- the accept loop ---------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept and dispatch until :meth:`shutdown`. At the cap the listening socket is left alone
        (new clients wait in its backlog) until a connection ends."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_read, selectors.EVENT_READ)
            listening = False
            while not self._stopping:
                with self._lock:
                    room = self._open < self.max_connections or self._can_reclaim()
                if room and not listening:
                    selector.register(self.socket, selectors.EVENT_READ)
                elif not room and listening:
                    selector.unregister(self.socket)
                listening = room
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read:
                        with contextlib.suppress(OSError):
                            while self._wake_read.recv(4096):
                                pass
                    elif not self._stopping:
                        self._accept()

    def _can_reclaim(self) -> bool:
        return bool(self._waiting) and self._reclaiming < RECLAIM_IN_FLIGHT

    def _make_room(self) -> bool:
        """Whether a connection can be accepted now. At the cap, closes the longest-waiting connection
        instead: room comes when its thread has ended (a connection counts until then, so that threads
        stay within the cap). Only called with a client in the backlog: an idle connection is never
        closed for nothing."""
        with self._lock:
            if self._open < self.max_connections:
                return True
            if not self._can_reclaim():
                return False
            connection, _ = self._waiting.popitem(last=False)
            connection.reclaimed = True
            self._reclaiming += 1
        log.debug("connection limit reached: closing a connection that waits for a request")
        with contextlib.suppress(OSError):
            socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)
        return False

    def _accept(self) -> None:
        """Accept the connections waiting, not one per wake-up: under load, TLS clients that dial spare
        connections (Go's) otherwise fill the backlog faster than it drains."""
        for _ in range(ACCEPT_BATCH):
            if not self._make_room():
                return
            try:
                sock, client_address = self.socket.accept()
            except OSError:
                return  # BlockingIOError: nothing more waiting (the socket is non-blocking)
            with self._lock:
                self._open += 1
            # Thread.start() waits until the new thread has run; under load that wait is a wait for the
            # interpreter lock, so the connection's thread is started without it (it is a daemon thread).
            _thread.start_new_thread(self._serve_connection, (sock, client_address))

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")

    def shutdown(self) -> None:
        """Make :meth:`serve_forever` return (from any thread, or a signal handler)."""
        self._stopping = True
        self._wake()

    # -- connections -------------------------------------------------------------------------------

    def _serve_connection(self, sock: socket.socket, client_address: t.Any) -> None:
        connection = _Connection(self, sock, client_address)
        try:
            if sock.family != socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls_context is not None:
                with self._lock:
                    self._waiting[connection] = None  # a client that never finishes its handshake waits too
                connection.start_tls(self._handshake(sock))
            # Blocking, with the timeout in the kernel (SO_RCVTIMEO/SO_SNDTIMEO): a Python-level timeout
            # would add a poll() before every recv and send.
            connection.sock.settimeout(None)
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._idle_timeval)
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._idle_timeval)
            connection.serve()
        except (OSError, ValueError, _Gone):
            # A failed handshake (no client certificate, an old protocol) is the client's problem,
            # and so is a connection reset.
            pass
        except Exception:
            log.exception("error on a connection from %s", client_address)
        finally:
            with contextlib.suppress(OSError):
                connection.sock.close()
            with self._lock:
                self._waiting.pop(connection, None)
                self._open -= 1
                if connection.reclaimed:
                    self._reclaiming -= 1
            self._wake()  # room for a client waiting in the backlog

    def _handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        assert self.tls_context is not None
        sock.settimeout(self.handshake_timeout)
        if self._plain_http(sock):
            log.debug("plain HTTP request on the TLS port from %s", sock.getpeername())
            with contextlib.suppress(OSError):
                sock.sendall(
                    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
                )
            _linger_close(sock)
            raise _Gone()
        tls_sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        try:
            tls_sock.do_handshake()
        except (OSError, ValueError):
            _linger_close(tls_sock)
            raise
        return tls_sock

    def _plain_http(self, sock: socket.socket) -> bool:
        """Whether the client's first bytes are an HTTP request rather than a TLS handshake record.
        :class:`_Gone` if it sends nothing within the handshake timeout."""
        deadline = time.monotonic() + self.handshake_timeout
        while True:
            try:
                first = sock.recv(5, socket.MSG_PEEK)
            except OSError:
                raise _Gone() from None
            if not first:
                raise _Gone()
            if first[0] == _TLS_HANDSHAKE_RECORD:
                return False
            if len(first) == 5 or time.monotonic() > deadline:
                return first.startswith(_HTTP_STARTS)
            time.sleep(0.005)  # MSG_PEEK returns at once while fewer bytes than asked are there

    def connection_waiting(self, connection: _Connection) -> bool:
        """``connection`` waits for its next request head; ``False`` when the server is stopping."""
        with self._lock:
            if self.closing or connection.reclaimed:
                return False
            self._waiting[connection] = None
            at_cap = self._open >= self.max_connections
        if at_cap:
            self._wake()  # the accept loop may now close this one for a client in the backlog
        return True

    def connection_busy(self, connection: _Connection) -> None:
        with self._lock:
            self._waiting.pop(connection, None)
            self._active += 1

    def request_done(self) -> None:
        with self._lock:
            self._active -= 1
            if not self._active:
                self._lock.notify_all()

    def close_idle_connections(self) -> None:
        """Stop reading new requests: waiting connections are closed now, busy ones after their
        response."""
        with self._lock:
            self.closing = True
            waiting = list(self._waiting)
            self._waiting.clear()
        for connection in waiting:
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
        with contextlib.suppress(OSError):
            self.socket.close()
        self.close_idle_connections()
        self._wake_read.close()
        self._wake_write.close()


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
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
) -> Server:
    """A server bound to ``host:port`` (``port`` 0 picks a free one); ``host`` may be ``unix://PATH``
    for a Unix socket. A failure to bind raises :class:`OSError`. ``turns``: see :class:`Server`."""
    return Server(
        bind_socket(host, port),
        app,
        ssl_context,
        turns=turns,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
    )


def _local_storage(app: WSGIApplication) -> bool:
    """Whether ``app`` is a registry on storage this machine answers (see :class:`Server`)."""
    driver = getattr(getattr(app, "registry", None), "driver", None)
    return isinstance(driver, StorageDriver) and driver.local


class BackgroundServer:
    """A server running in a daemon thread: what tests and the pytest plugin use.

    :meth:`stop` wakes the accept loop at once instead of waiting out a poll interval: a test suite that
    starts one registry per test would otherwise spend most of its time stopping them.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.app = app
        self._server = create_server(
            app, host, port, ssl_context, max_connections=max_connections, idle_timeout=idle_timeout
        )
        self.port: int = self._server.socket.getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        self.host = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"{scheme}://{self.host}"
        self._stopped = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"registry-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting connections and close the socket; requests being served finish on their own."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
        # A registry app's background services (notification senders, health checks) end with it.
        close = getattr(self.app, "close", None)
        if callable(close):
            close()

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
    max_connections: int = MAX_CONNECTIONS,
    on_ready: t.Callable[[Server], None] | None = None,
) -> None:
    """Serve in the foreground until SIGTERM or SIGINT.

    Then, as Go's ``Server.Shutdown``: stop accepting, close idle connections, and give requests being
    served up to ``drain_timeout`` seconds to finish.
    """
    server = create_server(
        app, host, port, ssl_context, turns=_local_storage(app), max_connections=max_connections
    )

    def stop(signum: int, frame: object) -> None:
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    finally:
        server.close_idle_connections()
        if drain_timeout > 0:
            server.wait_idle(drain_timeout)
        server.server_close()
        if host.startswith("unix://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(host[len("unix://") :])
