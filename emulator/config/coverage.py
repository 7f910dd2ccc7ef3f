"""How much of distribution's configuration the emulator implements: the README's "Configuration coverage"
table, generated from the declarations in :mod:`.schema` so that it cannot drift from what the reader does.

``python -m emulator.config.coverage`` prints the table.
"""

from __future__ import annotations

import typing as t

from .schema import ALIAS
from .schema import IGNORED
from .schema import READ
from .schema import REFUSED
from .schema import SCHEMA
from .schema import Node
from .schema import leaves

#: The markers around the table in the README.
BEGIN = "<!-- config-coverage:begin -->"
END = "<!-- config-coverage:end -->"


def rows() -> t.Iterator[tuple[str, str, str]]:
    """(key, status, notes) for each top-level key and each key of a top-level section."""
    for name, node in SCHEMA.fields.items():
        if node.status == READ and node.fields:
            for child_name, child in node.fields.items():
                yield (_key(f"{name}.{child_name}", child), *_describe(child))
        else:
            yield (_key(name, node), *_describe(node))


def _key(path: str, node: Node) -> str:
    return f"{path}[]" if node.kind == "list" and node.item is not None and node.item.fields else path


def _describe(node: Node) -> tuple[str, str]:
    if node.status == REFUSED:
        accepted = ", ".join(f"`{value}`" for value in node.accepted)
        return "refused", _sentence(node.reason + (f" ({accepted} is accepted)" if accepted else ""))
    if node.status == IGNORED:
        return "accepted, ignored", _sentence(node.reason)
    if node.status == ALIAS:
        return "implemented", f"Read as `{node.reason.replace('.*.', '[].')}`."
    notable = list(_notable(node, ""))
    # Keys with the same description share one note (the s3 client's tunings, say).
    described: dict[tuple[str, str], list[str]] = {}
    for path, below in notable:
        described.setdefault(_describe(below), []).append(f"`{path}`")
    notes = [_sentence(node.differs)] if node.differs else []
    for (status, why), paths in described.items():
        notes.append(
            f"{', '.join(paths)}: {status}. {why}" if status != "implemented" else f"{paths[0]}: {why}"
        )
    if not any(below.status == READ for _, below in leaves(node)):
        status = "refused" if any(below.status == REFUSED for _, below in notable) else "accepted, ignored"
    elif node.differs or any(below.status != ALIAS for _, below in notable):
        status = "implemented, with a difference"
    else:
        status = "implemented"
    return status, " ".join(notes)


def _notable(node: Node, path: str) -> t.Iterator[tuple[str, Node]]:
    """The keys below *node* that are not simply implemented."""
    item = node.item if node.kind == "list" and node.item is not None else node
    for name, child in item.fields.items():
        below = f"{path}.{name}" if path else name
        if child.status != READ or child.differs:
            yield _key(below, child), child
        else:
            yield from _notable(child, below)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def markdown() -> str:
    """The table as the README shows it (between :data:`BEGIN` and :data:`END`)."""
    lines = ["| Key | In the emulator | Notes |", "|---|---|---|"]
    for key, status, notes in rows():
        lines.append(f"| `{key}` | {status} | {notes.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
