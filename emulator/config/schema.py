"""The shape of a configuration document: it guides environment overrides and finds unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field


@dataclass(frozen=True)
class Node:
    """The shape of one part of the configuration document.

    :param kind: ``"map"`` (known keys in *fields*), ``"list"``, ``"str"`` (a string leaf), ``"strlist"``
        (a string or a list of strings), ``"value"`` (a typed leaf: bool, number, duration) or ``"any"``
        (free-form, never checked).
    :param fields: the known keys of a map.
    :param other: the shape of a map's remaining keys; ``None`` makes them unknown.
    :param item: the shape of a list's items.
    :param bare: the map may be written as a bare string naming its only key (``storage: inmemory``).
    :param envnames: upper-case segments that differ from the YAML key, because distribution matches
        segments against Go field names.
    """

    kind: str
    fields: Mapping[str, Node] = field(default_factory=dict)
    other: Node | None = None
    item: Node | None = None
    bare: bool = False
    envnames: Mapping[str, str] = field(default_factory=dict)


STR = Node("str")
STRLIST = Node("strlist")
VALUE = Node("value")
ANY = Node("any")


def struct(fields: Mapping[str, Node], *, other: Node | None = None, bare: bool = False) -> Node:
    """A map whose keys are known."""
    return Node("map", fields=fields, other=other, bare=bare)


def mapof(item: Node) -> Node:
    """A map with arbitrary keys, all of shape *item*."""
    return Node("map", other=item)


def listof(item: Node) -> Node:
    """A list whose items have shape *item*."""
    return Node("list", item=item)


# The document's shape: it guides environment overrides and finds unknown keys. Sections distribution
# has but the emulator ignores are ANY, so that they neither warn nor get checked.
NON_DRIVERS = ("cache", "delete", "redirect", "maintenance", "tag")
#: The storage drivers distribution knows (the emulator serves the first four; s3aws is s3).
STORAGE_DRIVERS = ("inmemory", "filesystem", "s3", "s3aws", "azure", "gcs", "oss", "swift")
S3 = struct(
    {
        **dict.fromkeys(
            ("region", "bucket", "rootdirectory", "accesskey", "secretkey", "host", "keyid"), STR
        ),
        **dict.fromkeys(("regionendpoint", "storageclass", "objectacl", "useragent", "sessiontoken"), STR),
        **dict.fromkeys(("redirectendpoint", "loglevel"), STR),
        **dict.fromkeys(("encrypt", "secure", "forcepathstyle", "skipverify", "v4auth", "accelerate"), VALUE),
        **dict.fromkeys(("port", "chunksize", "multipartcopychunksize", "multipartcopythresholdsize"), VALUE),
        **dict.fromkeys(("multipartcopymaxconcurrency", "usedualstack", "usefipsendpoint"), VALUE),
    }
)
SCHEMA = struct(
    {
        "version": STR,
        "loglevel": STR,
        "log": struct(
            {
                "level": STR,
                "formatter": STR,
                "fields": mapof(ANY),
                "accesslog": struct({"disabled": VALUE}),
                "reportcaller": ANY,
                "hooks": ANY,
            }
        ),
        "storage": struct(
            {
                "inmemory": struct({}),
                "filesystem": struct({"rootdirectory": STR, "maxthreads": VALUE}),
                "s3": S3,
                "s3aws": S3,
                "cache": struct({"blobdescriptor": STR, "layerinfo": STR, "blobdescriptorsize": VALUE}),
                "delete": struct({"enabled": VALUE}),
                "redirect": struct({"disable": VALUE}),
                "maintenance": struct(
                    {
                        "uploadpurging": struct(
                            dict.fromkeys(("enabled", "age", "interval", "dryrun"), VALUE)
                        ),
                        "readonly": struct({"enabled": VALUE}),
                    }
                ),
                "tag": ANY,
            },
            other=mapof(ANY),
            bare=True,
        ),
        "auth": struct({"htpasswd": struct({"realm": STR, "path": STR})}, other=mapof(ANY), bare=True),
        "http": struct(
            {
                **dict.fromkeys(("addr", "net", "prefix", "host", "secret"), STR),
                **dict.fromkeys(("relativeurls", "draintimeout", "maxconnections"), VALUE),
                "headers": mapof(STRLIST),
                "tls": struct(
                    {
                        "certificate": STR,
                        "key": STR,
                        "clientcas": listof(STR),
                        "minimumtls": STR,
                        "ciphersuites": listof(STR),
                        "clientauth": ANY,
                        "letsencrypt": struct(
                            {"cachefile": STR, "email": STR, "hosts": listof(STR), "directoryurl": STR}
                        ),
                    }
                ),
                "http2": struct({"disabled": VALUE}),
                "h2c": ANY,
                "debug": ANY,
            }
        ),
        "redis": struct(
            {
                "addr": STR,
                "password": STR,
                **dict.fromkeys(("db", "dialtimeout", "readtimeout", "writetimeout"), VALUE),
                "pool": struct(dict.fromkeys(("maxidle", "maxactive", "idletimeout"), VALUE)),
                "tls": ANY,
                "addrs": ANY,
                "username": STR,
            }
        ),
        "catalog": struct({"maxentries": VALUE}),
        "tags": struct({"maxtags": VALUE}),
        # Go field names that differ from the YAML keys.
        "notifications": Node("any", envnames={"EVENTCONFIG": "events"}),
        "health": Node(
            "any", envnames={"FILECHECKERS": "file", "HTTPCHECKERS": "http", "TCPCHECKERS": "tcp"}
        ),
        "compatibility": struct({"schema1": Node("any", envnames={"TRUSTKEY": "signingkeyfile"})}, other=ANY),
        **dict.fromkeys(
            ("validation", "reporting", "proxy", "middleware", "debug", "hooks", "policy"),
            ANY,
        ),
    }
)
