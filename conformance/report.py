"""The suite's reports: the table people read at the end of a run, a JSON document for dashboards, one
self-contained HTML page per run, and a side-by-side page of several runs.

The plugin fills a :class:`Run` from pytest's reports (which pytest-xdist ships to the controller, so
reports work with ``-n`` too) and writes it with :func:`write_json` and :func:`write_html`. A JSON report
reads back with :func:`load`; :func:`comparison_page` puts several side by side. From a shell::

    python -m conformance.report summary a.json b.json     # the tables and failures, as text
    python -m conformance.report compare a.json b.json --html both.html

Standard library only: the plugin imports this module, and the plugin must cost other test suites nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import os
import sys
import typing as t
from pathlib import Path

from conformance.render import printable

__all__ = [
    "COLUMNS",
    "FORMAT",
    "Check",
    "ReportError",
    "Run",
    "comparison_page",
    "load",
    "main",
    "run_page",
    "summaries",
    "summary_lines",
    "table_lines",
    "unsupported_reasons",
    "write_html",
    "write_json",
]

#: The ``format`` field of every JSON report, and its version.
FORMAT = "pax-conformance-report"
VERSION = 1

#: The verdicts, in the order of the table's columns.
COLUMNS = ("passed", "failed", "unsupported", "skipped")

#: How much of a failure's text a report keeps (the terminal shows it whole).
DETAILS_LIMIT = 8000


class ReportError(Exception):
    """A file that is not a report of this suite."""


@dataclasses.dataclass
class Check:
    """One check's verdict, and what explains it."""

    #: ``test_pull::TestPullManifests::test_...[param]``, as :mod:`conformance.runner` names checks.
    id: str
    group: str
    #: One of :data:`COLUMNS`.
    outcome: str
    #: The spec section (or other source) of the rule the check enforces.
    spec: str = ""
    #: Why it was skipped or is unsupported.
    reason: str = ""
    #: For a failure: the assertion that failed, in a line or a few.
    message: str = ""
    #: For a failure: pytest's report of it, shortened to :data:`DETAILS_LIMIT`.
    details: str = ""
    #: For a failure: the HTTP requests and responses behind it, credentials redacted.
    exchange: str = ""
    duration: float = 0.0


@dataclasses.dataclass
class Run:
    """One run of the suite against one registry."""

    name: str
    target: str
    profile: str
    namespace: str
    #: ISO 8601, UTC.
    started: str
    duration: float
    #: group name -> what it checks, in report order.
    groups: dict[str, str]
    checks: list[Check]
    #: pytest's exit status, once the run ended.
    exitstatus: int | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        """Verdicts per group (groups without checks left out), then ``total``."""
        counts: dict[str, dict[str, int]] = {}
        for check in self.checks:
            row = counts.setdefault(check.group, dict.fromkeys(COLUMNS, 0))
            if check.outcome in row:
                row[check.outcome] += 1
        order = [name for name in [*self.groups, *sorted(counts)] if name in counts]
        result = {name: counts[name] for name in dict.fromkeys(order)}
        result["total"] = {column: sum(row[column] for row in counts.values()) for column in COLUMNS}
        return result

    def to_json(self) -> dict[str, t.Any]:
        document = {"format": FORMAT, "version": VERSION}
        document.update(dataclasses.asdict(self))
        document["summary"] = self.counts()
        return document

    @classmethod
    def from_json(cls, document: t.Any) -> Run:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ReportError(f"not a {FORMAT} document")
        if document.get("version") != VERSION:
            raise ReportError(f"version {document.get('version')} of {FORMAT}; this suite reads {VERSION}")
        try:
            fields = {field.name for field in dataclasses.fields(cls)}
            values = {name: value for name, value in document.items() if name in fields}
            values["checks"] = [Check(**check) for check in document["checks"]]
            return cls(**values)
        except (KeyError, TypeError) as error:
            raise ReportError(f"a malformed {FORMAT} document ({error})") from error


def load(path: str | os.PathLike[str]) -> Run:
    """Read a JSON report; :class:`ReportError` names the file when it is not one."""
    try:
        return Run.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: {error}") from error
    except ReportError as error:
        raise ReportError(f"{path}: {error}") from error


def write_json(run: Run, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(run.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def write_html(page: str, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


# -- text --------------------------------------------------------------------------------------------------


def unsupported_reasons(run: Run) -> list[str]:
    """What the registry lacks, as the checks that found it out said, each once."""
    return sorted({printable(check.reason) for check in run.checks if check.outcome == "unsupported"})


def table_lines(run: Run, *, reasons: bool = True) -> list[str]:
    """The group table, then (unless ``reasons`` is false) the features the registry lacks."""
    lines = [f"{'group':<12}" + "".join(f"{column:>12}" for column in COLUMNS)]
    for name, row in run.counts().items():
        lines.append(f"{name:<12}" + "".join(f"{row[column]:>12}" for column in COLUMNS))
    lacking = unsupported_reasons(run) if reasons else []
    return [*lines, "", *lacking] if lacking else lines


def _first_line(text: str, width: int = 160) -> str:
    line = next((line.strip() for line in printable(text).splitlines() if line.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def summary_lines(run: Run, *, reasons: bool = True) -> list[str]:
    """A run for a log: what ran against what, the table, and each failure in a line."""
    lines = [f"== {printable(run.name)}: {printable(run.target)} (profile {run.profile}) =="]
    lines += table_lines(run, reasons=reasons)
    failures = [check for check in run.checks if check.outcome == "failed"]
    if failures:
        lines += ["", "failed:"]
        lines += [f"  {check.id}: {_first_line(check.message)}" for check in failures]
    return lines


def summaries(runs: t.Sequence[Run]) -> list[str]:
    """Several runs for a log: each one's table and failures, then what the registries lack, once."""
    lines: list[str] = []
    for run in runs:
        lines += [*summary_lines(run, reasons=False), ""]
    found: dict[str, int] = {}
    for run in runs:
        for reason in unsupported_reasons(run):
            found[reason] = found.get(reason, 0) + 1
    if found:
        lines.append("unsupported:")
        for reason, count in sorted(found.items()):
            where = "" if count == len(runs) else f" (in {count} of {len(runs)} runs)"
            lines.append(f"  {reason.removeprefix('unsupported: ')}{where}")
    return lines


# -- HTML ------------------------------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f24; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .4em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .5em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #c8ccd1; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #eef1f4; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; margin: 0; }
dl.meta dt { font-weight: bold; }
dl.meta dd { margin: 0; }
.verdict { font-weight: bold; white-space: nowrap; }
.passed { color: #116329; } td.verdict.passed, td.n.passed.nonzero { background: #dafbe1; }
.failed { color: #a40e26; } td.verdict.failed, td.n.failed.nonzero { background: #ffebe9; }
.unsupported { color: #7d4e00; } td.verdict.unsupported, td.n.unsupported.nonzero { background: #fff8c5; }
.skipped, .absent { color: #59636e; }
td.check { min-width: 34em; max-width: 52em; overflow-wrap: anywhere; }
td.note { max-width: 40em; }
tr.differs td.check { border-left: 4px solid #bf8700; }
code, pre { font: 12px/1.35 ui-monospace, monospace; }
pre { background: #f6f8fa; border: 1px solid #d1d9e0; padding: .6em; white-space: pre-wrap; }
section.failure { margin: 1em 0 1.5em; }
section.failure h3 { font-size: 1em; margin: 0 0 .3em; }
.note { color: #59636e; }
"""


def _text(value: object) -> str:
    return html.escape(printable(str(value)))


def _page(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_text(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _meta(run: Run) -> str:
    items = {
        "registry": run.target,
        "profile": run.profile,
        "namespace": run.namespace,
        "started": run.started,
        "duration": f"{run.duration:.1f} s",
        "pytest exit status": "" if run.exitstatus is None else str(run.exitstatus),
    }
    rows = "".join(f"<dt>{_text(key)}</dt><dd>{_text(value)}</dd>" for key, value in items.items())
    return f'<dl class="meta">{rows}</dl>'


def _count_cell(column: str, value: int) -> str:
    return f'<td class="n {column}{" nonzero" if value else ""}">{value}</td>'


def _group_table(run: Run) -> str:
    head = "".join(f"<th>{column}</th>" for column in COLUMNS)
    rows = []
    for name, row in run.counts().items():
        description = run.groups.get(name, "")
        cells = "".join(_count_cell(column, row[column]) for column in COLUMNS)
        kind = ' class="total"' if name == "total" else f' data-group="{_text(name)}"'
        rows.append(f"<tr{kind}><td>{_text(name)}</td><td>{_text(description)}</td>{cells}</tr>")
    return (
        f'<table id="groups"><thead><tr><th>group</th><th>checks</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _verdict_cell(check: Check | None, link: str = "") -> str:
    if check is None:
        return '<td class="verdict absent" data-outcome="absent">not run</td>'
    label = _text(check.outcome)
    if link:
        label = f'<a href="#{link}">{label}</a>'
    note = check.reason or _first_line(check.message)
    title = f' title="{_text(note)}"' if note else ""
    outcome = _text(check.outcome)
    return f'<td class="verdict {outcome}" data-outcome="{outcome}"{title}>{label}</td>'


def _spec_cell(check: Check, shown: bool) -> str:
    return f'<td class="spec">{_text(check.spec)}</td>' if shown else ""


def _check_table(run: Run, anchors: dict[str, str]) -> str:
    # Without a spec for any check (a suite whose checks name none), the id and the group say it all.
    with_spec = any(check.spec for check in run.checks)
    rows = []
    for check in run.checks:
        note = check.reason or _first_line(check.message)
        rows.append(
            f'<tr class="check" data-check="{_text(check.id)}">'
            f'<td class="check"><code>{_text(check.id)}</code></td>'
            f"<td>{_text(check.group)}</td>"
            f"{_verdict_cell(check, anchors.get(check.id, ''))}"
            f"{_spec_cell(check, with_spec)}"
            f'<td class="note">{_text(note)}</td></tr>'
        )
    spec = "<th>spec</th>" if with_spec else ""
    return (
        f'<table id="checks"><thead><tr><th>check</th><th>group</th><th>verdict</th>{spec}'
        "<th>note</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _failures(run: Run, anchors: dict[str, str]) -> list[str]:
    sections = []
    for check in run.checks:
        if check.outcome != "failed":
            continue
        parts = [f'<section class="failure" id="{anchors[check.id]}" data-check="{_text(check.id)}">']
        parts.append(f"<h3><code>{_text(check.id)}</code></h3>")
        if check.spec:
            parts.append(f'<p class="spec">{_text(check.spec)}</p>')
        parts.append(f'<pre class="message">{_text(check.message)}</pre>')
        if check.exchange:
            parts.append(f'<p>HTTP exchange</p><pre class="exchange">{_text(check.exchange)}</pre>')
        if check.details:
            parts.append(
                f"<details><summary>pytest report</summary><pre>{_text(check.details)}</pre></details>"
            )
        parts.append("</section>")
        sections.append("".join(parts))
    return sections


def run_page(run: Run) -> str:
    """One run: its settings, the group table, every check, and each failure's HTTP exchange."""
    anchors = {check.id: f"failure-{i}" for i, check in enumerate(run.checks) if check.outcome == "failed"}
    failures = _failures(run, anchors)
    body = [
        f"<h1>Registry conformance: {_text(run.name)}</h1>",
        _meta(run),
        "<h2>Groups</h2>",
        _group_table(run),
        "<h2>Checks</h2>",
        _check_table(run, anchors),
        f"<h2>Failures ({len(failures)})</h2>",
        *(failures or ['<p class="note">none</p>']),
    ]
    return _page(f"Registry conformance: {run.name}", body)


def _runs_table(runs: t.Sequence[Run]) -> str:
    head = "".join(f"<th>{column}</th>" for column in COLUMNS)
    rows = []
    for index, run in enumerate(runs):
        total = run.counts()["total"]
        cells = "".join(_count_cell(column, total[column]) for column in COLUMNS)
        rows.append(
            f'<tr data-run="{index}"><td>{_text(run.name)}</td><td>{_text(run.target)}</td>'
            f"<td>{_text(run.profile)}</td><td>{_text(run.started)}</td>{cells}</tr>"
        )
    return (
        '<table id="runs"><thead><tr><th>run</th><th>registry</th><th>profile</th><th>started</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _compared_groups(runs: t.Sequence[Run]) -> str:
    shown = ("passed", "failed", "unsupported")
    counts = [run.counts() for run in runs]
    names = list(dict.fromkeys(name for table in counts for name in table if name != "total"))
    descriptions = {name: text for run in runs for name, text in run.groups.items()}
    top = "".join(f'<th colspan="{len(shown)}">{_text(run.name)}</th>' for run in runs)
    sub = "".join(f"<th>{column}</th>" for _ in runs for column in shown)
    rows = []
    for name in [*names, "total"]:
        cells = ""
        for table in counts:
            row = table.get(name)
            cells += "".join(
                _count_cell(column, row[column]) if row else '<td class="n absent">-</td>' for column in shown
            )
        kind = ' class="total"' if name == "total" else f' data-group="{_text(name)}"'
        rows.append(
            f"<tr{kind}><td>{_text(name)}</td><td>{_text(descriptions.get(name, ''))}</td>{cells}</tr>"
        )
    return (
        f'<table id="groups"><thead><tr><th rowspan="2">group</th><th rowspan="2">checks</th>{top}</tr>'
        f"<tr>{sub}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _compared_checks(runs: t.Sequence[Run], anchors: list[dict[str, str]]) -> str:
    by_run = [{check.id: check for check in run.checks} for run in runs]
    ids = list(dict.fromkeys(check.id for run in runs for check in run.checks))
    head = "".join(f"<th>{_text(run.name)}</th>" for run in runs)
    with_spec = any(check.spec for run in runs for check in run.checks)
    rows = []
    for check_id in ids:
        found = [checks.get(check_id) for checks in by_run]
        known = next(check for check in found if check is not None)
        outcomes = {check.outcome if check else "absent" for check in found}
        differs = ' class="check differs"' if len(outcomes) > 1 else ' class="check"'
        cells = "".join(
            _verdict_cell(check, links.get(check_id, "")) for check, links in zip(found, anchors, strict=True)
        )
        name = _text(check_id)
        rows.append(
            f'<tr{differs} data-check="{name}"><td class="check"><code>{name}</code></td>'
            f"<td>{_text(known.group)}</td>{_spec_cell(known, with_spec)}{cells}</tr>"
        )
    spec = "<th>spec</th>" if with_spec else ""
    return (
        f'<table id="checks"><thead><tr><th>check</th><th>group</th>{spec}{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def comparison_page(runs: t.Sequence[Run]) -> str:
    """Several runs side by side: their totals, the groups, and a row per check with a column per run."""
    if not runs:
        raise ReportError("nothing to compare")
    anchors = [
        {
            check.id: f"run{index}-failure-{i}"
            for i, check in enumerate(run.checks)
            if check.outcome == "failed"
        }
        for index, run in enumerate(runs)
    ]
    body = ["<h1>Registry conformance: side by side</h1>", _runs_table(runs), "<h2>Groups</h2>"]
    body += [_compared_groups(runs), "<h2>Checks</h2>", _compared_checks(runs, anchors)]
    for run, links in zip(runs, anchors, strict=True):
        failures = _failures(run, links)
        body.append(f"<h2>Failures on {_text(run.name)} ({len(failures)})</h2>")
        body += failures or ['<p class="note">none</p>']
    return _page("Registry conformance: side by side", body)


# -- command line ----------------------------------------------------------------------------------------


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.report", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="print each report's table and failures")
    summary.add_argument("reports", nargs="+", metavar="REPORT.json")
    compare = commands.add_parser("compare", help="write a side-by-side HTML page of several reports")
    compare.add_argument("reports", nargs="+", metavar="REPORT.json")
    compare.add_argument("--html", required=True, metavar="PATH")
    arguments = parser.parse_args(argv)
    try:
        runs = [load(path) for path in arguments.reports]
    except ReportError as error:
        parser.error(str(error))
    if arguments.command == "summary":
        print("\n".join(summaries(runs)).rstrip())
    else:
        print(write_html(comparison_page(runs), arguments.html))
    return 0


if __name__ == "__main__":
    sys.exit(main())
