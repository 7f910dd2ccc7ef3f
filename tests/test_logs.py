"""Log lines a client cannot forge: the text, json and logstash formatters and the access log keep every
record on one line, whatever a request carries, and give the values back exactly once unescaped."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re
import sys
import typing as t

import pytest

from emulator.logs import JSONFormatter
from emulator.logs import TextFormatter
from emulator.logs import combined_log_line
from emulator.logs import escape_bytes
from emulator.logs import request_uri
from tests.rawhttp import RawConnection

if t.TYPE_CHECKING:
    from pax_registry_fixtures.server import RegistryServer

#: Values a client can put into a logged field, and what each is meant to break.
HOSTILE_VALUES = {
    "line feed": 'x\ntime="2020-01-01T00:00:00Z" level=error msg="forged"',
    "carriage return": "x\rlevel=error",
    "CR LF": "/v2/a\r\nb/tags/list",
    "quote": 'say "hi"',
    "backslash": "a\\b",
    "equals": "a=b",
    "space": "a b",
    "tab": "a\tb",
    "NUL": "a\x00b",
    "DEL": "a\x7fb",
    "escape sequence": "\x1b[31mred",
    "next line (C1)": "a\x85b",
    "line separator": "a\u2028b",
    "non-ASCII": "caf\u00e9 \u2603",
    "replacement character": "\ufffd",
    "empty": "",
}
#: Printable ASCII only: nothing that moves the cursor, ends a line or needs decoding.
PRINTABLE_LINE = re.compile(r"[\x20-\x7e]*")
#: ``key=value`` pairs of a text line, a value bare or JSON-quoted.
TEXT_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?: |$)')


def record(
    message: str, fields: t.Mapping[str, t.Any] | None = None, *, error: BaseException | None = None
) -> logging.LogRecord:
    entry = logging.LogRecord("emulator", logging.INFO, __file__, 1, "%s", (message,), None)
    if error is not None:
        try:
            raise error
        except BaseException:
            entry.exc_info = sys.exc_info()
    if fields is not None:
        entry.fields = dict(fields)
    return entry


def parse_text(line: str) -> dict[str, str]:
    """A text line back into its fields; fails unless the whole line is ``key=value`` pairs."""
    pairs = TEXT_PAIR.findall(line)
    assert " ".join(f"{key}={value}" for key, value in pairs) == line, line
    return {key: json.loads(value) if value.startswith('"') else value for key, value in pairs}


# -- text --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
def test_text_quotes_and_escapes_hostile_values(value: str) -> None:
    formatter = TextFormatter({"service": "registry", "configured": value})
    line = formatter.format(record(f"serving {value}", {"http.request.uri": value}))
    assert PRINTABLE_LINE.fullmatch(line), line
    fields = parse_text(line)
    assert fields["msg"] == f"serving {value}"
    assert fields["http.request.uri"] == value
    assert fields["configured"] == value
    assert fields["level"] == "info"
    assert list(fields) == ["time", "level", "msg", "configured", "http.request.uri", "service"]


def test_text_leaves_plain_values_bare_and_quotes_the_rest_as_logrus_does() -> None:
    line = TextFormatter({"service": "registry"}).format(
        record("done", {"status": 404, "go.version": "go1.20", "addr": "127.0.0.1:5000", "none": None})
    )
    assert " service=registry" in line
    assert " status=404" in line
    assert " go.version=go1.20" in line
    assert ' addr="127.0.0.1:5000"' in line
    assert " none=None" in line
    assert ' msg="done"' in line


def test_text_puts_a_traceback_on_the_same_line() -> None:
    """An exception's message may quote a client's path, line breaks and all."""
    line = TextFormatter({}).format(record("failed", error=ValueError("bad path: /a\r\nlevel=error x")))
    assert PRINTABLE_LINE.fullmatch(line), line
    error = parse_text(line)["error"]
    assert error.startswith("Traceback (most recent call last):\n")
    assert error.endswith("ValueError: bad path: /a\r\nlevel=error x")


# -- json and logstash ------------------------------------------------------------------------------------


@pytest.mark.parametrize("logstash", [False, True], ids=["json", "logstash"])
@pytest.mark.parametrize("value", HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
def test_json_formatters_escape_hostile_values(value: str, logstash: bool) -> None:
    formatter = JSONFormatter({"configured": value}, logstash=logstash)
    line = formatter.format(record(f"serving {value}", {"http.request.uri": value}, error=KeyError(value)))
    assert PRINTABLE_LINE.fullmatch(line), line
    document = json.loads(line)
    assert document["message" if logstash else "msg"] == f"serving {value}"
    assert document["http.request.uri"] == value
    assert document["configured"] == value
    assert document["error"].endswith(f"KeyError: {value!r}")


# -- the access log ---------------------------------------------------------------------------------------

WHEN = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def access_line(**overrides: t.Any) -> str:
    fields: dict[str, t.Any] = {
        "remote": "127.0.0.1",
        "user": None,
        "method": "GET",
        "uri": "/v2/",
        "protocol": "HTTP/1.1",
        "status": 200,
        "size": 2,
        "referer": None,
        "user_agent": "docker/24",
        "when": WHEN,
    }
    fields.update(overrides)
    return combined_log_line(**fields)


def test_access_line_is_combined_log_format() -> None:
    assert access_line(user="alice", referer="http://x/") == (
        '127.0.0.1 - alice [06/May/2024:07:08:09 +0000] "GET /v2/ HTTP/1.1" 200 2 "http://x/" "docker/24"'
    )
    assert access_line(size=None, user_agent=None) == (
        '127.0.0.1 - - [06/May/2024:07:08:09 +0000] "GET /v2/ HTTP/1.1" 200 - "" ""'
    )


def test_access_line_escapes_as_apache_does() -> None:
    # WSGI strings: each character is one byte received, so "\xff" is the byte 0xff.
    line = access_line(
        method="GET",
        uri='/v2/a"b\\c\r\nd\x00\x7f\xff?q=\t',
        user="j\u00f6rg\n",
        referer='x" "forged',
        user_agent="agent\r\n127.0.0.1 - - [forged]",
    )
    assert line == (
        "127.0.0.1 - j\\xc3\\xb6rg\\x0a [06/May/2024:07:08:09 +0000] "
        '"GET /v2/a\\"b\\\\c\\x0d\\x0ad\\x00\\x7f\\xff?q=\\x09 HTTP/1.1" 200 2 '
        '"x\\" \\"forged" "agent\\x0d\\x0a127.0.0.1 - - [forged]"'
    )


def test_escape_bytes_leaves_printable_ascii_alone_and_escapes_every_other_byte() -> None:
    printable = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")
    assert escape_bytes(printable) == printable.decode()
    for byte in [*range(0x20), *range(0x7F, 0x100)]:
        assert escape_bytes(bytes([byte])) == f"\\x{byte:02x}"
    assert escape_bytes(b'"\\') == '\\"\\\\'


def test_request_uri_is_what_the_client_sent_else_the_path_quoted_again() -> None:
    sent = {"REQUEST_URI": "/v2/a%2e%2e/x?last=%0d", "PATH_INFO": "/v2/a../x", "QUERY_STRING": "last=%0d"}
    assert request_uri(sent) == "/v2/a%2e%2e/x?last=%0d"
    assert request_uri({**sent, "REQUEST_URI": "", "RAW_URI": "/raw"}) == "/raw"
    decoded_only = {"PATH_INFO": "/v2/a\r\nb c/\xff", "QUERY_STRING": "n=1"}
    assert request_uri(decoded_only) == "/v2/a%0D%0Ab%20c/%FF?n=1"
    assert request_uri({"SCRIPT_NAME": "/mount", "PATH_INFO": "/v2/"}) == "/mount/v2/"


# -- end to end: a served registry ------------------------------------------------------------------------


@pytest.fixture
def captured() -> t.Iterator[tuple[io.StringIO, io.StringIO]]:
    """The registry's log (text format, debug) and its access log, as written."""
    loggers = {name: logging.getLogger(name) for name in ("emulator", "emulator.access")}
    saved = {name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for name, lg in loggers.items()}
    streams = (io.StringIO(), io.StringIO())
    formatters: tuple[logging.Formatter, logging.Formatter] = (
        TextFormatter({"service": "registry"}),
        logging.Formatter("%(message)s"),
    )
    for logger, stream, formatter in zip(loggers.values(), streams, formatters, strict=True):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.disabled = False
    try:
        yield streams
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            logger = loggers[name]
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def test_a_served_request_cannot_forge_log_lines(
    pax_registry: RegistryServer, captured: tuple[io.StringIO, io.StringIO]
) -> None:
    log, access = captured
    forged = b'time="2020-01-01T00:00:00Z" level=error msg="forged"'
    target = b"/v2/a%0d%0a" + forged.replace(b" ", b"%20").replace(b'"', b"%22") + b"/tags/list?last=%0a"
    with RawConnection(pax_registry.port, timeout=10) as connection:
        connection.send(
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
            b'User-Agent: agent" "\xff\\\r\nReferer: http://r/"\r\nConnection: close\r\n\r\n'
        )
        answer = connection.read_response()
    assert answer.status == 400, answer
    assert json.loads(answer.body)["errors"][0]["code"] == "NAME_INVALID"
    log_lines = log.getvalue().splitlines()
    assert log_lines, "the registry logged nothing at debug level"
    for line in log_lines:
        assert PRINTABLE_LINE.fullmatch(line), line
        assert line.startswith("time="), line
        parse_text(line)
    completed = [parse_text(line) for line in log_lines if '"response completed"' in line]
    # As distribution logs it: the request-target as sent.
    assert [fields["http.request.uri"] for fields in completed] == [
        "/v2/a%0d%0atime=%222020-01-01T00:00:00Z%22%20level=error%20msg=%22forged%22/tags/list?last=%0a"
    ]
    (access_entry,) = access.getvalue().splitlines()
    assert PRINTABLE_LINE.fullmatch(access_entry), access_entry
    assert '"GET /v2/a%0d%0atime=%222020-01-01T00:00:00Z%22%20level=error' in access_entry
    assert re.search(r' 400 \d+ "http://r/\\"" "agent\\" \\"\\xff\\\\"$', access_entry), access_entry
