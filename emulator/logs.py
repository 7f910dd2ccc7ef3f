"""Logging as distribution does it: a level, a formatter (text, json, logstash), fixed fields on
every line, and an Apache Combined Log Format access log on stdout.

Every record is one line whatever a client sent: values that could carry a line break, a quote or a
separator are quoted and escaped (text, json and logstash alike), and the access log escapes what it
takes from the request as Apache does, so no request can forge or split a log line.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
import typing as t
from urllib.parse import quote

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .config import LogConfig

#: The registry's logger; every module logs through children of it.
log = logging.getLogger("emulator")
access_log = logging.getLogger("emulator.access")

_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
_LEVEL_NAMES = {
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
    logging.DEBUG: "debug",
}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _extra_fields(record: logging.LogRecord) -> dict[str, t.Any]:
    return dict(getattr(record, "fields", {}))


#: A text value left bare: logrus quotes everything else.
_BARE_VALUE = re.compile(r"[A-Za-z0-9._/@^+-]+")


def _json(value: t.Any) -> str:
    """JSON with every character outside printable ASCII escaped: json.dumps escapes control
    characters, quotes and non-ASCII, but leaves DEL as it is."""
    return json.dumps(value, default=str).replace("\x7f", "\\u007f")


def _text_value(value: t.Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if _BARE_VALUE.fullmatch(text) else _json(text)


class TextFormatter(logging.Formatter):
    """``time="…" level=info msg="…" key=value`` lines, logrus's text format."""

    def __init__(self, fields: t.Mapping[str, t.Any]) -> None:
        super().__init__()
        self.fields = dict(fields)

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"time={_json(_timestamp(record))}",
            f"level={_LEVEL_NAMES.get(record.levelno, 'info')}",
            f"msg={_json(record.getMessage())}",
        ]
        for key, value in sorted({**self.fields, **_extra_fields(record)}.items()):
            parts.append(f"{_text_value(key)}={_text_value(value)}")
        if record.exc_info:
            # A field like any other, as logrus writes errors: a traceback quotes what the failing
            # code was given, and that may be a client's text with line breaks in it.
            parts.append(f"error={_json(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JSONFormatter(logging.Formatter):
    def __init__(self, fields: t.Mapping[str, t.Any], *, logstash: bool = False) -> None:
        super().__init__()
        self.fields = dict(fields)
        self.logstash = logstash

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, "info")
        document: dict[str, t.Any] = {**self.fields, **_extra_fields(record)}
        if self.logstash:
            document.update({"@timestamp": _timestamp(record), "@version": "1", "level": level})
            document["message"] = record.getMessage()
        else:
            document.update({"time": _timestamp(record), "level": level, "msg": record.getMessage()})
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return _json(document)


def configure(config: LogConfig) -> None:
    """Set up the process's logging from ``log:``. Called by ``serve``, not by in-process use."""
    formatter: logging.Formatter
    if config.formatter == "text":
        formatter = TextFormatter(config.fields)
    else:
        formatter = JSONFormatter(config.fields, logstash=config.formatter == "logstash")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    log.handlers[:] = [handler]
    log.setLevel(_LEVELS[config.level])
    log.propagate = False
    access = logging.StreamHandler(sys.stdout)
    access.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [access]
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
    access_log.disabled = config.accesslog_disabled


def combined_log_line(
    *,
    remote: str,
    user: str | None,
    method: str,
    uri: str,
    protocol: str,
    status: int,
    size: int | None,
    referer: str | None,
    user_agent: str | None,
    when: datetime.datetime,
) -> str:
    """One Apache Combined Log Format line. The URI's query is kept but never credentials:
    the Authorization header is not part of the format.

    What comes from the client (request line, user, referer, user agent) is escaped as Apache
    escapes it, so the line stays one line with its quoted fields intact. ``uri``, ``referer`` and
    ``user_agent`` are WSGI strings (the bytes received, as latin-1); ``user`` is text.
    """
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
    request = " ".join(escape_wsgi(part) for part in (method, uri, protocol))
    who = escape_text(user) if user else "-"
    length = size if size is not None else "-"
    return (
        f'{remote} - {who} [{stamp}] "{request}" {status} {length} '
        f'"{escape_wsgi(referer or "")}" "{escape_wsgi(user_agent or "")}"'
    )


def _escape_byte(byte: int) -> str:
    if byte in (0x22, 0x5C):  # " and \\
        return "\\" + chr(byte)
    if byte < 0x20 or byte >= 0x7F:
        return f"\\x{byte:02x}"
    return chr(byte)


#: Byte -> its form in the access log, for every byte value.
_ESCAPED_BYTES = [_escape_byte(byte) for byte in range(256)]


def escape_bytes(data: bytes) -> str:
    """``"`` and ``\\`` backslashed, control and non-ASCII bytes as ``\\xhh``: Apache's log escaping."""
    return "".join(_ESCAPED_BYTES[byte] for byte in data)


def escape_wsgi(text: str) -> str:
    """:func:`escape_bytes` of a WSGI string, whose characters are the bytes received (latin-1)."""
    try:
        return escape_bytes(text.encode("latin-1"))
    except UnicodeEncodeError:
        # Not a WSGI string after all (a server that decoded UTF-8): log its UTF-8 bytes.
        return escape_bytes(text.encode("utf-8", "surrogateescape"))


def escape_text(text: str) -> str:
    """:func:`escape_bytes` of text, as its UTF-8 bytes."""
    return escape_bytes(text.encode("utf-8", "surrogateescape"))


def request_uri(environ: WSGIEnvironment) -> str:
    """The request-target as the client sent it, or, from a server that does not say, the path
    quoted again with the query string."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        return str(raw)
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = quote(path, safe="/;=:@,+$!*'()~", encoding="latin-1", errors="replace")
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path
