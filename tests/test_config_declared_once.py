"""Each configuration key is declared once (``emulator/config/schema.py``), and everything else follows
from that declaration: the reader reads only declared keys, every declared key is read into the model or
marked ignored or refused with a reason, and ``check-config`` shows the same defaults the model has."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing as t
from pathlib import Path

import pytest

from emulator import config
from emulator.config import coverage
from emulator.config import model
from emulator.config import reader as config_reader
from emulator.config.effective import effective
from emulator.config.effective import shown_value
from emulator.config.reader import Reader
from emulator.config.reader import Section
from emulator.config.reader import UndeclaredKey
from emulator.config.reader import parse_document
from emulator.config.reader import read_config
from emulator.config.schema import ALIAS
from emulator.config.schema import IGNORED
from emulator.config.schema import READ
from emulator.config.schema import REFUSED
from emulator.config.schema import SCHEMA
from emulator.config.schema import Node
from emulator.config.schema import leaves
from tests.test_configuration import EVERY_SECTION

#: Documents that, between them, take every branch of the reader.
COVERING = [
    EVERY_SECTION,
    "version: 0.1\nstorage: {s3aws: {region: r, bucket: b}, cache: {layerinfo: inmemory}}\n",
    "version: 0.1\nstorage: {filesystem: {rootdirectory: /d, maxthreads: 30}}\n"
    "http: {tls: {certificate: /c.pem, key: /k.pem, ciphersuites: [TLS_AES_128_GCM_SHA256]}}\n",
    "version: 0.1\nstorage: {inmemory: {}}\nlog: {level: warn}\n",
]

#: Documents with only the keys each optional section requires, so everything else is a default.
MINIMAL = [
    "version: 0.1\nstorage: {inmemory: {}}\n",
    "version: 0.1\nstorage: {s3: {region: r, bucket: b}}\nredis: {addr: 'r:6379'}\n"
    "notifications: {endpoints: [{name: e, url: 'http://h'}]}\n"
    "health: {file: [{file: /f}], http: [{uri: 'http://h'}], tcp: [{addr: 'h:1'}]}\n"
    "proxy: {remoteurl: 'http://up'}\n",
    "version: 0.1\nstorage: {filesystem: {}}\nhttp: {tls: {letsencrypt: {cachefile: /le}}}\n"
    "auth: {htpasswd: {realm: r, path: /p}}\n",
    "version: 0.1\nstorage: {inmemory: {}}\nhttp: {tls: {certificate: /c, key: /k}}\n",
]


def read(document: str) -> tuple[model.Config, set[str]]:
    """The configuration of *document*, and the declared keys the reader asked for."""
    reader = Reader("c.yml", {}, [])
    raw = parse_document(document, "c.yml")
    return read_config(reader, Section(reader, "", raw)), reader.read


def declared() -> dict[str, Node]:
    return dict(leaves(SCHEMA))


def model_leaves() -> t.Iterator[tuple[str, Node, type[t.Any], str]]:
    """Each leaf the reader reads into the model: its path, declaration, model class and attribute."""

    def walk(node: Node, cls: type[t.Any], path: str) -> t.Iterator[tuple[str, Node, type[t.Any], str]]:
        for name, child in node.fields.items():
            if child.status != READ:
                continue
            dotted = f"{path}.{name}" if path else name
            if child.attr == "":
                yield from walk(child, cls, dotted)
                continue
            attr = child.attr or name
            if child.kind == "list" and child.item is not None and child.item.fields:
                yield from walk(child.item, _dataclass(cls, attr), f"{dotted}.*")
            elif child.kind == "map" and child.fields:
                yield from walk(child, _dataclass(cls, attr), dotted)
            elif child.show is None:
                yield dotted, child, cls, attr

    yield from walk(SCHEMA, model.Config, "")


def _dataclass(cls: type[t.Any], attr: str) -> type[t.Any]:
    """The dataclass that attribute *attr* of *cls* holds (itself, optional, or a tuple of them)."""
    hint = t.get_type_hints(cls)[attr]
    for candidate in (hint, *t.get_args(hint), *(a for arg in t.get_args(hint) for a in t.get_args(arg))):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    raise AssertionError(f"{cls.__name__}.{attr} holds no dataclass ({hint})")


def model_default(cls: type[t.Any], attr: str) -> t.Any:
    found = {f.name: f for f in dataclasses.fields(cls)}[attr]
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    return found.default


def test_every_declared_leaf_is_read_ignored_or_refused_with_a_reason() -> None:
    read_paths: set[str] = set()
    for document in COVERING:
        read_paths |= read(document)[1]
    keys = declared()
    for path, node in keys.items():
        if node.status in (READ, ALIAS):
            assert path in read_paths, f"{path} is declared read but the reader never reads it"
        else:
            assert node.status in (IGNORED, REFUSED), path
            assert node.reason, f"{path} is {node.status} without a reason"
            assert path not in read_paths, f"{path} is declared {node.status} but the reader reads it"
        if node.status == ALIAS:
            assert node.reason in read_paths, f"{path} is an alias of {node.reason}, which is not read"


def test_every_leaf_read_into_the_model_names_a_model_attribute() -> None:
    found = list(model_leaves())
    assert len(found) > 100
    for path, _node, cls, attr in found:
        assert attr in {f.name for f in dataclasses.fields(cls)}, f"{path}: {cls.__name__} has no {attr}"


def test_declared_defaults_are_the_models_defaults() -> None:
    for path, node, cls, attr in model_leaves():
        default = model_default(cls, attr)
        if default is dataclasses.MISSING or (node.default is None and default is None):
            # A required model field: the reader asks for it with required().
            continue
        if node.kind == "list":
            assert tuple(node.default) == default, path
        elif node.kind == "map":
            assert dict(node.default or {}) == default, path
        else:
            assert node.default == default, f"{path}: declared {node.default!r}, model {default!r}"


@pytest.mark.parametrize("document", MINIMAL)
def test_a_minimal_document_reads_as_the_models_defaults(document: str) -> None:
    """Each model object read from a document that sets only what is required equals its class's default."""
    loaded, _ = read(document)

    def check(value: t.Any, where: str) -> None:
        if isinstance(value, tuple):
            for index, item in enumerate(value):
                check(item, f"{where}.{index}")
        if not (dataclasses.is_dataclass(value) and not isinstance(value, type)):
            return
        fields = dataclasses.fields(value)
        # Required fields and sections of their own come from the document; they are checked below.
        kept = {
            f.name: getattr(value, f.name)
            for f in fields
            if (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            or _is_section(getattr(value, f.name))
        }
        if not isinstance(value, (model.Config, model.StorageConfig, model.TLSConfig)):
            # The top level and storage read what the document names; TLS has no default instance.
            assert value == type(value)(**kept), where
        for f in fields:
            check(getattr(value, f.name), f"{where}.{f.name}")

    check(loaded, "config")


@pytest.mark.parametrize("document", MINIMAL)
def test_check_config_shows_the_declared_defaults(document: str) -> None:
    loaded, _ = read(document)
    shown = effective(loaded)
    raw = parse_document(document, "c.yml")
    for path, node, _cls, _attr in model_leaves():
        if "*" in path or node.default is None or node.when is not None:
            continue
        value, given = _lookup(shown, path), _lookup(raw, path)
        if value is _ABSENT or given is not _ABSENT:
            continue
        expected = config.dump({"v": shown_value(node, node.default)})
        assert config.dump({"v": value}) == expected, path


def _is_section(value: t.Any) -> bool:
    if isinstance(value, tuple):
        return any(map(_is_section, value))
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


_ABSENT = object()


def _lookup(document: t.Any, path: str) -> t.Any:
    for part in path.split("."):
        if not isinstance(document, dict) or part not in document:
            return _ABSENT
        document = document[part]
    return document


def test_a_getter_refuses_an_undeclared_key() -> None:
    reader = Reader("c.yml", {}, [])
    http = Section(reader, "", {"http": {"adrr": ":1"}}).section("http")
    for getter in (http.string, http.boolean, http.integer, http.duration, http.strings, http.get):
        with pytest.raises(UndeclaredKey):
            getter("adrr")
    with pytest.raises(UndeclaredKey):
        http.boolean("addr")  # declared, but a string


GETTERS = {"get", "has", "section", "sections", "string", "optional", "required", "url", "boolean"}
GETTERS |= {"integer", "maybe_integer", "duration", "strings", "headers", "declared"}


def test_the_reader_names_only_declared_keys() -> None:
    """Every literal key the reader's code passes to a getter is declared in some section."""
    names: set[str] = set()

    def collect(node: Node) -> None:
        names.update(node.fields)
        for child in (*node.fields.values(), node.item, node.other):
            if child is not None:
                collect(child)

    collect(SCHEMA)
    tree = ast.parse(Path(inspect.getfile(config_reader)).read_text())
    used = [
        (call.lineno, call.args[0].value)
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in GETTERS
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ]
    assert len(used) > 80
    undeclared = [(line, name) for line, name in used if name not in names]
    assert undeclared == []


def test_environment_overrides_follow_the_declarations() -> None:
    """A variable naming a declared key is applied; one naming an undeclared key is not."""
    environ = {
        "REGISTRY_HEALTH_TCPCHECKERS": "[{addr: 'h:1'}]",
        "REGISTRY_VALIDATION_PACKS_FLOATINGTAGS": "true",
        "REGISTRY_VALIDATION_PACKS_COLOUR": "red",
    }
    loaded = config.parse({"version": "0.1", "storage": "inmemory"}, source="c.yml", environ=environ)
    assert loaded.config.health.tcp[0].addr == "h:1"
    assert loaded.config.validation.packs.floatingtags is True
    assert loaded.warnings == ("ignoring unrecognized environment variable REGISTRY_VALIDATION_PACKS_COLOUR",)


def test_the_readme_coverage_table_is_generated_from_the_declarations() -> None:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    assert coverage.BEGIN in text and coverage.END in text, "the README lost its coverage table markers"
    shown = text.split(coverage.BEGIN, 1)[1].split(coverage.END, 1)[0].lstrip("\n")
    assert shown == coverage.markdown(), "regenerate it: python -m emulator.config.coverage"


def test_the_coverage_table_names_every_refused_and_ignored_key() -> None:
    table = coverage.markdown()
    for path, node in leaves(SCHEMA):
        if node.status in (REFUSED, IGNORED):
            name = path.rsplit(".", 1)[-1]
            assert f"`{name}`" in table or f"`{path}`" in table, path
            assert node.reason[1:] in table, path
