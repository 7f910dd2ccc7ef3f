"""HTTP/1.1 over a bare socket, for tests that send what no client library would.

Malformed framing, pipelined requests, bodies that stop half way, readers that never read: the tests write
the bytes themselves and read the server's answers with a deliberately small, strict response reader::

    with RawConnection(registry.port) as conn:
        conn.send(b"GET /v2/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" * 2)
        first, second = conn.read_response(), conn.read_response()
        assert conn.is_open()

One receive buffer per connection keeps pipelined responses apart and survives a read that timed out. A
response is framed as RFC 9112 6.3 says (no body for HEAD, 1xx, 204 and 304; chunked; Content-Length; else
up to the close).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import typing as t

__all__ = [
    "ConnectionClosed",
    "MalformedResponse",
    "RawConnection",
    "RawResponse",
    "marker_request",
    "os_threads",
]

#: The longest status or header line, and the largest body, a response may have here.
MAX_LINE = 1 << 16
MAX_BODY = 1 << 28


class ConnectionClosed(Exception):
    """The server closed the connection (or reset it) before a whole response arrived.

    :attr:`how` tells which: ``"closed"`` before the first byte of a response, ``"reset"``, or ``"cut off"``
    inside a response.
    """

    def __init__(self, message: str, how: t.Literal["closed", "reset", "cut off"] = "cut off") -> None:
        super().__init__(message)
        self.how = how


class MalformedResponse(AssertionError):
    """The server sent bytes that are not an HTTP/1.x response."""


@dataclasses.dataclass(frozen=True)
class RawResponse:
    """One response as it came over the wire (a chunked body is decoded)."""

    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    chunked: bool

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of every ``name`` header, lowercased."""
        wanted = name.lower()
        return {
            token.strip().lower()
            for key, value in self.headers
            if key.lower() == wanted
            for token in value.split(",")
            if token.strip()
        }

    @property
    def closes(self) -> bool:
        """Whether the response says ``Connection: close``."""
        return "close" in self.tokens("connection")

    def __str__(self) -> str:
        return f"{self.version} {self.status} {self.reason} ({len(self.body)} bytes: {self.body[:120]!r})"


class RawConnection:
    """A TCP connection to ``host:port`` that sends bytes as given and reads responses strictly.

    :param timeout: seconds any single send or receive may block.
    :param receive_buffer: ``SO_RCVBUF`` set before connecting (a small one makes a slow reader).
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        timeout: float = 5.0,
        receive_buffer: int | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if receive_buffer is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.timeout = timeout
        # Bytes received and not yet parsed: pipelined responses arrive together.
        self._buffer = bytearray()
        #: Bytes that arrived where the connection was expected to close or stay silent.
        self.unexpected = b""

    # -- sending ---------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_until_closed(self, data: bytes) -> bool:
        """Send ``data``; whether all of it went out before the server closed or reset the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    # -- reading ---------------------------------------------------------------------------------------

    def read_response(self, method: str = "GET", *, timeout: float | None = None) -> RawResponse:
        """Read the next response (a ``100 Continue`` too: it is returned, not skipped).

        :param method: the request's method (a HEAD response has no body).
        :raises ConnectionClosed: the connection ended before a whole response.
        :raises TimeoutError: a read blocked longer than ``timeout`` (default: the connection's).
        """
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            return self._read_response(method)
        except ConnectionResetError as e:
            raise ConnectionClosed("the server reset the connection", "reset") from e

    def _read_response(self, method: str) -> RawResponse:
        status_line = self._readline()
        if not status_line:
            raise ConnectionClosed("the server closed the connection before answering", "closed")
        version, status, reason = _parse_status_line(status_line)
        headers = self._read_fields()
        response = RawResponse(version, status, reason, headers, b"", chunked=False)
        if method == "HEAD" or status < 200 or status in (204, 304):
            return response
        if "chunked" in response.tokens("transfer-encoding"):
            return dataclasses.replace(response, body=self._read_chunked(), chunked=True)
        length = response.header("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_BODY:
                raise MalformedResponse(f"bad Content-Length in a response: {length!r}")
            return dataclasses.replace(response, body=self._read_exactly(int(length)))
        return dataclasses.replace(response, body=self._read_to_close())

    def _fill(self) -> bool:
        """Receive more bytes into the buffer; ``False`` at the end of the stream."""
        data = self.sock.recv(MAX_LINE)
        self._buffer += data
        return bool(data)

    def _readline(self) -> bytes:
        """Up to and including the next LF (or what is left at the end of the stream)."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE:
                raise MalformedResponse(f"a response line longer than {MAX_LINE} bytes")
            if not self._fill():
                end = len(self._buffer) - 1
                break
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    def _read_to_close(self) -> bytes:
        while len(self._buffer) <= MAX_BODY and self._fill():
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _line(self) -> bytes:
        line = self._readline()
        if not line:
            raise ConnectionClosed("the connection ended inside a response")
        if not line.endswith(b"\r\n"):
            raise MalformedResponse(f"a response line not ended by CRLF: {line[:200]!r}")
        return line[:-2]

    def _read_fields(self) -> tuple[tuple[str, str], ...]:
        fields: list[tuple[str, str]] = []
        while line := self._line():
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise MalformedResponse(f"a malformed header line in a response: {line[:200]!r}")
            fields.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return tuple(fields)

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        if len(data) < size:
            raise ConnectionClosed(f"the connection ended after {len(data)} of {size} body bytes")
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise MalformedResponse(f"a bad chunk size in a response: {size_text!r}") from None
            if size == 0:
                self._read_fields()  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise MalformedResponse("a chunked response larger than this reader accepts")
            parts.append(self._read_exactly(size))
            if self._line():
                raise MalformedResponse("chunk data not followed by CRLF in a response")

    # -- the connection's state ------------------------------------------------------------------------

    def closes_within(self, seconds: float) -> bool:
        """Whether the server ends the connection (a close or a reset) within ``seconds``.

        Bytes arriving instead (a response to something the server should never have read as a request)
        are kept in :attr:`unexpected` and count as "not closed".
        """
        self.sock.settimeout(seconds)
        try:
            received = bool(self._buffer) or self._fill()
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        if received:
            self.unexpected += self._buffer
            self._buffer.clear()
            return False
        return True

    def is_open(self, seconds: float = 0.2) -> bool:
        """Whether the connection stays open and silent for ``seconds``."""
        return not self.closes_within(seconds) and not self.unexpected

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_status_line(line: bytes) -> tuple[str, int, str]:
    if not line.endswith(b"\r\n"):
        raise MalformedResponse(f"a status line not ended by CRLF: {line[:200]!r}")
    version, _, rest = line[:-2].decode("latin-1").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise MalformedResponse(f"not an HTTP/1.x status line: {line[:200]!r}")
    return version, int(code), reason


def os_threads(pid: int | None = None) -> int:
    """How many threads process ``pid`` (default: this one) has, as the kernel counts them.

    Not :func:`threading.active_count`: threads started with ``_thread.start_new_thread`` are invisible
    to it, and foreign threads that once called into :mod:`threading` stay in it after they end.
    """
    status = f"/proc/{os.getpid() if pid is None else pid}/status"
    with open(status, encoding="ascii") as file:
        for line in file:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Threads: line in {status}")


def marker_request(marker: str, host: str = "x") -> bytes:
    """A valid request for ``/v2/<marker>/tags/list``: placed after a bad request or body, a server that
    executes it has read attacker-controlled bytes as a request (its path shows in the request log)."""
    return f"GET /v2/{marker}/tags/list HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
