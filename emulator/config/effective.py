"""The settings in effect, written back as a configuration document in distribution's layout.

``check-config`` prints this: every default the file leaves out is shown (``serve`` with no ``http.addr``
binds ``:5000``), and what the emulator ignores is not. The document reads back into the same
:class:`~emulator.config.model.Config`. It is derived from the declarations in :mod:`.schema`: each key
the reader reads is shown from the model attribute it is read into.
"""

from __future__ import annotations

import typing as t

from .model import Config
from .schema import READ
from .schema import SCHEMA
from .schema import Node

_NANOSECONDS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9}


def effective(config: Config) -> dict[str, t.Any]:
    """*config* as a document; secrets are included (pass it to ``redacted`` before showing it)."""
    return _section(SCHEMA, config)


def go_duration(seconds: float) -> str:
    """*seconds* as a Go duration the configuration reader takes back: ``168h``, ``1m30s``, ``250ms``."""
    if seconds == 0:
        return "0s"
    rest = round(abs(seconds) * 10**9)
    text = "-" if seconds < 0 else ""
    for unit, size in _NANOSECONDS.items():
        count, rest = divmod(rest, size)
        if count:
            text += f"{count}{unit}"
    if rest:
        text += f"{rest // 10**6}ms" if rest % 10**6 == 0 else f"{rest}ns"
    return text


def _section(node: Node, holder: t.Any) -> dict[str, t.Any]:
    """The keys of map *node* whose model object is *holder*."""
    document: dict[str, t.Any] = {}
    for name, child in node.fields.items():
        if child.status != READ or (child.when is not None and not child.when(holder)):
            continue
        if child.fields and not _reads_anything(child):
            continue
        if child.show is not None:
            value = child.show(holder)
        elif child.attr == "":
            value = holder
        else:
            value = getattr(holder, child.attr or name)
        if value is not None:
            document[name] = shown_value(child, value)
    return document


def _reads_anything(node: Node) -> bool:
    return node.status == READ and (not node.fields or any(map(_reads_anything, node.fields.values())))


def shown_value(node: Node, value: t.Any) -> t.Any:
    """How the document shows *value*, read into the model by the key *node* declares."""
    if node.kind == "map" and (node.fields or node.other is None):
        return _section(node, value)
    if node.kind == "map":
        return {key: _plain(item) for key, item in value.items()}
    if node.kind == "list" and node.item is not None and node.item.kind == "map":
        return [_section(node.item, item) for item in value]
    if node.kind == "duration":
        return go_duration(value)
    return _plain(value)


def _plain(value: t.Any) -> t.Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
