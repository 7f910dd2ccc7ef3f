"""The suite's own reader of a registry's configuration: the YAML file plus ``REGISTRY_*`` variables.

Why it exists: the ``config`` checks derive what a registry must do from the configuration it runs with.
Their expected values must not come from the emulator's reader, or a mistake in that reader would be
mirrored by the suite instead of caught. This module knows nothing of the emulator; the project's tests
feed the same configurations to both readers and compare what the checks use.

What it does, after distribution (``configuration/parser.go``, ``docs/configuration.md``):

- The file is YAML. ``storage: inmemory`` and ``auth: htpasswd`` stand for ``{inmemory: {}}`` and
  ``{htpasswd: {}}``, as distribution's ``Storage`` and ``Auth`` types read a bare name.
- Every ``REGISTRY_*`` variable but ``REGISTRY_CONFIGURATION_PATH`` is applied, in sorted name order: a
  variable naming a section (``REGISTRY_STORAGE=inmemory``) replaces all of it, and the more specific
  ones (``REGISTRY_STORAGE_DELETE_ENABLED``) sort after it and fill the new section.
- The name after ``REGISTRY_`` is split on ``_``. On the way down, a segment picks the existing key it
  equals in upper case, else a new lower-case key; the last segment always sets the lower-case key. A
  number indexes a list (one past the end appends), and a missing section followed by a number is a list.
  A key aimed inside a string, number or boolean is ignored, as distribution ignores it.
- The value is parsed as YAML: ``true`` is a boolean, ``[a, b]`` a list, ``{k: v}`` a mapping.

What it does not do:

- Validate. A configuration distribution refuses (no htpasswd ``path``, two storage drivers, a string
  where a list belongs) still gives expectations; the registry's refusal to start shows the mistake.
- Know Go struct fields: distribution warns about and ignores a variable naming no field, and matches
  the few fields whose Go name differs from the YAML key (``notifications.events`` is
  ``..._EVENTCONFIG``). Here such a variable adds a key that no check reads.
- Apply names with lower-case letters: distribution ignores them where they name a struct field and
  half-applies them in maps; shells and documentation write them in upper case. They are skipped.
- Resolve YAML 1.1 exactly as Go's yaml.v2 does: ``y`` and ``n`` are booleans there, strings here.
- Copy distribution's code where an index is the last segment (``REGISTRY_HTTP_TLS_CLIENTCAS_0``): 2.x
  ignores list indexes, and 3.x appends an empty element without setting it. Here the element is set,
  as the documentation of the override scheme implies and the emulator does.
"""

from __future__ import annotations

import dataclasses
import typing as t

import yaml

PREFIX = "REGISTRY_"
#: Names the file to read, not a key.
PATH_VARIABLE = "REGISTRY_CONFIGURATION_PATH"
#: Sections that may be written as the bare name of their only key.
BARE_SECTIONS = ("storage", "auth")
DEFAULT_MINIMUM_TLS = "tls1.2"


class ConfigReadError(ValueError):
    """The file or a variable cannot be read; the message names which, and why."""


def load_raw(path: str, environ: t.Mapping[str, str]) -> dict[str, t.Any]:
    """The document in *path* with the ``REGISTRY_*`` variables of *environ* applied.

    :raises ConfigReadError: the file is unreadable or not a YAML mapping, or a variable is malformed.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigReadError(f"{path}: cannot read the configuration: {error}") from None
    document = parse_document(text, path)
    apply_environment(document, environ)
    return document


def parse_document(text: str, source: str) -> dict[str, t.Any]:
    """The YAML mapping in *text*; *source* names it in errors."""
    try:
        document = _load_keeping_header_text(text)
    except yaml.YAMLError as error:
        raise ConfigReadError(f"{source}: not valid YAML: {_one_line(error)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigReadError(f"{source}: the top level must be a mapping, not {type(document).__name__}")
    _expand_bare_sections(document)
    return document


def _load(text: str, adjust: t.Callable[[yaml.Node], None] | None) -> t.Any:
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


def _load_keeping_header_text(text: str) -> t.Any:
    """``yaml.safe_load``, except that ``http.headers`` values stay the text written, as distribution
    reads them (Go's yaml.v2 decodes ``[yes]`` into a ``[]string`` as ``yes``, not ``true``)."""
    return _load(text, _keep_header_text)


def _keep_header_text(document: yaml.Node) -> None:
    for headers in _values(document, "http", "headers"):
        _keep_mapping_text(headers)


def _values(node: yaml.Node, *keys: str) -> list[yaml.Node]:
    found = [node]
    for key in keys:
        found = [
            value
            for mapping in found
            if isinstance(mapping, yaml.MappingNode)
            for name, value in mapping.value
            if isinstance(name, yaml.ScalarNode) and name.value == key
        ]
    return found


def _keep_mapping_text(node: yaml.Node) -> None:
    if isinstance(node, yaml.MappingNode):
        for _, value in node.value:
            _keep_text(value)


def _keep_text(node: yaml.Node) -> None:
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _keep_text(item)
    elif isinstance(node, yaml.ScalarNode) and node.style is None and node.tag != "tag:yaml.org,2002:null":
        node.tag = "tag:yaml.org,2002:str"


def apply_environment(document: dict[str, t.Any], environ: t.Mapping[str, str]) -> None:
    """Apply every ``REGISTRY_*`` variable of *environ* to *document*, in place, in sorted name order."""
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name == PATH_VARIABLE:
            continue
        segments = name[len(PREFIX) :].split("_")
        if "" in segments or name != name.upper():
            continue
        # A header value is the text written, in a variable as in the file.
        keep = _keep_text if name.startswith(f"{PREFIX}HTTP_HEADERS_") else None
        keep = _keep_mapping_text if name == f"{PREFIX}HTTP_HEADERS" else keep
        try:
            value = _load(environ[name], keep)
        except yaml.YAMLError as error:
            raise ConfigReadError(f"{name}: not a valid YAML value: {_one_line(error)}") from None
        _set(document, segments, value, name)
        _expand_bare_sections(document)


def _set(document: dict[str, t.Any], segments: list[str], value: t.Any, variable: str) -> None:
    container: dict[str, t.Any] | list[t.Any] = document
    for position, segment in enumerate(segments[:-1]):
        key = _step(container, segment, variable)
        child = _get(container, key)
        if child is None:
            child = [] if segments[position + 1].isdigit() else {}
            _put(container, key, child)
        elif not isinstance(child, dict | list):
            # distribution silently ignores a key aimed inside a string, number or boolean.
            return
        container = child
    last = segments[-1]
    key = _step(container, last, variable) if isinstance(container, list) else last.lower()
    _put(container, key, value)


def _step(container: dict[str, t.Any] | list[t.Any], segment: str, variable: str) -> t.Any:
    """The key or index *segment* names on the way down."""
    if isinstance(container, list):
        if not segment.isdigit():
            raise ConfigReadError(f"{variable}: non-numeric index {segment!r} into a list")
        index = int(segment)
        if index > len(container):
            raise ConfigReadError(f"{variable}: undefined index {index} (the list has {len(container)})")
        return index
    for key, child in container.items():
        if isinstance(key, str) and key.upper() == segment and child is not None:
            return key
    # Missing, or null: distribution makes the key anew, in lower case.
    return segment.lower()


def _get(container: dict[str, t.Any] | list[t.Any], key: t.Any) -> t.Any:
    if isinstance(container, list):
        return container[key] if key < len(container) else None
    return container.get(key)


def _put(container: dict[str, t.Any] | list[t.Any], key: t.Any, value: t.Any) -> None:
    if isinstance(container, list) and key == len(container):
        container.append(value)
    else:
        container[key] = value


def _expand_bare_sections(document: dict[str, t.Any]) -> None:
    for name in BARE_SECTIONS:
        value = document.get(name)
        if isinstance(value, str):
            document[name] = {value: {}} if value else {}


def _one_line(error: yaml.YAMLError) -> str:
    """PyYAML's problem and where it is, without its multi-line excerpt of the text."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return " ".join(error.problem.split()) + where
    return " ".join(str(error).split())


# -- What the checks read --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Htpasswd:
    realm: str
    path: str


@dataclasses.dataclass(frozen=True)
class TLS:
    """Present when TLS is on: ``http.tls.certificate`` or ``http.tls.letsencrypt.cachefile`` is set."""

    certificate: str
    clientcas: tuple[str, ...]
    minimum: str


@dataclasses.dataclass(frozen=True)
class Expectations:
    """What a configuration promises, in the terms the ``config`` checks use.

    :param headers: ``http.headers``: each name (as first spelt) with its values, in order. A name set
        twice in different case (file and variable) has both keys' values: Go's ``Header.Add`` sends
        both, in the random order of Go's map iteration.
    :param htpasswd: ``auth.htpasswd``, or ``None`` when that section is missing or empty.
    :param tls: ``http.tls`` when TLS is on, else ``None``; ``minimum`` defaults to ``tls1.2``.
    :param deletes_enabled: ``storage.delete.enabled`` is the boolean true (distribution ignores a string).
    :param read_only: ``storage.maintenance.readonly.enabled`` is the boolean true.
    :param packs_validated: ``validation.packs.enabled`` (the emulator's extension) is the boolean true.
    """

    headers: dict[str, tuple[str, ...]]
    htpasswd: Htpasswd | None
    tls: TLS | None
    deletes_enabled: bool
    read_only: bool
    packs_validated: bool = False


def expectations(raw: t.Mapping[str, t.Any]) -> Expectations:
    """Read what the checks need from a document :func:`load_raw` returned."""
    return Expectations(
        headers=_headers(_section(raw, "http", "headers")),
        htpasswd=_htpasswd(_section(raw, "auth", "htpasswd")),
        tls=_tls(_section(raw, "http", "tls")),
        deletes_enabled=_section(raw, "storage", "delete").get("enabled") is True,
        read_only=_section(raw, "storage", "maintenance", "readonly").get("enabled") is True,
        packs_validated=_section(raw, "validation", "packs").get("enabled") is True,
    )


def _section(document: t.Mapping[str, t.Any], *keys: str) -> t.Mapping[str, t.Any]:
    """The mapping at *keys*; empty where a key is missing or holds something else."""
    for key in keys:
        value = document.get(key)
        document = value if isinstance(value, dict) else {}
    return document


def _text(value: t.Any) -> str:
    return "" if value is None else str(value)


def _texts(value: t.Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(_text(item) for item in value) if isinstance(value, list) else (_text(value),)


def _headers(configured: t.Mapping[str, t.Any]) -> dict[str, tuple[str, ...]]:
    headers: dict[str, tuple[str, ...]] = {}
    spelling: dict[str, str] = {}
    for name, values in configured.items():
        name = spelling.setdefault(str(name).lower(), str(name))
        headers[name] = headers.get(name, ()) + _texts(values)
    # A name without values sends nothing, so it promises nothing.
    return {name: values for name, values in headers.items() if values}


def _htpasswd(section: t.Mapping[str, t.Any]) -> Htpasswd | None:
    if not section:
        return None
    return Htpasswd(realm=_text(section.get("realm")), path=_text(section.get("path")))


def _tls(section: t.Mapping[str, t.Any]) -> TLS | None:
    certificate = _text(section.get("certificate"))
    if not certificate and not _section(section, "letsencrypt").get("cachefile"):
        return None
    return TLS(
        certificate=certificate,
        clientcas=_texts(section.get("clientcas")),
        minimum=_text(section.get("minimumtls")) or DEFAULT_MINIMUM_TLS,
    )
