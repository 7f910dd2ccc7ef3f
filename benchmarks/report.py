"""Results: one row per measured quantity with both sides' samples, written as JSON and as a Markdown table.

Each row's ``emulator`` and ``distribution`` are medians over the rounds, with ``*_min`` and ``*_max``
beside them; ``ratio`` is always emulator / distribution (so for times and latencies below 1 is better,
as the ``better`` field says).
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


@dataclass(frozen=True)
class Target:
    """What the issue asks of a row: a ratio bound, or a bound on the emulator's own value."""

    text: str
    ratio_at_least: float | None = None
    ratio_at_most: float | None = None
    emulator_below: float | None = None

    def met(self, emulator: float | None, ratio: float | None) -> bool | None:
        if self.emulator_below is not None:
            return None if emulator is None else emulator < self.emulator_below
        if ratio is None:
            return None
        if self.ratio_at_least is not None:
            return ratio >= self.ratio_at_least
        if self.ratio_at_most is not None:
            return ratio <= self.ratio_at_most
        return None


@dataclass
class Metric:
    id: str
    scenario: str
    unit: str
    better: str  # "higher" or "lower"
    target: Target | None = None
    #: What the distribution column holds instead, for rows comparing the emulator with itself.
    baseline: str | None = None
    samples: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})

    def median(self, side: str) -> float | None:
        values = self.samples[side]
        return statistics.median(values) if values else None

    def ratio(self) -> float | None:
        emulator, distribution = self.median(EMULATOR), self.median(DISTRIBUTION)
        if emulator is None or distribution is None or distribution == 0:
            return None
        return emulator / distribution

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
        row["target"] = self.target.text if self.target else None
        row["met"] = self.target.met(self.median(EMULATOR), ratio) if self.target else None
        row["samples"] = {side: list(values) for side, values in self.samples.items()}
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
    ) -> Metric:
        if id not in self.metrics:
            self.metrics[id] = Metric(id, scenario, unit, better, target, baseline)
        return self.metrics[id]

    def add(self, id: str, side: str, value: float) -> None:
        self.metrics[id].samples[side].append(value)

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
            "| Ratio emu/dist | Better | Target | Met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows():
            met = {True: "yes", False: "**no**", None: ""}[row["met"]]
            against = _cell(row, DISTRIBUTION) + (f" *{row['baseline']}*" if row["baseline"] else "")
            lines.append(
                f"| {row['scenario']} | {row['unit']} | {_cell(row, EMULATOR)} | {against} "
                f"| {_number(row['ratio'], ratio=True)} | {row['better']} | {row['target'] or ''} | {met} |"
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
