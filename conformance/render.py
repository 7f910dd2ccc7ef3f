"""Bytes from the wire as text a terminal or a page can show.

A registry under test may answer anything, and the suite sends binary blobs: printed raw, a NUL or an ESC
byte garbles the terminal (or worse, drives it). :func:`body` shows a body as text when it is text, and
otherwise as its length, media type and first bytes in hex; :func:`printable` escapes what is left of
control characters in any text before it reaches a person.
"""

from __future__ import annotations

import re

__all__ = ["HEX_HEAD", "body", "printable"]

#: How many leading bytes of a binary body are shown in hex.
HEX_HEAD = 32

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates that
# make a terminal show text in another order than it is.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Controls no text body holds (tab, newline, carriage return and form feed it may).
_BINARY = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline escaped (``\\x1b``); CRLF becomes LF."""
    return _UNPRINTABLE.sub(_escape, text.replace("\r\n", "\n"))


def _decode(head: bytes, truncated: bool) -> str | None:
    """The text ``head`` holds, or ``None`` when it is not UTF-8 text."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A character cut at the end of a truncated head is still text.
        if not truncated or error.start < len(head) - 3 or error.reason != "unexpected end of data":
            return None
        text = head[: error.start].decode("utf-8")
    return None if _BINARY.search(text) else text


def body(data: bytes | None, media_type: str | None = None, *, limit: int = 512) -> str:
    """A body as a person reads it: text up to ``limit`` bytes, or ``N bytes of TYPE: 1f 8b 08 ...``.

    Text is judged by the bytes, not by the declared type: a JSON error served as
    ``application/octet-stream`` is still shown, a ``text/plain`` body full of NUL bytes is not.
    """
    if not data:
        return ""
    head = data[:limit]
    text = _decode(head, truncated=len(data) > limit)
    if text is not None:
        more = len(data) - len(text.encode("utf-8"))
        return printable(text) + (f"... ({more} more bytes)" if more > 0 else "")
    kind = (media_type or "").split(";", 1)[0].strip() or "unknown type"
    shown = data[:HEX_HEAD].hex(" ")
    return (
        f"{len(data)} bytes of {printable(kind)}, not text: {shown}{' ...' if len(data) > HEX_HEAD else ''}"
    )
