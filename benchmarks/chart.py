"""The ratio table as a picture: one SVG bar chart of how the emulator stands against distribution (and
against the machine's limit, where a row has one), with each row's target.

Every bar reads "times better than the other side": the ratio emulator / distribution for rows where higher
is better, its inverse for times and latencies, on a log scale with parity at 1. A row with a limit gets a
thin second bar, emulator / limit the same way round. Target marks are drawn where a row has a ratio
target, bars are green when the row's target is met, red when not, grey without a target.

Hand-written SVG: no plotting library is a dependency of the project, and this chart is a few rects,
lines and labels; a plotting library would add tens of megabytes to CI's benchmark session for it.
"""

from __future__ import annotations

import math
import typing as t
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH = 960
LABEL_WIDTH = 470
PLOT_LEFT = LABEL_WIDTH + 10
PLOT_RIGHT = WIDTH - 60
ROW_HEIGHT = 24
TOP = 62
BOTTOM = 34
TICKS = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
COLOURS = {True: "#2e8b57", False: "#c0392b", None: "#8c8c8c"}
LIMIT_COLOUR = "#4a6fa5"
TIMES = "\N{MULTIPLICATION SIGN}"
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def advantage(value: float | None, better: str) -> float | None:
    """``value`` (a ratio emulator / other) as "times better than the other side"."""
    if value is None or value <= 0:
        return None
    return value if better == "higher" else 1 / value


def render(rows: t.Sequence[t.Mapping[str, t.Any]], title: str) -> str:
    """The SVG document for ``rows`` (as :meth:`benchmarks.report.Results.rows` gives them); rows with
    neither a ratio nor a limit ratio are left out."""
    shown = [
        row
        for row in rows
        if advantage(row.get("ratio"), row["better"]) or advantage(row.get("limit_ratio"), row["better"])
    ]
    values = [
        value
        for row in shown
        for value in (
            advantage(row.get("ratio"), row["better"]),
            advantage(row.get("limit_ratio"), row["better"]),
            advantage(row.get("target_ratio"), row["better"]),
            row.get("target_limit"),
        )
        if value
    ]
    low = min([0.5, *values])
    high = max([2.0, *values])
    ticks = [tick for tick in TICKS if low / 1.5 <= tick <= high * 1.5]
    low, high = min(low, ticks[0]), max(high, ticks[-1])
    span = math.log10(high) - math.log10(low)

    def x(value: float) -> float:
        value = min(max(value, low), high)
        return PLOT_LEFT + (math.log10(value) - math.log10(low)) / span * (PLOT_RIGHT - PLOT_LEFT)

    height = TOP + ROW_HEIGHT * len(shown) + BOTTOM
    plot_bottom = TOP + ROW_HEIGHT * len(shown)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" {FONT} font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
        _legend(),
    ]
    for tick in ticks:
        position = x(tick)
        stroke = 'stroke="#444444"' if tick == 1 else 'stroke="#dddddd"'
        parts.append(
            f'<line x1="{position:.1f}" y1="{TOP - 6}" x2="{position:.1f}" y2="{plot_bottom}" {stroke}/>'
        )
        parts.append(
            f'<text x="{position:.1f}" y="{plot_bottom + 16}" text-anchor="middle">{tick:g}{TIMES}</text>'
        )
    parts.append(
        f'<text x="{(PLOT_LEFT + PLOT_RIGHT) / 2:.0f}" y="{plot_bottom + 30}" text-anchor="middle" '
        'fill="#444444">times better than distribution (bars) or the limit (thin bars); log scale</text>'
    )
    for index, row in enumerate(shown):
        parts.extend(_row(row, TOP + ROW_HEIGHT * index, x))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _legend() -> str:
    items = [
        (COLOURS[True], "target met"),
        (COLOURS[False], "target not met"),
        (COLOURS[None], "no target"),
        (LIMIT_COLOUR, "emulator / limit"),
    ]
    pieces = []
    left = 10
    for colour, text in items:
        pieces.append(f'<rect x="{left}" y="32" width="12" height="12" fill="{colour}"/>')
        pieces.append(f'<text x="{left + 17}" y="42">{escape(text)}</text>')
        left += 30 + 7 * len(text)
    pieces.append(f'<line x1="{left}" y1="30" x2="{left}" y2="46" stroke="#000000" stroke-width="2"/>')
    pieces.append(f'<text x="{left + 6}" y="42">target</text>')
    return "\n".join(pieces)


def _row(row: t.Mapping[str, t.Any], top: int, x: t.Callable[[float], float]) -> list[str]:
    better = row["better"]
    label = row["scenario"] + (f" (vs {row['baseline']})" if row.get("baseline") else "")
    parts = [f'<text x="10" y="{top + 15}">{escape(_shorten(label))}</text>']
    origin = x(1)
    against = advantage(row.get("ratio"), better)
    if against is not None:
        end = x(against)
        colour = COLOURS[row.get("met")]
        parts.append(
            f'<rect x="{min(origin, end):.1f}" y="{top + 3}" width="{abs(end - origin):.1f}" height="12" '
            f'fill="{colour}"><title>{escape(label)}: {against:.2f}{TIMES} distribution</title></rect>'
        )
        parts.append(f'<text x="{max(origin, end) + 4:.1f}" y="{top + 14}">{against:.2f}{TIMES}</text>')
    limit = advantage(row.get("limit_ratio"), better)
    if limit is not None:
        end = x(limit)
        source = row.get("limit_source") or "the limit"
        parts.append(
            f'<rect x="{min(origin, end):.1f}" y="{top + 16}" width="{abs(end - origin):.1f}" height="5" '
            f'fill="{LIMIT_COLOUR}"><title>{escape(label)}: {limit:.2f}{TIMES} '
            f"{escape(source)}</title></rect>"
        )
        beyond, anchor = (min(origin, end) - 3, "end") if limit < 1 else (max(origin, end) + 3, "start")
        parts.append(
            f'<text x="{beyond:.1f}" y="{top + 22}" font-size="9" fill="{LIMIT_COLOUR}" '
            f'text-anchor="{anchor}">{limit:.2f}{TIMES}</text>'
        )
    for value in (advantage(row.get("target_ratio"), better), row.get("target_limit")):
        if value:
            mark = x(value)
            parts.append(
                f'<line x1="{mark:.1f}" y1="{top + 1}" x2="{mark:.1f}" y2="{top + 22}" stroke="#000000" '
                f'stroke-width="2"><title>target {escape(row.get("target") or "")}</title></line>'
            )
    return parts


def _shorten(text: str, limit: int = 74) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write(rows: t.Sequence[t.Mapping[str, t.Any]], title: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(rows, title), encoding="utf-8")
