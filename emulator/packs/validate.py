"""Checking a pack: ``pack.json`` against the shipped JSON Schema, then what a schema cannot say
(the files it names exist, the mandatory files are there and readable).

The schema is ``schema.json`` beside this module, read with :mod:`jsonschema`; this module only turns
its errors into :class:`~emulator.packs.problems.PackProblem` (a JSON path and the keyword broken).
"""

from __future__ import annotations

import functools
import json
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
            parsed = json.loads(raw)
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


def _values_problems(content: bytes) -> list[PackProblem]:
    try:
        # The pure-Python loader: libyaml's C loader overflows the C stack (a crash) on input nested a
        # million deep, which fits in the 1 MiB a values.yaml may have.
        values = yaml.safe_load(content)
    except yaml.YAMLError as e:
        return [PackProblem(VALUES_YAML, "yaml", f"not YAML: {' '.join(str(e).split())}")]
    except RecursionError:
        return [PackProblem(VALUES_YAML, "yaml", "nested too deeply to read")]
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
