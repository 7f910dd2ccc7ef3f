"""Notification events as distribution 2.8 writes them, and how this registry gets there cheaply.

A request thread only records what happened (:class:`Captured`: a few strings and numbers, an id from a
counter, ``time.time()``); the endpoint's sender turns it into JSON (:class:`Encoder`) while it gathers a
batch. Each key appears only when it has a value, as Go's ``omitempty`` drops zero values; ``target``,
``actor`` and ``source`` are always there, even empty. Keys keep distribution's order, so an event reads
the same as one from distribution. The JSON is compact: distribution indents by three spaces, which
changes no value and costs a third more bytes.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import ipaddress
import itertools
import json
import typing as t
import uuid

from .. import forwarded
from .. import routes
from ..serving import HEAD_SIZE

if t.TYPE_CHECKING:
    from werkzeug.routing import Map

#: The Content-Type of every notification POST (3.x moved to ``...events.v2+json``).
ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
#: What distribution's blob store reports for every blob, whatever its manifest says it is.
BLOB_MEDIA_TYPE = "application/octet-stream"

PUSH = "push"
PULL = "pull"
MOUNT = "mount"
DELETE = "delete"
ACTIONS = (PUSH, PULL, MOUNT, DELETE)

#: An event as JSON decodes it.
Document = dict[str, t.Any]

# Descriptor fields a manifest's references carry, in distribution's order.
_DESCRIPTOR_KEYS = ("mediaType", "size", "digest", "urls", "annotations", "platform")
#: The value that names the digest in each route a target's URL is built for.
_DIGEST_VALUE = {routes.BLOB: "digest", routes.MANIFEST: "reference"}
#: Encoded events an :class:`Encoder` remembers before it starts over.
MEMO_SIZE = 4096
#: The most characters of one request header an event keeps: a longer value is cut. No user agent or
#: forwarding header of a real client comes near it, and without a bound a full queue of events
#: would hold every header a client sent, up to 1 MiB each.
CAPTURED_VALUE_SIZE = 1024

_dumps = json.JSONEncoder(separators=(",", ":")).encode


def omit_empty(fields: t.Iterable[tuple[str, t.Any]]) -> dict[str, t.Any]:
    """The fields whose value is not empty (``""``, ``0``, ``None``, an empty list or mapping)."""
    return {key: value for key, value in fields if value not in ("", 0, None) and value != [] and value != {}}


def target_fields(
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


#: A timestamp up to its zone, with the microseconds. This module's formats are %-formats: every event
#: goes through them, and a %-format costs the interpreter less than a format spec in an f-string.
_FRACTION_FORMAT = "%s.%06d"


def timestamp(seconds: float) -> str:
    """``time.time()``'s ``seconds`` in local time as :func:`rfc3339nano` writes it. The date, time and
    offset are worked out once per second: most events of a busy registry share them."""
    # Rounded as datetime.fromtimestamp rounds: the fraction alone, half to even.
    whole = int(seconds)
    micros = round((seconds - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    head, zone = _second(whole)
    if micros:
        return (_FRACTION_FORMAT % (head, micros)).rstrip("0") + zone
    return head + zone


@functools.lru_cache(maxsize=4)
def _second(whole: int) -> tuple[str, str]:
    text = rfc3339nano(datetime.datetime.fromtimestamp(whole).astimezone())
    zone = "Z" if text.endswith("Z") else text[-6:]
    return text[: -len(zone)], zone


#: The bits of an id's number that its last 12 hex digits show.
ID_MASK = 0xFFFFFFFFFFFF
#: An id: the registry's prefix, then 12 hex digits of the number.
ID_FORMAT = "%s%012x"
#: An encoded event: its id, timestamp, the memoized JSON up to the request id, that id, the rest.
_EVENT_FORMAT = '{"id":"' + ID_FORMAT + '","timestamp":"%s",%s' + ID_FORMAT + "%s"


class Ids:
    """Event and request ids: distribution's are random UUIDs (version 4), whose 2 us from
    ``os.urandom`` each would be spent in the request thread. These are one random version-4 UUID per
    registry whose last 48 bits count up, so they are still UUIDs, unique within the registry and, by
    the 74 random bits of the rest, across registries. :attr:`take` is a C-level counter increment,
    safe from any thread. The sender writes ids with :data:`ID_FORMAT` inside the event's one %-format;
    :meth:`format` is the same spelling for one id."""

    def __init__(self) -> None:
        random = uuid.uuid4()
        #: What every id starts with; :data:`ID_FORMAT` puts a number's last 48 bits after it.
        self.prefix = str(random)[:24]
        #: The next number: the counter's own ``__next__``, called from any thread without a Python frame.
        self.take: t.Callable[[], int] = itertools.count(random.int & ID_MASK).__next__

    def format(self, number: int) -> str:
        return ID_FORMAT % (self.prefix, number & ID_MASK)


#: The environ values an event is built from, read by the request in one call and turned into
#: distribution's ``request`` fields and the target's URL in the sender: ``remote_addr``'s, the method,
#: the user agent and :func:`~emulator.forwarded.base_url`'s.
ENVIRON_KEYS = tuple(
    dict.fromkeys(
        (
            "HTTP_X_FORWARDED_FOR",
            "HTTP_X_REAL_IP",
            "REMOTE_ADDR",
            "REMOTE_PORT",
            "REQUEST_METHOD",
            "HTTP_USER_AGENT",
            *forwarded.ENVIRON_KEYS,
        )
    )
)


@dataclasses.dataclass(slots=True, eq=False)
class CapturedRequest:
    """What the events of one request share: its id, the environ values of :data:`ENVIRON_KEYS`
    (``None`` for those it lacks, each cut at :data:`CAPTURED_VALUE_SIZE` characters), the actor and what
    the URLs of its targets are built from.

    The request thread only copies references; the sender works out the fields from them (:meth:`fields`)
    once per kind of event (see :class:`Encoder`). It keeps the script name rather than the request's
    bound routes: a queued event then holds a few strings, not a MapAdapter and its attributes, so a full
    queue stays small and the garbage collector has fewer objects to walk while events wait.
    """

    number: int
    values: tuple[t.Any, ...]
    #: A bound on the characters of ``values`` and ``script_name`` that came from the client: the request
    #: head's size when our server counted it and it is at most :data:`CAPTURED_VALUE_SIZE` (our server's
    #: script name is its own), else the characters in both.
    size: int
    #: The user name, ``""`` for none.
    actor: str
    #: ``SCRIPT_NAME``, where the registry's routes are mounted.
    script_name: str
    api: str

    @classmethod
    def of(
        cls,
        number: int,
        environ: t.Mapping[str, t.Any],
        actor: str,
        script_name: str,
        api: str,
    ) -> CapturedRequest:
        values = tuple(map(environ.get, ENVIRON_KEYS))
        # Our server counted the head: when it is short, so is every header value, and neither the cut
        # nor the sum need be made (a third of this capture). A cut leaves a shorter value as it is.
        size = environ.get(HEAD_SIZE, CAPTURED_VALUE_SIZE + 1)
        if size > CAPTURED_VALUE_SIZE:
            values = tuple(value[:CAPTURED_VALUE_SIZE] if value else value for value in values)
            # Set by the WSGI server, or by a prefix middleware from a header: bounded like the rest.
            script_name = script_name[:CAPTURED_VALUE_SIZE]
            size = sum(map(len, filter(None, values))) + len(script_name)
        # Positional: keyword arguments to a dataclass cost a request as much as the rest of this.
        return cls(number, values, size, actor, script_name, api)

    def environ(self) -> dict[str, t.Any]:
        """The captured part of the request's environ."""
        return {key: value for key, value in zip(ENVIRON_KEYS, self.values, strict=True) if value is not None}

    def url_base(self, host_setting: str | None) -> str:
        """What a target's URL starts with, given ``http.host`` (``None`` or ``""`` when unset)."""
        return forwarded.base_url(self.environ(), host_setting)

    def fields(self) -> dict[str, str]:
        """distribution's ``request`` object, without its id: each key only when it has a value, but
        ``method`` and ``useragent`` always."""
        environ = self.environ()
        return omit_empty([("addr", remote_addr(environ)), ("host", environ.get("HTTP_HOST", ""))]) | {
            "method": environ.get("REQUEST_METHOD", ""),
            "useragent": environ.get("HTTP_USER_AGENT", ""),
        }


class Target(t.NamedTuple):
    """What an event is about, its action included: all of it but the request it came from, its id and
    its time. Handlers make one per event, so it is a tuple, and the encoder's memo keys on it.

    :param route: the route of the target's URL (:data:`~emulator.routes.BLOB` or
        :data:`~emulator.routes.MANIFEST`), ``""`` for none (deletes).
    """

    action: str
    media_type: str = ""
    size: int = 0
    digest: str = ""
    repository: str = ""
    from_repository: str = ""
    route: str = ""
    tag: str = ""


class Captured(t.NamedTuple):
    """One event as its request saw it, to be encoded by the sender (:class:`Encoder`).

    :param manifest: the content of the manifest whose descriptors make ``target.references`` (the
        stored bytes, shared, not copied), or ``None`` to leave them out: the sender reads them.
    """

    request: CapturedRequest
    number: int
    when: float
    target: Target
    manifest: bytes | None = None


class Encoder:
    """Turns :class:`Captured` events into distribution's JSON, one encoder per sender thread.

    Everything but the two ids and the timestamp is the same for every pull of one manifest by one
    client connection, which is most of a busy registry's events: those parts are remembered (up to
    :data:`MEMO_SIZE` kinds of event, then forgotten all at once), so a repeated event costs a dictionary
    lookup and three string formats instead of building and dumping three dictionaries.

    :param url_map: the registry's routes, which targets' URLs are built from.
    """

    def __init__(
        self,
        ids: Ids,
        source: dict[str, t.Any],
        url_map: Map,
        *,
        host_setting: str | None = None,
        relative: bool = False,
    ) -> None:
        self._ids = ids
        self._source = _dumps(source)
        self._url_map = url_map
        #: ``http.host``, ``None`` or ``""`` when unset.
        self._host_setting = host_setting
        #: ``http.relativeurls``: targets' URLs are paths.
        self._relative = relative
        self._memo: dict[tuple[t.Any, ...], tuple[str, str]] = {}

    def __call__(self, event: Captured) -> bytes:
        request, number, when, target, manifest = event
        # Requests with large headers are not remembered: the memo stays within a few MiB.
        if manifest is None and request.size <= CAPTURED_VALUE_SIZE:
            key = (target, request.values, request.actor, request.script_name, request.api)
            parts = self._memo.get(key)
            if parts is None:
                if len(self._memo) >= MEMO_SIZE:
                    self._memo.clear()
                parts = self._memo[key] = self._parts(event)
        else:
            parts = self._parts(event)
        prefix = self._ids.prefix
        # One %-format for the whole event: ids as Ids.format writes them, without a call each.
        head, tail = parts
        values = (prefix, number & ID_MASK, timestamp(when), head, prefix, request.number & ID_MASK, tail)
        return (_EVENT_FORMAT % values).encode()

    def _url(self, request: CapturedRequest, target: Target) -> str:
        if not target.route:
            return ""
        # Built as Context.url_for builds it: a path under the request's script name, after the base.
        # The server name is never read, as no URL is built external here.
        adapter = self._url_map.bind("", script_name=request.script_name)
        values = {"name": target.repository, _DIGEST_VALUE[target.route]: target.digest}
        base = "" if self._relative else request.url_base(self._host_setting)
        return base + adapter.build(f"{request.api}.{target.route}", values)

    def _parts(self, event: Captured) -> tuple[str, str]:
        """The event's JSON around the request id, after the event's own id and timestamp."""
        request, target = event.request, event.target
        fields = target_fields(
            media_type=target.media_type,
            size=target.size,
            digest=target.digest,
            repository=target.repository,
            from_repository=target.from_repository,
            url=self._url(request, target),
            tag=target.tag,
            references=None if event.manifest is None else references(event.manifest),
        )
        # method and useragent are always there, so the request's fields never make an empty object.
        rest = _dumps(request.fields())
        actor = _dumps(omit_empty([("name", request.actor)]))
        head = f'"action":{_dumps(target.action)},"target":{_dumps(fields)},"request":{{"id":"'
        return head, f'",{rest[1:]},"actor":{actor},"source":{self._source}}}'


def encode_document(document: Document) -> bytes:
    """An event given as a document (a tool's or a test's), as compact JSON."""
    return _dumps(document).encode()


def envelope(events: t.Sequence[bytes]) -> bytes:
    """The body of one POST: ``{"events": [...]}`` around events already encoded."""
    return b'{"events":[' + b",".join(events) + b"]}"
