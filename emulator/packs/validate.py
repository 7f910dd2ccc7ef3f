"""Checking a pack: ``pack.json`` against the shipped JSON Schema, then what a schema cannot say
(the files it names exist, the mandatory files are there and readable).

The schema is ``schema.json`` beside this module, read with :mod:`jsonschema`; this module only turns
its errors into :class:`~emulator.packs.problems.PackProblem` (a JSON path and the keyword broken).
"""

from __future__ import annotations

import functools
import json
import math
import os
import typing as t
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema import ValidationError

from .archive import DEFAULT_LIMITS
from .archive import LOGO_PNG
from .archive import PACK_JSON
from .archive import VALUES_YAML
from .archive import Limits
from .archive import PackFiles
from .archive import read_archive
from .archive import read_directory
from .problems import PackProblem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The files every pack has (the documentation's "mandatory"); README.md is optional.
MANDATORY = (PACK_JSON, VALUES_YAML, LOGO_PNG)


@dataclass(frozen=True)
class Pack:
    """A pack as read: its files, its parsed ``pack.json`` (``None`` when unreadable) and its problems."""

    files: frozenset[str]
    pack_json: dict[str, t.Any] | None
    problems: tuple[PackProblem, ...]


@functools.cache
def schema() -> dict[str, t.Any]:
    """The pack.json JSON Schema shipped with the package."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    document: dict[str, t.Any] = json.loads(text)
    return document


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def schema_problems(document: t.Any) -> list[PackProblem]:
    """Every way ``document`` breaks the schema, in document order."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [_problem(error) for error in errors]


def _problem(error: ValidationError) -> PackProblem:
    path = error.json_path
    if error.validator == "required" and isinstance(error.instance, dict):
        # Point at the missing key itself, not at the object that lacks it.
        required = t.cast(list[str], error.validator_value)
        missing = [key for key in required if key not in error.instance]
        for key in missing:
            if repr(key) in error.message:
                path = f"{path}.{key}"
                break
    return PackProblem(path, str(error.validator), error.message)


def check_files(pack: PackFiles) -> Pack:
    """All the problems of a pack read by :mod:`~emulator.packs.archive`, with its parsed pack.json."""
    problems = list(pack.problems)
    document: dict[str, t.Any] | None = None
    if not pack.complete:
        return Pack(frozenset(pack.files), None, tuple(problems))
    for name in MANDATORY:
        if name not in pack.files:
            problems.append(PackProblem(name, "missing-file", f"every pack has a {name}"))
    raw = pack.small.get(PACK_JSON)
    if raw is not None:
        try:
            parsed = _load_json(raw)
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(PackProblem(PACK_JSON, "json", f"not JSON: {e}"))
        except RecursionError:
            problems.append(PackProblem(PACK_JSON, "json", "nested too deeply to read"))
        else:
            shape = schema_problems(parsed)
            problems += shape
            if isinstance(parsed, dict):
                document = parsed
                problems += _missing_paths(document, pack, {p.path for p in shape})
    values = pack.small.get(VALUES_YAML)
    if values is not None:
        problems += _values_problems(values)
    if pack.logo_head is not None and pack.logo_head != PNG_SIGNATURE:
        problems.append(PackProblem(LOGO_PNG, "png", "logo.png is not a PNG image"))
    return Pack(frozenset(pack.files), document, tuple(problems))


def _missing_paths(document: dict[str, t.Any], pack: PackFiles, invalid: set[str]) -> list[PackProblem]:
    """``charts[]`` and ``kubeManifests[]`` name files (or chart directories) of the pack; entries the
    schema refused (paths in ``invalid``) are not looked up."""
    problems = []
    for key in ("charts", "kubeManifests"):
        entries = document.get(key)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            path = f"$.{key}[{index}]"
            if isinstance(entry, str) and path not in invalid and not pack.exists(entry):
                problems.append(PackProblem(path, "exists", f"the pack has no {entry}"))
    return problems


def _load_json(raw: bytes) -> t.Any:
    """pack.json as RFC 8259 has it, as Go's encoding/json reads it: UTF-8 without a byte order mark,
    no ``NaN`` or ``Infinity``, no number beyond a float's range (Python's json accepts all four)."""
    return json.loads(raw.decode("utf-8"), parse_constant=_not_json, parse_float=_finite)


def _not_json(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of a float's range")
    return value


#: The most nodes a values.yaml may stand for with its aliases expanded. PyYAML shares an alias's
#: object rather than copying it, but merge keys (``<<: [*a, *a]``) copy, so a "billion laughs" of
#: merges takes minutes; Go's YAML libraries (Helm's) refuse such a document too ("excessive aliasing").
YAML_NODES = 1_000_000
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_STR_TAG = "tag:yaml.org,2002:str"


class _Aliasing(yaml.YAMLError):
    pass


def _load_yaml(content: bytes) -> t.Any:
    """``yaml.safe_load`` with the document's expanded size checked before it is built."""
    # The pure-Python loader: libyaml's C loader overflows the C stack (a crash) on input nested a
    # million deep, which fits in the 1 MiB a values.yaml may have.
    loader = yaml.SafeLoader(content)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes ``node`` stands for with aliases expanded (computed once per node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _Aliasing("an anchor's value contains an alias of itself")
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.ScalarNode):
        if node.tag in _NUMBER_TAGS and ":" in node.value:
            # YAML 1.1's base-60 numbers (1:20:30): PyYAML converts them in time quadratic in their
            # length; YAML 1.2 and Go's libraries read them as strings, and so does this.
            node.tag = _STR_TAG
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes, open_nodes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        for item_key, item_value in node.value:
            size += _expanded_size(item_key, sizes, open_nodes) + _expanded_size(
                item_value, sizes, open_nodes
            )
    open_nodes.discard(key)
    if size > YAML_NODES:
        raise _Aliasing(f"document contains excessive aliasing: more than {YAML_NODES} nodes once expanded")
    sizes[key] = size
    return size


def _values_problems(content: bytes) -> list[PackProblem]:
    try:
        values = _load_yaml(content)
    except yaml.YAMLError as e:
        return [PackProblem(VALUES_YAML, "yaml", f"not YAML: {' '.join(str(e).split())}")]
    except RecursionError:
        return [PackProblem(VALUES_YAML, "yaml", "nested too deeply to read")]
    except (ValueError, OverflowError) as e:
        # A value PyYAML cannot convert: an integer of over 4,300 digits, a float out of range.
        return [PackProblem(VALUES_YAML, "yaml", f"a value cannot be read: {e}")]
    if values is not None and not isinstance(values, dict):
        # Its documented shape is a mapping (pack:, charts:, manifests:); empty is allowed.
        return [PackProblem(VALUES_YAML, "yaml", "values.yaml is a mapping, or empty")]
    return []


def read_pack(source: str | os.PathLike[str] | t.IO[bytes], limits: Limits = DEFAULT_LIMITS) -> Pack:
    """Read and check a pack directory, a ``.tar.gz`` path, or a binary stream of a ``.tar.gz``."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return check_files(read_directory(path, limits))
        with path.open("rb") as stream:
            return check_files(read_archive(stream, limits))
    return check_files(read_archive(source, limits))


def check(source: str | os.PathLike[str] | t.IO[bytes], limits: Limits = DEFAULT_LIMITS) -> list[PackProblem]:
    """Every problem of a pack (see :func:`read_pack`), all at once; ``[]`` means it is valid."""
    return list(read_pack(source, limits).problems)
