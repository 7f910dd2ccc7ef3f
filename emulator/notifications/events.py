"""Notification events as distribution 2.8 writes them: plain dicts, ready for ``json.dumps``.

Each key appears only when it has a value, as Go's ``omitempty`` drops zero values; ``target``,
``actor`` and ``source`` are always there, even empty. Keys keep distribution's order, so an envelope
reads the same as one from distribution.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import typing as t
import uuid

#: The Content-Type of every notification POST (3.x moved to ``...events.v2+json``).
ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
#: What distribution's blob store reports for every blob, whatever its manifest says it is.
BLOB_MEDIA_TYPE = "application/octet-stream"

PUSH = "push"
PULL = "pull"
MOUNT = "mount"
DELETE = "delete"
ACTIONS = (PUSH, PULL, MOUNT, DELETE)

Event = dict[str, t.Any]

# Descriptor fields a manifest's references carry, in distribution's order.
_DESCRIPTOR_KEYS = ("mediaType", "size", "digest", "urls", "annotations", "platform")


def omit_empty(fields: t.Iterable[tuple[str, t.Any]]) -> dict[str, t.Any]:
    """The fields whose value is not empty (``""``, ``0``, ``None``, an empty list or mapping)."""
    return {key: value for key, value in fields if value not in ("", 0, None) and value != [] and value != {}}


def target(
    *,
    media_type: str = "",
    size: int = 0,
    digest: str = "",
    repository: str = "",
    from_repository: str = "",
    url: str = "",
    tag: str = "",
    references: list[dict[str, t.Any]] | None = None,
) -> dict[str, t.Any]:
    """An event's ``target``; ``length`` repeats ``size``, as distribution has always written it."""
    return omit_empty(
        [
            ("mediaType", media_type),
            ("size", size),
            ("digest", digest),
            ("length", size),
            ("repository", repository),
            ("fromRepository", from_repository),
            ("url", url),
            ("tag", tag),
            ("references", references),
        ]
    )


def references(content: bytes) -> list[dict[str, t.Any]]:
    """The descriptors a stored manifest refers to: an image's config then its layers, an index's
    manifests. The manifest was checked when it was pushed; anything unreadable gives no references."""
    try:
        document = json.loads(content)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    if isinstance(document.get("manifests"), list):
        found = document["manifests"]
    else:
        found = [document.get("config"), *(document.get("layers") or [])]
    return [
        omit_empty((key, entry.get(key)) for key in _DESCRIPTOR_KEYS)
        for entry in found
        if isinstance(entry, dict)
    ]


def request_fields(
    *,
    request_id: str,
    environ: t.Mapping[str, t.Any],
    host: str,
    method: str,
    user_agent: str,
) -> dict[str, t.Any]:
    """An event's ``request``: ``id``, ``method`` and ``useragent`` always; ``addr`` and ``host`` if known."""
    fields = {"id": request_id}
    fields |= omit_empty([("addr", remote_addr(environ)), ("host", host)])
    return fields | {"method": method, "useragent": user_agent}


def remote_addr(environ: t.Mapping[str, t.Any]) -> str:
    """The client's address as distribution reports it: the first ``X-Forwarded-For`` entry when it is an
    IP address, else ``X-Real-Ip`` when it is one, else the peer's ``host:port``."""
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
    if forwarded:
        first = forwarded.split(",")[0].strip()
        if _is_ip(first):
            return first
    real = str(environ.get("HTTP_X_REAL_IP", "")).strip()
    if real and _is_ip(real):
        return real
    peer = str(environ.get("REMOTE_ADDR", ""))
    port = str(environ.get("REMOTE_PORT", ""))
    if not port:
        return peer
    return f"[{peer}]:{port}" if ":" in peer else f"{peer}:{port}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def event(
    action: str,
    target_fields: dict[str, t.Any],
    request: dict[str, t.Any],
    actor: str | None,
    source: dict[str, t.Any],
) -> Event:
    """One event, with a new id and the current local time."""
    return {
        "id": str(uuid.uuid4()),
        "timestamp": rfc3339nano(datetime.datetime.now().astimezone()),
        "action": action,
        "target": target_fields,
        "request": request,
        "actor": omit_empty([("name", actor)]),
        "source": source,
    }


def source_fields(hostname: str, addr: str, instance_id: str) -> dict[str, t.Any]:
    """An event's ``source``: this host and the port of ``http.addr`` (the host alone when ``http.addr``
    has no port, a unix socket for one), and the id of this registry instance."""
    _, colon, port = addr.rpartition(":")
    where = hostname
    if colon and port.isdigit():
        where = f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"
    return omit_empty([("addr", where), ("instanceID", instance_id)])


def rfc3339nano(moment: datetime.datetime) -> str:
    """``moment`` as Go's ``time.RFC3339Nano`` writes it: trailing zeros of the fraction dropped, ``Z``
    for UTC, ``+hh:mm`` otherwise."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    if fraction:
        text += f".{fraction}"
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def envelope(events: list[Event]) -> bytes:
    """The body of one POST: ``{"events": [...]}``, indented by three spaces as distribution does."""
    return json.dumps({"events": events}, indent=3).encode()
