"""Every configuration key, declared once.

A key's declaration (a :class:`Node`) carries its shape, type, default, bounds or choices, the Go field name
when distribution's environment overrides need one, where the reader puts it in the model, and whether the
emulator reads it, accepts and ignores it, or refuses it. From this one tree come the reader's typed getters
(:mod:`.reader`), the unknown-key warnings, the ``REGISTRY_*`` override walk (:mod:`.env`) and the
settings in effect that ``check-config`` prints (:mod:`.effective`).
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace

from .model import GiB
from .model import MiB

#: Read into the model.
READ = "read"
#: Read into the model through another key, and shown under that one (``loglevel`` is ``log.level``).
ALIAS = "alias"
#: Accepted, and without effect in the emulator.
IGNORED = "ignored"
#: Refused by name when set: the emulator does not implement it.
REFUSED = "refused"

#: The kinds of a leaf that holds one value (no keys or items below it).
SCALARS = ("str", "bool", "int", "duration")


@dataclass(frozen=True)
class Node:
    """The declaration of one key: its shape, and for a leaf its type and rules.

    :param kind: ``"map"`` (known keys in *fields*), ``"list"``, ``"str"``, ``"strlist"`` (a string or a list
        of strings), ``"bool"``, ``"int"``, ``"duration"`` (seconds), or ``"any"`` (free-form, never checked).
    :param fields: the known keys of a map.
    :param other: the shape of a map's remaining keys; ``None`` makes them unknown.
    :param item: the shape of a list's items.
    :param bare: the map may be written as a bare string naming its only key (``storage: inmemory``).
    :param envnames: upper-case segments that differ from the YAML key, because distribution matches
        segments against Go field names.
    :param default: the value when the key is absent.
    :param low: the smallest value a number or duration may have.
    :param high: the largest value a number may have.
    :param choices: the values a string (or each string of a list) may have.
    :param choices_problem: the start of the error when it has another.
    :param casefold: the value is lower-cased before it is checked against *choices*.
    :param zero_means_default: an empty string, or a number or duration at or below zero, means the default
        (distribution's rule for this key).
    :param attr: the model attribute the key is read into, on the object of the section around it; ``None``
        means the key's own name, ``""`` a section with no object of its own (its keys go on the object
        around it).
    :param show: computes the value ``check-config`` shows from that object, when it is not the attribute.
    :param when: a section is shown only when this is true of that object (the configured storage driver).
    :param status: :data:`READ`, :data:`ALIAS`, :data:`IGNORED` or :data:`REFUSED`.
    :param reason: the key an alias stands for; why a key is ignored; for a refused key, the end of
        ``is set but ...`` (``this emulator implements no middleware``).
    :param accepted: values of a refused key that are accepted, because the emulator does that anyway.
    :param differs: how the emulator's reading of a key differs from distribution 2.8's, for the README.
    """

    kind: str
    fields: Mapping[str, Node] = field(default_factory=dict)
    other: Node | None = None
    item: Node | None = None
    bare: bool = False
    envnames: Mapping[str, str] = field(default_factory=dict)
    default: t.Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    choices_problem: str = "must be one of"
    casefold: bool = False
    zero_means_default: bool = False
    attr: str | None = None
    show: t.Callable[[t.Any], t.Any] | None = None
    when: t.Callable[[t.Any], bool] | None = None
    status: str = READ
    reason: str = ""
    accepted: tuple[t.Any, ...] = ()
    differs: str = ""


STR = Node("str")
STRLIST = Node("strlist")
ANY = Node("any")
#: Header names to lists of values, sent as written.
HEADERS = Node("map", other=STRLIST)


def struct(
    fields: Mapping[str, Node],
    *,
    other: Node | None = None,
    bare: bool = False,
    attr: str | None = None,
    envnames: Mapping[str, str] | None = None,
    when: t.Callable[[t.Any], bool] | None = None,
) -> Node:
    """A map whose keys are known."""
    return Node("map", fields=fields, other=other, bare=bare, attr=attr, envnames=envnames or {}, when=when)


def group(fields: Mapping[str, Node], *, when: t.Callable[[t.Any], bool] | None = None) -> Node:
    """A map with no object of its own in the model: its keys are read onto the object around it."""
    return struct(fields, attr="", when=when)


def mapof(item: Node) -> Node:
    """A map with arbitrary keys, all of shape *item*."""
    return Node("map", other=item)


def listof(item: Node) -> Node:
    """A list whose items have shape *item*."""
    return Node("list", item=item)


def text(default: str | None = None, **rules: t.Any) -> Node:
    return Node("str", default=default, **rules)


def texts(**rules: t.Any) -> Node:
    """A list of strings (a single string is a list of one)."""
    return Node("list", item=STR, default=(), **rules)


def flag(default: bool, **rules: t.Any) -> Node:
    return Node("bool", default=default, **rules)


def number(default: int | None, **rules: t.Any) -> Node:
    return Node("int", default=default, **rules)


def seconds(default: float, **rules: t.Any) -> Node:
    return Node("duration", default=default, **rules)


def alias(of: str, shape: Node) -> Node:
    return replace(shape, status=ALIAS, reason=of)


def ignored(reason: str, shape: Node = ANY) -> Node:
    return replace(shape, status=IGNORED, reason=reason)


def refused(reason: str, shape: Node = ANY, *, accepted: tuple[t.Any, ...] = ()) -> Node:
    """Refused when set; *reason* ends ``is set but ...``."""
    return replace(shape, status=REFUSED, reason=reason, accepted=accepted)


def differing(node: Node, differs: str) -> Node:
    return replace(node, differs=differs)


def is_leaf(node: Node) -> bool:
    """Whether *node* is read whole: anything but a map of known keys or a list of such maps."""
    if node.kind == "map":
        return not node.fields
    if node.kind == "list" and node.item is not None:
        return is_leaf(node.item)
    return True


def leaves(node: Node, path: str = "") -> t.Iterator[tuple[str, Node]]:
    """Every leaf declared under *node*, by dotted path (a list's items are ``*``)."""
    if node.kind == "list" and node.item is not None and not is_leaf(node):
        yield from leaves(node.item, f"{path}.*")
        return
    if is_leaf(node) or node.status != READ:
        yield path, node
        return
    for name, child in node.fields.items():
        yield from leaves(child, f"{path}.{name}" if path else name)


_IGNORED_S3 = "a tuning of distribution's AWS SDK client that the emulator's boto3 client has no use for"
S3 = struct(
    {
        "region": text(),
        "bucket": text(),
        "rootdirectory": text(""),
        "encrypt": flag(False),
        "secure": flag(True),
        "accesskey": text(),
        "secretkey": text(),
        "host": text(),
        "port": number(None, low=1, high=65535),
        "regionendpoint": text(),
        "forcepathstyle": flag(False),
        "chunksize": number(10 * MiB, low=5 * MiB, high=5 * GiB),
        "skipverify": flag(False),
        "storageclass": text("STANDARD"),
        "v4auth": flag(True),
        "keyid": text(),
        "objectacl": text("private"),
        "multipartcopychunksize": number(32 * MiB, low=5 * MiB, high=5 * GiB),
        "multipartcopythresholdsize": number(32 * MiB, low=0, high=5 * GiB),
        "multipartcopymaxconcurrency": number(100, low=1),
        "useragent": text(),
        "sessiontoken": ignored(
            "the emulator's S3 client authenticates with `accesskey` and `secretkey` only", STR
        ),
        "redirectendpoint": ignored("the emulator never redirects blob downloads to S3", STR),
        "loglevel": ignored("the emulator logs no AWS SDK requests", STR),
        **{
            name: ignored(_IGNORED_S3, Node("bool"))
            for name in ("accelerate", "usedualstack", "usefipsendpoint")
        },
    },
    attr="s3",
)

#: The storage keys that are not drivers.
NON_DRIVERS = ("cache", "delete", "redirect", "maintenance", "tag")
#: The storage drivers distribution knows (the emulator serves the first four; s3aws is s3).
STORAGE_DRIVERS = ("inmemory", "filesystem", "s3", "s3aws", "azure", "gcs", "oss", "swift")
#: The actions an event can have, which ``ignore.actions`` names.
EVENT_ACTIONS = ("push", "pull", "mount", "delete")
_DEFAULT_DIRECTORY_URL = "https://acme-v02.api.letsencrypt.org/directory"


def _driver(name: str) -> t.Callable[[t.Any], bool]:
    return lambda storage: bool(storage.driver == name)


_ENDPOINT = struct(
    {
        "name": text(""),
        "disabled": flag(False),
        "url": text(""),
        "headers": HEADERS,
        "timeout": seconds(1.0, zero_means_default=True),
        "threshold": number(10, zero_means_default=True),
        "backoff": seconds(1.0, zero_means_default=True),
        "ignoredmediatypes": texts(),
        "ignore": group(
            {
                "mediatypes": alias("notifications.endpoints.*.ignoredmediatypes", texts()),
                "actions": texts(choices=EVENT_ACTIONS, attr="ignoredactions"),
            }
        ),
        # An extension of ours: distribution's queue is unbounded.
        "queuesize": number(10_000, low=1),
    }
)


_TLS = struct(
    {
        "certificate": text(),
        "key": text(),
        "clientcas": texts(),
        "minimumtls": text(
            "tls1.2",
            choices=("tls1.0", "tls1.1", "tls1.2", "tls1.3"),
            choices_problem="unknown minimum TLS level; must be one of",
        ),
        "ciphersuites": texts(),
        "clientauth": refused(
            "this emulator always requires and verifies a client certificate when `clientcas` is set",
            STR,
            accepted=("require-and-verify-client-cert",),
        ),
        "letsencrypt": differing(
            struct(
                {
                    "cachefile": text(),
                    "email": text(""),
                    "hosts": texts(),
                    "directoryurl": text(_DEFAULT_DIRECTORY_URL, zero_means_default=True),
                    # An extension of ours: where HTTP-01 challenges are answered.
                    "http01addr": text(":80", zero_means_default=True),
                }
            ),
            "the certificate is ordered before serving, for all hosts, with HTTP-01 challenges"
            " answered on `http01addr` (ours, default `:80`); distribution's autocert answers"
            " TLS-ALPN-01 at the first handshake",
        ),
    }
)


_LOG_LEVEL = text("info", choices=("error", "warn", "info", "debug"), casefold=True)


def _interval() -> Node:
    return seconds(10.0, low=0, zero_means_default=True)


SCHEMA = struct(
    {
        "version": text(),
        "loglevel": alias("log.level", _LOG_LEVEL),
        "log": struct(
            {
                "level": _LOG_LEVEL,
                "formatter": text("text", choices=("text", "json", "logstash")),
                "fields": mapof(ANY),
                "accesslog": group({"disabled": flag(False, attr="accesslog_disabled")}),
                "reportcaller": ignored("log lines do not name the Go function that wrote them"),
                "hooks": refused("this emulator sends no log hooks"),
            },
            attr="log",
        ),
        "storage": struct(
            {
                "inmemory": group({}, when=_driver("inmemory")),
                "filesystem": differing(
                    group(
                        {"rootdirectory": text("/var/lib/registry"), "maxthreads": number(100)},
                        when=_driver("filesystem"),
                    ),
                    "the root directory is created, and checked, at start",
                ),
                "s3": S3,
                "s3aws": alias("storage.s3", S3),
                **{
                    name: refused(f"this emulator has no {name} driver (inmemory, filesystem and s3 only)")
                    for name in ("azure", "gcs", "oss", "swift")
                },
                "cache": group(
                    {
                        "blobdescriptor": text(),
                        "layerinfo": alias("storage.cache.blobdescriptor", STR),
                        "blobdescriptorsize": number(
                            10000, low=0, when=lambda storage: storage.blobdescriptor is not None
                        ),
                    },
                ),
                "delete": differing(
                    group({"enabled": flag(False, attr="delete_enabled")}),
                    'a string `"true"` leaves deletes off, as in distribution, but with a warning',
                ),
                "redirect": group({"disable": flag(False, attr="redirect_disable")}),
                "maintenance": group(
                    {
                        "uploadpurging": struct(
                            {
                                "enabled": flag(True),
                                "age": seconds(168 * 3600.0),
                                "interval": seconds(24 * 3600.0),
                                "dryrun": flag(False),
                            },
                        ),
                        "readonly": differing(
                            group({"enabled": flag(False, attr="readonly")}),
                            "writes answer 405 with an `UNSUPPORTED` JSON body"
                            " (distribution's is plain text)",
                        ),
                    }
                ),
                "tag": ignored(
                    "tag lookups are not run in parallel, so there is nothing to limit (a 3.x key)"
                ),
            },
            other=mapof(ANY),
            bare=True,
        ),
        "http": struct(
            {
                "addr": text(":5000"),
                "net": text("tcp", choices=("tcp", "unix")),
                "prefix": text("/", zero_means_default=True),
                "host": text(),
                "relativeurls": flag(False),
                "secret": text(""),
                "draintimeout": seconds(0.0),
                "maxconnections": differing(
                    number(1000, low=1), "an extension of ours: distribution has no limit"
                ),
                "headers": HEADERS,
                "tls": _TLS,
                "http2": group({"disabled": flag(False, attr="http2_disabled")}),
                "h2c": refused("this emulator serves no cleartext HTTP/2"),
                "debug": struct(
                    {
                        "addr": text(""),
                        "prometheus": struct(
                            {"enabled": flag(False), "path": text("/metrics", zero_means_default=True)}
                        ),
                    }
                ),
            }
        ),
        "auth": struct(
            {
                "htpasswd": differing(
                    struct({"realm": text(), "path": text()}),
                    "an unusable file stops serve; `REGISTRY_AUTH=htpasswd` keeps the file's path and realm",
                ),
                "token": refused("this emulator implements no token authentication (htpasswd only)"),
                "silly": refused("this emulator implements no silly authentication (htpasswd only)"),
            },
            other=mapof(ANY),
            bare=True,
        ),
        "redis": struct(
            {
                "addr": text(""),
                "password": text(),
                "db": number(0, low=0),
                "dialtimeout": seconds(0.0),
                "readtimeout": seconds(0.0),
                "writetimeout": seconds(0.0),
                "pool": struct(
                    {
                        "maxidle": number(16, low=0),
                        "maxactive": number(64, low=0),
                        "idletimeout": seconds(300.0),
                    }
                ),
                "tls": refused("this emulator connects to redis without TLS"),
                "addrs": refused("this emulator connects to one redis addr"),
                "username": refused("this emulator authenticates to redis with a password only", STR),
            }
        ),
        "catalog": group(
            {"maxentries": number(1000, low=0, zero_means_default=True, attr="catalog_maxentries")}
        ),
        "tags": group({"maxtags": number(1000, low=0, zero_means_default=True, attr="tags_maxtags")}),
        "notifications": struct(
            {
                "events": group({"includereferences": flag(False)}),
                "endpoints": differing(
                    listof(_ENDPOINT),
                    "`ignore.actions` works on its own (as in 3.1); `queuesize` (ours) bounds each queue,"
                    " dropping the oldest event; `timeout` bounds each socket operation; a 3xx counts as"
                    " delivered",
                ),
            },
            # Go field names that differ from the YAML keys.
            envnames={"EVENTCONFIG": "events"},
        ),
        "health": struct(
            {
                "storagedriver": struct(
                    {"enabled": flag(False), "interval": _interval(), "threshold": number(0, low=0)}
                ),
                "file": listof(
                    struct(
                        {
                            "file": text(),
                            "interval": _interval(),
                            "threshold": ignored(
                                "distribution parses it but a file check fails at once", Node("int")
                            ),
                        }
                    )
                ),
                "http": listof(
                    struct(
                        {
                            "uri": text(),
                            "headers": HEADERS,
                            "statuscode": number(200, low=0, high=599, zero_means_default=True),
                            "timeout": seconds(0.0, low=0),
                            "interval": _interval(),
                            "threshold": number(0, low=0),
                        }
                    )
                ),
                "tcp": listof(
                    struct(
                        {
                            "addr": text(),
                            "timeout": seconds(0.0, low=0),
                            "interval": _interval(),
                            "threshold": number(0, low=0),
                        }
                    )
                ),
            },
            envnames={"FILECHECKERS": "file", "HTTPCHECKERS": "http", "TCPCHECKERS": "tcp"},
        ),
        "proxy": struct(
            {
                "remoteurl": text(""),
                "username": text(),
                "password": text(),
                # 0 means never; the model says None.
                "ttl": differing(
                    seconds(168 * 3600.0, low=0, show=lambda proxy: proxy.ttl or 0.0),
                    "a 3.x key: 2.8 always expires cached content after 168h",
                ),
                "exec": refused(
                    "this emulator takes the remote's credentials from `username` and `password` only"
                ),
            }
        ),
        "validation": struct(
            {
                # distribution reads false as unset, and then takes !disabled.
                "enabled": flag(False, show=lambda validation: validation.enabled),
                "disabled": flag(False, show=lambda validation: not validation.enabled),
                "manifests": group({"urls": group({"allow": texts(), "deny": texts()})}),
                "packs": differing(
                    struct({"enabled": flag(False), "floatingtags": flag(False)}),
                    "an extension of ours: checks pushed pack archives, and maintains floating tags",
                ),
            }
        ),
        "compatibility": struct(
            {
                "schema1": struct(
                    {
                        "signingkeyfile": ignored("it signs schema1 manifests, which are never served", STR),
                        "enabled": refused(
                            "this emulator neither accepts nor serves schema1 manifests", Node("bool")
                        ),
                    },
                    envnames={"TRUSTKEY": "signingkeyfile"},
                    attr="",
                )
            },
            attr="",
        ),
        "reporting": refused("this emulator reports to neither Bugsnag nor New Relic"),
        "middleware": refused("this emulator implements no middleware"),
        "policy": refused("this emulator restricts no manifest classes"),
    },
    attr="",
)
