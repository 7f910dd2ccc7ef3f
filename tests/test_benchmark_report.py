"""The benchmark report's limit column and verdicts, the nginx that measures the limit, and the SVG chart
drawn from the report's rows."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks import chart
from benchmarks import limits
from benchmarks import servers
from benchmarks.client import Blob
from benchmarks.report import LIMIT
from benchmarks.report import Results
from benchmarks.report import Target
from benchmarks.scenarios import PULL_TARGET
from benchmarks.scenarios import PUSH_TARGET
from pax_registry_fixtures.client import Client

SVG = "{http://www.w3.org/2000/svg}"


def small_results() -> Results:
    """A pull row with a limit, a push row, a latency row and a row with one side only."""
    results = Results(
        {
            "date": "2026-12-01 19:00 UTC",
            "mode": "quick",
            "rounds": 3,
            "blob": "64 MiB",
            "storage": "/dev/shm (tmpfs)",
            "machine": "2 CPUs",
            "python": "3.11.7",
            "distribution_version": "docker-registry 2.8.2",
        }
    )
    results.metric("pull", "pull 64 MiB blob", "MB/s", "higher", PULL_TARGET, limit="nginx, sendfile on")
    results.metric(
        "push", "push 64 MiB blob <monolithic> & more", "MB/s", "higher", PUSH_TARGET, limit="sha256"
    )
    results.metric("p99", "manifest GET p99", "ms", "lower", Target("ratio ≤ 1.0", ratio_at_most=1.0))
    results.metric("fixture", "fixture start + stop", "ms", "lower", Target("< 20 ms", emulator_below=20))
    for emulator, distribution, limit in ((2000, 2100, 2150), (2200, 2000, 2200), (1900, 2200, 2100)):
        results.add("pull", "emulator", emulator)
        results.add("pull", "distribution", distribution)
        results.add("pull", LIMIT, limit)
    for emulator, distribution, limit in ((600, 280, 1500), (620, 290, 1400), (610, 300, 1450)):
        results.add("push", "emulator", emulator)
        results.add("push", "distribution", distribution)
        results.add("push", LIMIT, limit)
    for emulator, distribution in ((20, 120), (25, 100), (22, 130)):
        results.add("p99", "emulator", emulator)
        results.add("p99", "distribution", distribution)
    results.add("fixture", "emulator", 0.3)
    return results


def test_rows_carry_the_limit_and_which_bound_met_the_target(tmp_path: Path) -> None:
    results = small_results()
    results.write_json(tmp_path / "bench.json")
    rows = {row["id"]: row for row in json.loads((tmp_path / "bench.json").read_text())["rows"]}

    pull = rows["pull"]
    assert (pull["limit"], pull["limit_min"], pull["limit_max"]) == (2150, 2100, 2200)
    assert pull["limit_ratio"] == pytest.approx(2000 / 2150)
    assert pull["ratio"] == pytest.approx(2000 / 2100)
    assert pull["limit_source"] == "nginx, sendfile on"
    assert pull["samples"][LIMIT] == [2150, 2200, 2100]
    # 0.95x distribution misses 1.3x, but distribution is within 10% of nginx and the emulator at 0.93 of it.
    assert (pull["met"], pull["met_by"]) == (True, "limit")

    push = rows["push"]
    assert push["limit_ratio"] == pytest.approx(610 / 1450)
    # 2.1x distribution, but 0.42 of sha256: both bounds are asked for.
    assert (push["met"], push["met_by"]) == (False, None)

    assert rows["p99"][LIMIT] is None and rows["p99"]["limit_ratio"] is None
    assert (rows["p99"]["met"], rows["p99"]["met_by"]) == (True, "ratio")
    assert rows["fixture"]["ratio"] is None and rows["fixture"]["met"] is True


def test_the_pull_target_falls_back_to_the_limit_only_when_distribution_is_near_it() -> None:
    assert PULL_TARGET.verdict(1400, 1.35, 0.7, 0.5) == (True, "ratio")
    assert PULL_TARGET.verdict(1900, 0.95, 0.92, 0.97) == (True, "limit")
    assert PULL_TARGET.verdict(1900, 1.1, 0.92, 0.85) == (False, None)  # distribution 15% below nginx
    assert PULL_TARGET.verdict(1700, 0.85, 0.85, 1.0) == (False, None)
    assert PULL_TARGET.verdict(None, None, None, None) == (None, None)
    assert PUSH_TARGET.verdict(600, 2.1, 0.55) == (True, "ratio and limit")
    assert PUSH_TARGET.verdict(600, 2.1, None) == (None, None)


def test_the_markdown_table_has_the_limit_columns() -> None:
    lines = small_results().markdown().splitlines()
    header = next(line for line in lines if line.startswith("| Scenario"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    assert cells[4:7] == ["Ratio emu/dist", "Limit: median (min-max)", "Ratio emu/limit"]
    pull = next(line for line in lines if line.startswith("| pull 64 MiB blob"))
    cells = [cell.strip() for cell in pull.strip("|").split("|")]
    assert len(cells) == len(header.strip("|").split("|"))
    assert cells[5] == "2,150 (2,100-2,200) *nginx, sendfile on*"
    assert cells[6] == "0.93"
    assert cells[-1] == "yes (by limit)"
    p99 = next(line for line in lines if line.startswith("| manifest GET p99"))
    assert p99.endswith("| yes |")  # a target without a limit clause needs no "by"


def test_the_chart_is_an_svg_with_a_bar_per_compared_row_and_target_marks() -> None:
    rows = small_results().rows()
    document = chart.render(rows, "Emulator <against> distribution")
    root = ET.fromstring(document)  # well-formed XML, escaped labels included
    assert root.tag == f"{SVG}svg"
    assert root.findtext(f"{SVG}title") == "Emulator <against> distribution"
    texts = [element.text or "" for element in root.iter(f"{SVG}text")]
    assert "push 64 MiB blob <monolithic> & more" in texts
    assert "fixture start + stop" not in texts  # no ratio to draw
    bars = {
        (element.findtext(f"{SVG}title") or "").split(":")[0]: element
        for element in root.iter(f"{SVG}rect")
        if element.find(f"{SVG}title") is not None and element.get("height") == "12"
    }
    assert set(bars) == {"pull 64 MiB blob", "push 64 MiB blob <monolithic> & more", "manifest GET p99"}
    assert bars["push 64 MiB blob <monolithic> & more"].get("fill") == chart.COLOURS[False]
    assert bars["manifest GET p99"].get("fill") == chart.COLOURS[True]
    # A median of 22 ms against 120 ms is drawn as 5.45x better, right of parity.
    p99 = bars["manifest GET p99"]
    assert "5.45" in (p99.findtext(f"{SVG}title") or "")
    limit_bars = [element for element in root.iter(f"{SVG}rect") if element.get("fill") == chart.LIMIT_COLOUR]
    assert len(limit_bars) == 1 + 2  # the legend's swatch and the pull and push rows
    marks = [
        element
        for element in root.iter(f"{SVG}line")
        if (element.findtext(f"{SVG}title") or "").startswith("target")
    ]
    assert len(marks) == 2 + 2 + 1  # pull: 1.3 and 0.9; push: 2.0 and 0.5; p99: parity
    # Bars start at parity: the push row's bar is right of the pull row's (2.0x against 0.95x).
    pull_bar, push_bar = bars["pull 64 MiB blob"], bars["push 64 MiB blob <monolithic> & more"]
    assert float(push_bar.get("x", 0)) + float(push_bar.get("width", 0)) > float(
        pull_bar.get("x", 0)
    ) + float(pull_bar.get("width", 0))


def test_an_empty_table_still_draws_a_valid_chart(tmp_path: Path) -> None:
    path = tmp_path / "out" / "chart.svg"
    chart.write([], "nothing measured", path)
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    assert [element for element in root.iter(f"{SVG}rect") if element.find(f"{SVG}title") is not None] == []


@pytest.mark.needs("nginx")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_nginx_serves_the_blob_and_manifest_from_a_private_directory(tmp_path: Path, tls: bool) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)  # as the benchmark's mkdtemp: nginx's workers must still read it
    blob = Blob.create(str(private / "blob.bin"), 3 * (1 << 20) + 5)
    manifest = private / "manifest.json"
    manifest.write_bytes(b'{"schemaVersion": 2}')
    files = servers.make_tls(tmp_path / "tls") if tls else None
    static = {limits.BLOB_PATH: Path(blob.path), limits.MANIFEST_PATH: manifest}
    with limits.Nginx(tmp_path / "nginx", static, files) as nginx:
        assert limits.pull(nginx, blob) > 0  # checks that every byte arrived
        with Client(nginx.url, nginx.client_context()) as client:
            response = client.request("GET", limits.MANIFEST_PATH)
        assert (response.status, response.body) == (200, manifest.read_bytes())
        pid = nginx.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert limits.sha256(blob) > 0  # checks the digest


def test_the_sha256_limit_notices_a_changed_file(tmp_path: Path) -> None:
    blob = Blob.create(str(tmp_path / "blob.bin"), 1000)
    Path(blob.path).write_bytes(b"x" * 1000)
    with pytest.raises(RuntimeError, match="changed"):
        limits.sha256(blob)
