"""What the conformance suite shows people: bodies, failure reports, the header, the JSON and HTML reports,
the side-by-side page in a real browser, and the per-run reports CI prints.

The suite runs in child processes (``conformance.runner``) against real servers: the in-process emulator,
a WSGI app that answers binary garbage, ``python -m emulator serve`` and Debian's docker-registry.
"""

from __future__ import annotations

import dataclasses
import html.parser
import re
import shutil
import struct
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

import emulator
from conformance import report
from conformance.plugin import spec_of
from conformance.render import body
from conformance.render import printable
from conformance.runner import REPORT_DIR
from conformance.runner import child_environ
from conformance.runner import pytest_command
from conformance.runner import run
from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.distribution import distribution_available
from pax_registry_fixtures.process import RegistryProcess

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment

#: Bytes no terminal should receive from the suite: C0 controls but tab and newline, and DEL.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")

#: What the garbage registry answers: a NUL, a screen clear, a window title and a bell.
GARBAGE = b"\x00\x01\x1b[2J\x1b]0;pwned\x07 not a registry answer"

WINDOW = (1400, 1800)


# -- bodies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "media_type", "shown"),
    [
        (b"", "application/json", ""),
        (b'{"errors":[]}', "application/json", '{"errors":[]}'),
        (b'{"a":1}\r\n', "application/octet-stream", '{"a":1}\n'),
        (b"line one\n\tline two", None, "line one\n\tline two"),
        (
            b"\x1f\x8b\x08\x00" + bytes(40),
            "application/vnd.oci.image.layer.v1.tar+gzip; x=y",
            "44 bytes of application/vnd.oci.image.layer.v1.tar+gzip, not text: 1f 8b 08 00 00",
        ),
        (b"text with \x1b[31m colour", "text/plain", "22 bytes of text/plain, not text: 74 65 78 74"),
        (b"\x00", None, "1 bytes of unknown type, not text: 00"),
        (b"\xff\xfe\xfd", "text/plain", "3 bytes of text/plain, not text: ff fe fd"),
    ],
    ids=["empty", "json", "crlf", "tab", "gzip", "escape", "nul", "latin"],
)
def test_bodies_show_as_text_or_as_hex(data: bytes, media_type: str | None, shown: str) -> None:
    assert body(data, media_type).startswith(shown)
    assert not CONTROL.search(body(data, media_type).replace("\t", ""))


def test_long_bodies_are_cut_without_breaking_a_character() -> None:
    text = "é" * 300  # 600 bytes: the limit falls inside a character
    assert body(text.encode(), "text/plain", limit=101) == "é" * 50 + "... (500 more bytes)"
    first = " ".join(f"{byte:02x}" for byte in range(32))
    assert body(bytes(range(256)), None) == f"256 bytes of unknown type, not text: {first} ..."


def test_printable_escapes_controls_and_keeps_lines() -> None:
    assert printable("a\x00b\x1b[2Jc\x07d\u202ee\r\nf\tg\rh") == "a\\x00b\\x1b[2Jc\\x07d\\u202ee\nf\tg\\x0dh"
    assert printable("plain text\nwith lines") == "plain text\nwith lines"


# -- a registry that answers garbage ---------------------------------------------------------------------


def _garbage_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    stream = environ["wsgi.input"]
    while stream.read(65536):
        pass
    if environ["PATH_INFO"] == "/v2/":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(GARBAGE)))]
    start_response("500 Internal Server Error", headers)
    return [GARBAGE]


@pytest.fixture
def garbage_registry() -> t.Iterator[str]:
    with emulator.serve_wsgi(_garbage_app) as server:
        yield server.url


def run_pytest(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_command(list(args)),
        cwd=tmp_path,
        env=child_environ(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_failure_reports_never_print_control_bytes(tmp_path: Path, garbage_registry: str) -> None:
    result = run_pytest(
        tmp_path,
        "--pyargs",
        "conformance",
        "-m",
        "push",
        f"--pax-registry-url={garbage_registry}",
        f"--pax-report-json={tmp_path / 'run.json'}",
        f"--pax-report-html={tmp_path / 'run.html'}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "pax conformance: HTTP exchange" in output
    assert not CONTROL.search(output), CONTROL.search(output)
    # The garbage is there for people to read, escaped or in hex.
    assert "\\x1b]0;pwned" in output or "1b 5d 30 3b 70 77 6e 65 64" in output
    assert "< 500 Internal Server Error" in output

    run_report = report.load(tmp_path / "run.json")
    failed = [check for check in run_report.checks if check.outcome == "failed"]
    assert failed, run_report.counts()
    assert all(check.exchange and check.message for check in failed)
    for check in run_report.checks:
        for value in dataclasses.astuple(check):
            assert not CONTROL.search(str(value).replace("\t", "")), (check.id, value)
    page = (tmp_path / "run.html").read_text()
    assert not CONTROL.search(page.replace("\t", ""))
    tables = Tables.of(page)
    assert len(tables["checks"]) == len(run_report.checks)
    assert page.count('<section class="failure"') == len(failed)


# -- reading pages -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    attrs: dict[str, str]
    cells: list[tuple[dict[str, str], str]]

    def texts(self) -> list[str]:
        return [text for _, text in self.cells]


class Tables(html.parser.HTMLParser):
    """The rows of every ``<table id=...>`` of a page (body rows only), with their cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[Row]] = {}
        self.heads: dict[str, list[str]] = {}
        self.external: list[str] = []
        self._table: str | None = None
        self._in_head = False
        self._row: Row | None = None
        self._cell: list[str] | None = None
        self._cell_attrs: dict[str, str] = {}

    @classmethod
    def of(cls, page: str) -> dict[str, list[Row]]:
        parser = cls()
        parser.feed(page)
        parser.close()
        return parser.tables

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        # A self-contained page loads nothing: no scripts, stylesheets, images or frames from elsewhere.
        if tag in ("script", "link", "img", "iframe") or "src" in values:
            self.external.append(tag)
        if tag == "table":
            self._table = values.get("id", "")
            self.tables[self._table] = []
            self.heads[self._table] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr" and self._table is not None:
            self._row = Row(values, [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._cell_attrs = [], values

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.cells.append((self._cell_attrs, "".join(self._cell).strip()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._in_head:
                self.heads[self._table] += self._row.texts()
            else:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


# -- xdist ---------------------------------------------------------------------------------------------


def test_reports_of_an_xdist_run_match_a_serial_run(tmp_path: Path) -> None:
    for name, extra in (("serial", []), ("xdist", ["-n", "2"])):
        result = run_pytest(
            tmp_path, "--pyargs", "conformance", "-q", f"--pax-report-json={tmp_path / name}.json", *extra
        )
        assert result.returncode == 0, result.stdout[-3000:]
    serial, xdist = report.load(tmp_path / "serial.json"), report.load(tmp_path / "xdist.json")
    assert [(c.id, c.group, c.outcome) for c in xdist.checks] == [
        (c.id, c.group, c.outcome) for c in serial.checks
    ]
    assert xdist.counts() == serial.counts()
    assert serial.counts()["total"]["passed"] > 0


# -- docker-registry and the emulator side by side, in a browser ------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def screenshot(page: Path, png: Path, profile_dir: Path) -> None:
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed (Debian package chromium; noxfile.install_peers installs it)"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile_dir}",
        f"--screenshot={png}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.as_uri(),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr[-3000:]


def _run_against(kind: str, workdir: Path) -> tuple[report.Run, Path]:
    server: DistributionServer | RegistryProcess
    if kind == "distribution":
        server = DistributionServer(workdir=workdir / kind).start()
    else:
        config = {
            "storage": {"filesystem": {"rootdirectory": str(workdir / kind)}, "delete": {"enabled": True}},
            "log": {"level": "error", "accesslog": {"disabled": True}},
        }
        server = RegistryProcess(config).start()
    json_path, html_path = workdir / f"{kind}.json", workdir / f"{kind}.html"
    try:
        run(
            server.url,
            args=[
                f"--pax-registry-config={server.config_path}",
                f"--pax-report-json={json_path}",
                f"--pax-report-html={html_path}",
                f"--pax-report-name={kind}",
            ],
        )
    finally:
        server.stop()
    return report.load(json_path), html_path


@pytest.mark.peers
def test_side_by_side_page_of_docker_registry_and_the_emulator_in_chromium(tmp_path: Path) -> None:
    assert distribution_available(), "docker-registry is not installed (Debian package docker-registry)"
    runs = [_run_against(kind, tmp_path) for kind in ("distribution", "emulator")]
    page = tmp_path / "side-by-side.html"
    compared = run_pytest(
        tmp_path,
        "--pax-report-compare",
        *(str(tmp_path / f"{kind}.json") for kind in ("distribution", "emulator")),
        f"--pax-report-html={page}",
    )
    assert compared.returncode == 0, compared.stdout + compared.stderr

    png = tmp_path / "side-by-side.png"
    screenshot(page, png, tmp_path / "chromium-profile")
    assert _png_size(png) == WINDOW
    # A blank page of this size compresses to a few kilobytes; tables of text and colour do not.
    assert png.stat().st_size > 50_000

    parser = Tables()
    parser.feed(page.read_text())
    assert parser.external == []
    assert "<style>" in page.read_text()
    tables = parser.tables
    assert [row.texts()[0] for row in tables["runs"]] == ["distribution", "emulator"]
    assert [row.texts()[0] for row in tables["groups"]][-1] == "total"
    assert parser.heads["checks"][-2:] == ["distribution", "emulator"]
    rows = {row.attrs["data-check"]: row for row in tables["checks"]}
    expected = {check.id for result, _ in runs for check in result.checks}
    assert len(rows) == len(tables["checks"]) and set(rows) == expected
    for column, (result, _) in enumerate(runs, start=1):
        for check in result.checks:
            attrs, text = rows[check.id].cells[-3 + column]
            assert (attrs["data-outcome"], text) == (check.outcome, check.outcome), check.id
    distribution = runs[0][0]
    failed = [check for check in distribution.checks if check.outcome == "failed"]
    # 2.8.2 answers a manifest GET by the digest sha256:totallywrong with 500 (the spec allows 400, 404).
    assert failed, distribution.counts()
    assert page.read_text().count('<section class="failure"') == sum(
        check.outcome == "failed" for result, _ in runs for check in result.checks
    )

    for result, html_path in runs:
        single = Tables()
        single.feed(html_path.read_text())
        assert single.external == []
        assert [row.attrs["data-check"] for row in single.tables["checks"]] == [c.id for c in result.checks]
        counts = result.counts()
        for row in single.tables["groups"]:
            name = row.texts()[0]
            assert [int(text) for text in row.texts()[2:]] == [counts[name][c] for c in report.COLUMNS]


# -- CI: a report per run, and their summary ---------------------------------------------------------------


def test_runner_writes_a_report_per_run_for_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    monkeypatch.setenv(REPORT_DIR, str(reports))
    first = run(args=["-m", "pack"])
    run(args=["-m", "pack"])
    name = "test_runner_writes_a_report_per_run_for_ci"
    assert sorted(path.name for path in reports.iterdir()) == [f"{name}-2.json", f"{name}.json"]
    assert report.load(reports / f"{name}.json").name == name
    assert {check.id for check in report.load(reports / f"{name}.json").checks} == set(first.outcomes)

    printed = subprocess.run(
        [sys.executable, "-m", "conformance.report", "summary", *sorted(map(str, reports.iterdir()))],
        capture_output=True,
        text=True,
        check=True,
        env=child_environ(),
    ).stdout
    assert printed.count(f"== {name}") == 2
    assert re.search(r"^pack\s+\d+\s+0\s+0\s+0$", printed, re.MULTILINE), printed
    assert re.search(r"^total\s+", printed, re.MULTILINE), printed


def test_summary_lists_each_failure_in_a_line() -> None:
    checks = [
        report.Check("test_pull::test_a", "pull", "passed"),
        report.Check("test_pull::test_b", "pull", "failed", message="assert 500 in (400, 404)\n+ where 500"),
        report.Check("test_pack::test_c", "pack", "unsupported", reason="unsupported: pack health (404)"),
    ]
    run_report = report.Run(
        "r", "http://x", "oci", "ns", "2024-01-01T00:00:00+00:00", 1.0, {"pull": ""}, checks
    )
    lines = report.summary_lines(run_report)
    assert lines[0] == "== r: http://x (profile oci) =="
    assert "  test_pull::test_b: assert 500 in (400, 404)" in lines
    assert "unsupported: pack health (404)" in lines
    assert [line.split()[0] for line in lines[2:5]] == ["pull", "pack", "total"]

    other = dataclasses.replace(run_report, name="s", checks=checks[:2])
    both = report.summaries([run_report, other])
    assert both.count("unsupported: pack health (404)") == 0
    assert both[-2:] == ["unsupported:", "  pack health (404) (in 1 of 2 runs)"]
    assert [line for line in both if line.startswith("==")] == [lines[0], "== s: http://x (profile oci) =="]


def test_run_page_shows_specs_verdicts_and_exchanges() -> None:
    checks = [
        report.Check("test_pull::test_a", "pull", "passed", spec="distribution-spec 1.1 §Pulling blobs"),
        report.Check(
            "test_pull::test_b", "pull", "failed", message="assert 500 == 404", exchange="> GET /v2/\n< 500"
        ),
        report.Check("test_pack::test_c", "pack", "unsupported", reason="unsupported: health"),
    ]
    run_report = report.Run(
        "r", "http://x", "pack", "ns", "2024-01-01T00:00:00+00:00", 1.0, {"pull": "P"}, checks
    )
    page = report.run_page(run_report)
    parser = Tables()
    parser.feed(page)
    assert parser.external == []
    assert parser.heads["checks"] == ["check", "group", "verdict", "spec", "note"]
    rows = parser.tables["checks"]
    assert [row.texts()[:4] for row in rows] == [
        ["test_pull::test_a", "pull", "passed", "distribution-spec 1.1 §Pulling blobs"],
        ["test_pull::test_b", "pull", "failed", ""],
        ["test_pack::test_c", "pack", "unsupported", ""],
    ]
    assert [row.texts() for row in parser.tables["groups"]] == [
        ["pull", "P", "1", "1", "0", "0"],
        ["pack", "", "0", "0", "1", "0"],
        ["total", "", "1", "1", "1", "0"],
    ]
    assert page.count('<section class="failure"') == 1
    assert "&gt; GET /v2/\n&lt; 500" in page
    without_specs = Tables()
    without_specs.feed(report.run_page(dataclasses.replace(run_report, checks=checks[1:])))
    assert "spec" not in without_specs.heads["checks"]


def test_spec_comes_from_the_marker_or_the_docstring() -> None:
    def documented() -> None:
        """Pulling blobs: a GET of an unknown digest answers 404.

        More words that are not the rule."""

    class Item:
        def __init__(self, marker: pytest.Mark | None, obj: object) -> None:
            self.marker, self.obj = marker, obj

        def get_closest_marker(self, name: str) -> pytest.Mark | None:
            return self.marker if name == "spec" else None

    marked = Item(pytest.mark.spec("distribution-spec 1.1", "§Pull").mark, documented)
    assert spec_of(t.cast(pytest.Item, marked)) == "distribution-spec 1.1 §Pull"
    assert spec_of(t.cast(pytest.Item, Item(None, documented))) == (
        "Pulling blobs: a GET of an unknown digest answers 404."
    )
    assert spec_of(t.cast(pytest.Item, Item(None, lambda: None))) == ""


# -- options -------------------------------------------------------------------------------------------


def test_compare_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"tests": []}')
    result = run_pytest(
        tmp_path, "--pax-report-compare", str(other), f"--pax-report-html={tmp_path / 'x.html'}"
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"{other}: not a pax-conformance-report document" in result.stderr
    assert not (tmp_path / "x.html").exists()
    result = run_pytest(tmp_path, "--pax-report-compare", str(other))
    assert result.returncode == 4 and "--pax-report-html" in result.stderr


def test_profile_is_an_option_shown_in_the_header(tmp_path: Path) -> None:
    shown = run_pytest(tmp_path, "--pyargs", "conformance", "--co", "--pax-registry-profile=docker")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "pax conformance profile: docker" in shown.stdout
    by_env = run_pytest(tmp_path, "--pyargs", "conformance", "--co", env={"PAX_REGISTRY_PROFILE": "pack"})
    assert "pax conformance profile: pack" in by_env.stdout
    default = run_pytest(tmp_path, "--pyargs", "conformance", "--co")
    assert "pax conformance profile: oci" in default.stdout
    wrong = run_pytest(tmp_path, "--pyargs", "conformance", "--co", env={"PAX_REGISTRY_PROFILE": "podman"})
    assert wrong.returncode == 4
    assert "--pax-registry-profile=podman: choose one of oci, docker, pack" in wrong.stderr
