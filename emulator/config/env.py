"""Apply ``REGISTRY_*`` environment variables to a raw configuration document.

This follows distribution's rules: variables are applied in sorted name order, the name after
``REGISTRY_`` is split on ``_`` and each segment names a key, matched case-insensitively; values are
YAML-decoded. The walk is guided by a :class:`Node` tree describing the document's shape, which
:mod:`.schema` declares; this module knows nothing about what the keys mean.
"""

from __future__ import annotations

import copy
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import yaml

from .schema import ANY
from .schema import SCALARS
from .schema import STR
from .schema import Node
from .schema import listof

PREFIX = "REGISTRY_"
#: Names the file; never applied as an override.
PATH_VARIABLE = "REGISTRY_CONFIGURATION_PATH"


class EnvError(Exception):
    """An environment variable that cannot be applied.

    :param variable: the variable's name.
    :param key: the dotted key it was aimed at (or the variable's name).
    :param problem: what is wrong.
    """

    def __init__(self, variable: str, key: str, problem: str) -> None:
        super().__init__(variable, key, problem)
        self.variable = variable
        self.key = key
        self.problem = problem


@dataclass
class Applied:
    """What :func:`apply` did besides changing the document.

    :param warnings: one line per variable that was ignored.
    :param origins: dotted key -> the variable that set it (or created it).
    """

    warnings: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)


def apply(document: dict[str, Any], environ: Mapping[str, str], schema: Node) -> Applied:
    """Apply every ``REGISTRY_*`` variable of *environ* to *document*, in place.

    :raises EnvError: a value is not valid YAML, or a list index is wrong.
    """
    applied = Applied()
    # Sorted, so that REGISTRY_AUTH replaces the section before REGISTRY_AUTH_HTPASSWD_REALM fills it.
    for name in sorted(environ):
        if name.startswith(PREFIX) and name != PATH_VARIABLE:
            _apply_one(document, schema, name, environ[name], applied)
    return applied


def _apply_one(document: dict[str, Any], schema: Node, name: str, value: str, applied: Applied) -> None:
    segments = name[len(PREFIX) :].split("_")
    # Resolve the whole path before changing anything, so that an unrecognized segment deep down
    # leaves no half-created sections behind.
    steps = _resolve(document, schema, segments, name)
    if steps is None:
        applied.warnings.append(f"ignoring unrecognized environment variable {name}")
        return
    container: Any = document
    path: list[str] = []
    for key, node in steps[:-1]:
        path.append(str(key))
        child = _get(container, key)
        if child is None:
            child = [] if node.kind in ("list", "strlist") else {}
            _put(container, key, child)
            applied.origins[".".join(path)] = name
        container = child
    key, node = steps[-1]
    path.append(str(key))
    _assign(container, key, node, value, name, ".".join(path), applied)


def _resolve(
    document: dict[str, Any], schema: Node, segments: list[str], name: str
) -> list[tuple[Any, Node]] | None:
    """The (key, shape) of each segment, or ``None`` if a segment is not a known key."""
    steps: list[tuple[Any, Node]] = []
    container: Any = document
    node = schema
    path: list[str] = []
    for position, segment in enumerate(segments):
        if not segment:
            return None
        if isinstance(container, list):
            key: Any = _index(container, segment, name, ".".join(path))
            child_node = node.item or ANY
        elif isinstance(container, dict):
            found = _key(container, node, segment)
            if found is None:
                return None
            key, child_node = found
        else:
            # A leaf string, boolean or number has no keys to set.
            return None
        steps.append((key, child_node))
        path.append(str(key))
        if position == len(segments) - 1:
            break
        child = _get(container, key)
        if child is None:
            if child_node.kind in SCALARS:
                return None
            child = [] if child_node.kind in ("list", "strlist") else {}
        elif not isinstance(child, (dict, list)):
            if child_node.kind in ("map", "any", "list", "strlist"):
                raise EnvError(
                    name, ".".join(path), f"cannot set a key inside a {type(child).__name__} value"
                )
            return None
        if child_node.kind == "strlist":
            child_node = listof(STR)
        container = child
        node = child_node
    return steps


def _key(container: dict[Any, Any], node: Node, segment: str) -> tuple[str, Node] | None:
    upper = segment.upper()
    if upper in node.envnames:
        key = node.envnames[upper]
        return key, node.fields.get(key) or node.other or ANY
    if node.kind == "map" and segment.lower() in node.fields:
        return segment.lower(), node.fields[segment.lower()]
    if node.kind == "map" and node.other is None:
        return None
    if node.kind not in ("map", "any"):
        return None
    # Free-form keys: reuse an existing key whatever its case (X-Frame-Options), else make a lower-case one.
    existing = next((k for k in container if isinstance(k, str) and k.upper() == upper), None)
    return existing or segment.lower(), node.other or ANY


def _index(container: list[Any], segment: str, name: str, dotted: str) -> int:
    if not (segment.isascii() and segment.isdigit()):
        raise EnvError(name, dotted, f"non-numeric index {segment!r}")
    index = int(segment)
    # Setting one past the end appends, so that _0, _1, ... can build a list from nothing.
    if index > len(container):
        raise EnvError(name, dotted, f"undefined index {index} (the list has {len(container)} elements)")
    return index


def _get(container: Any, key: Any) -> Any:
    if isinstance(container, list):
        return container[key] if key < len(container) else None
    return container.get(key)


def _put(container: Any, key: Any, value: Any) -> None:
    if isinstance(container, list) and key == len(container):
        container.append(value)
    else:
        container[key] = value


def _assign(
    container: Any, key: Any, node: Node, text: str, name: str, dotted: str, applied: Applied
) -> None:
    value = _decode(text, node, name, dotted)
    previous = _get(container, key)
    kept: str | None = None
    if node.bare and isinstance(value, str):
        # A bare type name replaces the whole section, as in distribution (REGISTRY_STORAGE=inmemory drops
        # cache, delete, ...). But when the section already has that type, its parameters are kept:
        # distribution would turn REGISTRY_AUTH=htpasswd over a file with htpasswd realm and path into
        # {htpasswd: {}}, and then fail to start for lack of a path, which is what Spectro's documented
        # `docker run -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=...` would hit.
        params: Any = {}
        if isinstance(previous, dict) and isinstance(previous.get(value), dict):
            params = previous[value]
            kept = f"{dotted}.{value}"
        value = {value: params}
    _put(container, key, value)
    prefix = dotted + "."
    for origin in [k for k in applied.origins if k == dotted or k.startswith(prefix)]:
        if kept is None or not (origin == kept or origin.startswith(kept + ".")):
            del applied.origins[origin]
    if kept is None:
        applied.origins[dotted] = name


def _decode(text: str, node: Node, name: str, dotted: str) -> Any:
    try:
        value = load_yaml(text, _text_keeper(node))
    except yaml.YAMLError as exc:
        if node.kind in ("str", "strlist"):
            # Meant as a string: a secret such as "%x{" need not be valid YAML.
            return text
        raise EnvError(name, dotted, f"invalid YAML value: {yaml_problem(exc)}") from None
    if node.kind == "str" and not isinstance(value, str):
        # REGISTRY_HTTP_SECRET=123 means the string "123", and an empty value the empty string.
        return text
    if node.kind == "strlist" and not isinstance(value, (str, list)):
        return text
    return copy.deepcopy(value)


_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


def load_yaml(text: str, adjust: t.Callable[[yaml.Node], None] | None = None) -> Any:
    """``yaml.safe_load``, with a chance to *adjust* the document's node tree before it is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if adjust is not None:
            adjust(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def keep_text(node: yaml.Node) -> None:
    """Make a plain scalar, or each one in a sequence, build as the text written: a YAML 1.1 boolean
    such as ``yes`` or ``off`` stays that word, ``1.10`` stays ``1.10``. ``null`` and ``~`` stay null."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            keep_text(item)
    elif isinstance(node, yaml.ScalarNode) and node.style is None and node.tag != _NULL_TAG:
        node.tag = _STR_TAG


def mapping_values(node: yaml.Node, key: str) -> list[yaml.Node]:
    """The value nodes of a mapping node's entries named *key* (several, if the key is repeated)."""
    if not isinstance(node, yaml.MappingNode):
        return []
    return [value for name, value in node.value if isinstance(name, yaml.ScalarNode) and name.value == key]


def _text_keeper(node: Node) -> t.Callable[[yaml.Node], None] | None:
    """What keeps string lists (header values) as written, when the variable sets one or a map of them."""
    if node.kind == "strlist":
        return keep_text
    if node.kind == "map" and node.other is not None and node.other.kind == "strlist":
        return _keep_mapping_text
    return None


def _keep_mapping_text(node: yaml.Node) -> None:
    if isinstance(node, yaml.MappingNode):
        for _, value in node.value:
            keep_text(value)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line describing a PyYAML error, with its line and column when known."""
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "syntax error"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            problem = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        return " ".join(problem.split())
    return " ".join(str(exc).split())
