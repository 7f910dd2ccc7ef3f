"""Logging as distribution does it: a level, a formatter (text, json, logstash), fixed fields on
every line, and an Apache Combined Log Format access log on stdout."""

from __future__ import annotations

import datetime
import json
import logging
import sys
import typing as t

if t.TYPE_CHECKING:
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


class TextFormatter(logging.Formatter):
    """``time="…" level=info msg="…" key=value`` lines, logrus's text format."""

    def __init__(self, fields: t.Mapping[str, t.Any]) -> None:
        super().__init__()
        self.fields = dict(fields)

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"time={json.dumps(_timestamp(record))}",
            f"level={_LEVEL_NAMES.get(record.levelno, 'info')}",
            f"msg={json.dumps(record.getMessage())}",
        ]
        for key, value in sorted({**self.fields, **_extra_fields(record)}.items()):
            parts.append(f"{key}={json.dumps(value) if isinstance(value, str) and ' ' in value else value}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


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
        return json.dumps(document)


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
    the Authorization header is not part of the format."""
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
    return (
        f'{remote} - {user or "-"} [{stamp}] "{method} {uri} {protocol}" {status} '
        f'{size if size is not None else "-"} "{referer or ""}" "{user_agent or ""}"'
    )
