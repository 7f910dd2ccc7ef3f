"""Results: one row per measured quantity with both sides' samples, written as JSON and as a Markdown table.

Each row's ``emulator`` and ``distribution`` are medians over the rounds, with ``*_min`` and ``*_max``
beside them; ``ratio`` is always emulator / distribution (so for times and latencies below 1 is better,
as the ``better`` field says). Rows with a limit (:mod:`benchmarks.limits`: what the machine does at best,
named by ``limit_source``) also carry ``limit`` (median, ``limit_min``, ``limit_max``) and
``limit_ratio``, emulator / limit.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import typing as t
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from benchmarks.servers import DISTRIBUTION
from benchmarks.servers import EMULATOR
from benchmarks.servers import SIDES

#: The limit column's key in rows and samples.
LIMIT = "limit"


@dataclass(frozen=True)
class Target:
    """What the issue asks of a row: a ratio bound, or a bound on the emulator's own value.

    ``limit_at_least`` bounds emulator / limit as well: on its own both bounds must hold ("at least 2.0x
    distribution and 0.5 of the limit"); with ``limit_when_within`` it is the alternative that counts when
    distribution is itself within that fraction of the limit ("at least 1.3x distribution, or 0.9 of the
    limit when distribution is within 10% of it": no one beats the limit by 1.3x).
    """

    text: str
    ratio_at_least: float | None = None
    ratio_at_most: float | None = None
    emulator_below: float | None = None
    limit_at_least: float | None = None
    limit_when_within: float | None = None

    def met(
        self,
        emulator: float | None,
        ratio: float | None,
        limit_ratio: float | None = None,
        baseline_limit_ratio: float | None = None,
    ) -> bool | None:
        return self.verdict(emulator, ratio, limit_ratio, baseline_limit_ratio)[0]

    def verdict(
        self,
        emulator: float | None,
        ratio: float | None,
        limit_ratio: float | None = None,
        baseline_limit_ratio: float | None = None,
    ) -> tuple[bool | None, str | None]:
        """Whether the target is met, and by what: ``"ratio"``, ``"limit"``, ``"ratio and limit"``."""
        if self.emulator_below is not None:
            return (None if emulator is None else emulator < self.emulator_below), "emulator"
        by_ratio: bool | None = None
        if ratio is not None:
            if self.ratio_at_least is not None:
                by_ratio = ratio >= self.ratio_at_least
            elif self.ratio_at_most is not None:
                by_ratio = ratio <= self.ratio_at_most
        if self.limit_at_least is None:
            return by_ratio, "ratio" if by_ratio else None
        by_limit = None if limit_ratio is None else limit_ratio >= self.limit_at_least
        if self.limit_when_within is None:
            if by_ratio is None or by_limit is None:
                return None, None
            return by_ratio and by_limit, "ratio and limit" if by_ratio and by_limit else None
        if by_ratio:
            return True, "ratio"
        near = baseline_limit_ratio is not None and baseline_limit_ratio >= 1 - self.limit_when_within
        if near and by_limit:
            return True, "limit"
        if by_ratio is None and by_limit is None:
            return None, None
        return False, None


@dataclass
class Metric:
    id: str
    scenario: str
    unit: str
    better: str  # "higher" or "lower"
    target: Target | None = None
    #: What the distribution column holds instead, for rows comparing the emulator with itself.
    baseline: str | None = None
    #: What the limit column measures (see :mod:`benchmarks.limits`), for rows that have one.
    limit_source: str | None = None
    samples: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})
    limits: list[float] = field(default_factory=list)

    def median(self, side: str) -> float | None:
        values = self.limits if side == LIMIT else self.samples[side]
        return statistics.median(values) if values else None

    def ratio(self, over: str = DISTRIBUTION) -> float | None:
        """emulator / ``over`` (distribution, or :data:`LIMIT`)."""
        emulator, other = self.median(EMULATOR), self.median(over)
        if emulator is None or other is None or other == 0:
            return None
        return emulator / other

    def row(self) -> dict[str, t.Any]:
        row: dict[str, t.Any] = {
            "id": self.id,
            "scenario": self.scenario,
            "unit": self.unit,
            "better": self.better,
        }
        for side in SIDES:
            values = self.samples[side]
            row[side] = self.median(side)
            row[f"{side}_min"] = min(values) if values else None
            row[f"{side}_max"] = max(values) if values else None
        ratio = self.ratio()
        row["ratio"] = ratio
        row["baseline"] = self.baseline
        limit_ratio = self.ratio(LIMIT)
        row[LIMIT] = self.median(LIMIT)
        row["limit_min"] = min(self.limits) if self.limits else None
        row["limit_max"] = max(self.limits) if self.limits else None
        row["limit_ratio"] = limit_ratio
        row["limit_source"] = self.limit_source
        baseline_limit = self.median(DISTRIBUTION)
        limit = self.median(LIMIT)
        baseline_limit_ratio = baseline_limit / limit if baseline_limit is not None and limit else None
        row["target"] = self.target.text if self.target else None
        # The bounds as numbers, for the chart's target marks.
        row["target_ratio"] = self.target.ratio_at_least or self.target.ratio_at_most if self.target else None
        row["target_limit"] = self.target.limit_at_least if self.target else None
        met, by = (
            self.target.verdict(self.median(EMULATOR), ratio, limit_ratio, baseline_limit_ratio)
            if self.target
            else (None, None)
        )
        row["met"] = met
        row["met_by"] = by if met else None
        row["samples"] = {side: list(values) for side, values in self.samples.items()}
        if self.limits:
            row["samples"][LIMIT] = list(self.limits)
        return row


class Results:
    """Metrics in the order they were first declared, plus notes and facts about the run."""

    def __init__(self, meta: dict[str, t.Any]) -> None:
        self.meta = meta
        self.metrics: dict[str, Metric] = {}
        self.notes: list[str] = []

    def metric(
        self,
        id: str,
        scenario: str,
        unit: str,
        better: str,
        target: Target | None = None,
        baseline: str | None = None,
        limit: str | None = None,
    ) -> Metric:
        """The row ``id``, declared on first use; ``limit`` names what its limit column measures."""
        if id not in self.metrics:
            self.metrics[id] = Metric(id, scenario, unit, better, target, baseline, limit)
        return self.metrics[id]

    def add(self, id: str, side: str, value: float) -> None:
        """One sample of ``side`` (emulator, distribution, or :data:`LIMIT`)."""
        metric = self.metrics[id]
        if side == LIMIT:
            metric.limits.append(value)
        else:
            metric.samples[side].append(value)

    def rows(self) -> list[dict[str, t.Any]]:
        return [metric.row() for metric in self.metrics.values()]

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"meta": self.meta, "notes": self.notes, "rows": self.rows()}
        path.write_text(json.dumps(document, indent=2) + "\n")

    def markdown(self) -> str:
        meta = self.meta
        lines = [
            f"Run {meta['date']} ({meta['mode']} mode: {meta['rounds']} rounds, the two servers interleaved "
            f"ABAB; blobs of {meta['blob']}, storage in `{meta['storage']}`).",
            "",
            f"Machine: {meta['machine']}. Python {meta['python']}; {meta['distribution_version']}.",
            "",
            "| Scenario | Unit | Emulator: median (min-max) | distribution: median (min-max) "
            "| Ratio emu/dist | Limit: median (min-max) | Ratio emu/limit | Better | Target | Met |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows():
            met = {True: "yes", False: "**no**", None: ""}[row["met"]]
            if row["met"] and row["met_by"] in ("ratio", "limit") and row["target_limit"] is not None:
                met += f" (by {row['met_by']})"
            against = _cell(row, DISTRIBUTION) + (f" *{row['baseline']}*" if row["baseline"] else "")
            limit = _cell(row, LIMIT) + (f" *{row['limit_source']}*" if row["limit_source"] else "")
            ratio, limit_ratio = _number(row["ratio"], ratio=True), _number(row["limit_ratio"], ratio=True)
            ratios = f"{ratio} | {limit} | {limit_ratio}"
            lines.append(
                f"| {row['scenario']} | {row['unit']} | {_cell(row, EMULATOR)} | {against} | {ratios} "
                f"| {row['better']} | {row['target'] or ''} | {met} |"
            )
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


def _number(value: float | None, *, ratio: bool = False) -> str:
    if value is None:
        return "-"
    if ratio:
        return f"{value:.2f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(row: dict[str, t.Any], side: str) -> str:
    if row[side] is None:
        return "-"
    return f"{_number(row[side])} ({_number(row[f'{side}_min'])}-{_number(row[f'{side}_max'])})"


def machine() -> str:
    """CPUs, CPU model and memory, from /proc."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / (1 << 20):.1f} GiB memory"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}){memory}, Linux {platform.release()}"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
