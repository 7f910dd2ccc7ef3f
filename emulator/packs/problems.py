"""What is wrong with a pack: one :class:`PackProblem` per finding, all reported at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackProblem:
    """One thing wrong with a pack.

    :param path: where: a JSON path into ``pack.json`` (``$.constraints.dependencies[0].type``), a
        path inside the pack (``logo.png``), or ``archive`` for the archive as a whole.
    :param rule: the rule broken: a JSON Schema keyword (``required``, ``enum``, ``type``, ...) for
        ``pack.json``'s shape, else one of ours (``missing-file``, ``gzip``, ``link-outside``, ...).
    :param message: one sentence for a person.
    """

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"
