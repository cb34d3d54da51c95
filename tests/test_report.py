"""The HTML report, the PNG, the exports and `analyze --markdown`, end to end through the real CLI."""

from __future__ import annotations

import html
import json
import os
import random
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from experiment_core.reports.report import metric_cells, metric_rows, verdict_line
from tests.conftest import run_cli

NOW = {"EXPERIMENT_HOOK_NOW": "2026-01-02T12:00:00Z"}
PLOTS = ("plot-change", "plot-sequential", "plot-distribution", "plot-order")


def trials_csv(path: Path, n: int = 36, seed: int = 7) -> Path:
    """Timed trials with a warm-up, some shared units, one failed run and explicit times: a realistic ledger."""
    rng = random.Random(seed)
    rows = ["arm,value,metric,unit,ts,exit_code"]
    for i in range(n):
        arm = "control" if i % 2 == 0 else "treatment"
        base = 10.0 if arm == "control" else 8.2
        value = base + 2.5 * max(0, 4 - i) / 4 + rng.gauss(0, 1.0)
        unit = f"u{i // 2 if i < 8 else i}"  # the first units hold two trials
        code = "1" if i == 13 else "0"
        rows.append(f"{arm},{value:.4f},time_to_complete,{unit}-{arm},2026-01-01T10:{i // 60:02d}:{i % 60:02d}Z,{code}")
    for i in range(12):
        arm = "control" if i % 2 == 0 else "treatment"
        rows.append(f"{arm},{50 + rng.gauss(0, 3):.3f},tokens,s{i},2026-01-01T11:00:{i:02d}Z,0")
    path.write_text("\n".join(rows) + "\n")
    return path


def add_secondary(repo: Path, exp: str) -> None:
    """Give experiment ``exp`` a secondary metric ``tokens`` (lower is better) in the registry."""
    text = (repo / "experiments.yaml").read_text()
    head, tail = text.split(f"- id: {exp}\n", 1)
    tail = tail.replace("\n    metric:\n", "\n    secondary:\n      - name: tokens\n        direction: lower\n"
                        "    metric:\n", 1)  # fmt: skip
    (repo / "experiments.yaml").write_text(f"{head}- id: {exp}\n{tail}")


@pytest.fixture
def exp_with_data(repo: Path, create_exp: Callable[..., str]) -> str:
    exp = create_exp("--sample-size", "12")
    add_secondary(repo, exp)
    run_cli(repo, "record", exp, "--from-csv", str(trials_csv(repo.parent / "trials.csv")))
    return exp


def analyze_json(repo: Path, exp: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(run_cli(repo, "analyze", exp, "--json", env=NOW).stdout)
    return out


def test_html_report_self_contained_four_svg_plots_numbers_equal_analyze(repo: Path, exp_with_data: str) -> None:
    exp = exp_with_data
    out = repo.parent / "out" / "report.html"
    run_cli(repo, "report", exp, "-o", str(out), env=NOW)
    page = out.read_text("utf-8")
    analysis = analyze_json(repo, exp)
    assert analysis["secondary"], "the fixture has a secondary metric"
    # four plots, each an inline <svg>
    for plot_id in PLOTS:
        assert re.search(rf'<svg id="{plot_id}"[^>]*>.*?</svg>', page, re.S), plot_id
    assert page.count("<svg") == 4
    # nothing outside the file
    lowered = page.lower()
    for forbidden in ("http:", "https:", "<script", "src=", "url(", "<link", "@import", "<iframe", "<img"):
        assert forbidden not in lowered, forbidden
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))
    # verdict first, then the metric rows; every number equals analyze --json's
    body = page[page.index("<body>"):]
    assert body.index(html.escape(verdict_line(exp, analysis))) < body.index('<table id="metrics">')
    embedded = json.loads(html.unescape(re.search(r'<pre id="analysis-json">(.*?)</pre>', page, re.S).group(1)))
    assert embedded == analysis
    rows = metric_rows(analysis)
    assert [r["role"] for r in rows] == ["primary", "secondary"]
    table = page[page.index('<table id="metrics">'):page.index("</table>", page.index('<table id="metrics">'))]
    for row in rows:
        for cell in metric_cells(row, "s"):
            assert f">{html.escape(cell)}</td>" in table, cell
    for text in ("Hypothesis", "Settings", "Decision log", "Alerts", "12 units per arm", "15 %"):
        assert html.escape(text) in page, text
    for reason in analysis["decision"]["reasons"]:  # type: ignore[index]
        assert html.escape(reason) in page


def test_report_index_of_all(repo: Path, exp_with_data: str, create_exp: Callable[..., str]) -> None:
    other = create_exp(file="build.sh")
    out = repo.parent / "index.html"
    proc = run_cli(repo, "report", "-o", str(out), env=NOW)
    assert "2 experiments" in proc.stdout
    page = out.read_text("utf-8")
    for exp in (exp_with_data, other):
        assert f'href="#exp-{exp}"' in page and f'id="exp-{exp}"' in page
    assert "http" not in page.lower() and "<script" not in page.lower()


def test_report_png_uses_matplotlib(repo: Path, exp_with_data: str) -> None:
    pytest.importorskip("matplotlib")
    out = repo.parent / "plots.png"
    run_cli(repo, "report", exp_with_data, "-o", str(out), env=NOW)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert width > 800 and height > 600


def test_report_refuses_unknown_extension(repo: Path, exp_with_data: str) -> None:
    proc = run_cli(repo, "report", exp_with_data, "-o", "x.pdf", check=False)
    assert proc.returncode != 0 and ".html or .png" in proc.stderr


def test_csv_export_round_trips_through_record(repo: Path, exp_with_data: str,
                                               create_exp: Callable[..., str]) -> None:  # fmt: skip
    exp = exp_with_data
    csv_path = repo.parent / "export" / "trials.csv"
    run_cli(repo, "export", exp, "-o", str(csv_path))
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("arm,metric,value,unit,commit,ts")
    assert len(lines) == 1 + 36 + 12
    twin = create_exp("--sample-size", "12", file="build.sh")
    add_secondary(repo, twin)
    run_cli(repo, "record", twin, "--from-csv", str(csv_path))
    original, copy = analyze_json(repo, exp), analyze_json(repo, twin)
    assert original.pop("experiment") == exp and copy.pop("experiment") == twin
    assert copy == original
    assert original["error_rate"]["errors"] == [0, 1]  # type: ignore[index]
    # and the export of the copy is the same file
    again = repo.parent / "export" / "again.csv"
    run_cli(repo, "export", twin, "-o", str(again))
    assert again.read_text() == csv_path.read_text()


def test_exports_jsonl_json_md(repo: Path, exp_with_data: str) -> None:
    exp = exp_with_data
    jsonl = run_cli(repo, "export", exp, "-o", "-", "--format", "jsonl").stdout.splitlines()
    events = [json.loads(line) for line in jsonl]
    assert {e["type"] for e in events} >= {"created", "trial"} and all(e["exp"] == exp for e in events)
    out = repo.parent / "a.json"
    run_cli(repo, "export", exp, "-o", str(out), env=NOW)
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and doc == analyze_json(repo, exp)
    md = run_cli(repo, "export", exp, "-o", "-", "--format", "md", env=NOW).stdout
    lines = md.splitlines()
    assert lines[2] == f"**{verdict_line(exp, doc)}**"
    assert lines[4].startswith("| metric | control | treatment | n | change (95 % CI) | p | decision |")
    assert sum(line.startswith("| time_to_complete") or line.startswith("| tokens") for line in lines) == 2
    bad = run_cli(repo, "export", exp, "-o", "x.txt", check=False)
    assert bad.returncode != 0 and "--format" in bad.stderr


def test_analyze_markdown_appends_to_github_step_summary(repo: Path, exp_with_data: str) -> None:
    summary = repo.parent / "step_summary.md"
    summary.write_text("earlier step\n")
    env = {**NOW, "GITHUB_STEP_SUMMARY": str(summary)}
    out = run_cli(repo, "analyze", exp_with_data, "--markdown", env=env).stdout
    run_cli(repo, "analyze", exp_with_data, "--markdown", env=env)
    assert summary.read_text() == "earlier step\n" + out + out
    assert out.startswith(f"### {exp_with_data}")


def test_analyze_text_is_verdict_first_then_rows_warnings_last(repo: Path, exp_with_data: str) -> None:
    out = run_cli(repo, "analyze", exp_with_data, env=NOW).stdout.splitlines()
    analysis = analyze_json(repo, exp_with_data)
    assert out[0] == verdict_line(exp_with_data, analysis)
    assert out[2].startswith("| metric |") and out[4].startswith("| time_to_complete |")
    assert out[5].startswith("| tokens (secondary) |")


# ---- the real browser -----------------------------------------------------------------------------------
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG with the standard library: (width, height, rows)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, idat, width, height, bpp = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind_ = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind_ == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind_ == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind_ == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind_ == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line[j] for j in range(stride) if bpp == 3 or j % 4 != 3))
        prev = line
    return width, height, rows


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=180, check=False)


def test_report_renders_in_a_real_headless_browser(repo: Path, exp_with_data: str, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium); required when CI is set")
    page = tmp_path / "report.html"
    run_cli(repo, "report", exp_with_data, "-o", str(page), env=NOW)
    analysis = analyze_json(repo, exp_with_data)
    url = page.resolve().as_uri()
    dom = run_chromium(browser, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom.stdout))
    assert verdict_line(exp_with_data, analysis) in text
    for words in ("(a) Change of each metric", "(b) Estimate and always-valid", "(c) Distribution of each arm",
                  "(d) Value against trial order", "Decision log"):
        assert words in text, words
    assert dom.stdout.count("<svg") == 4
    shot = tmp_path / "report.png"
    proc = run_chromium(browser, tmp_path / "profile2", "--window-size=1280,1180", f"--screenshot={shot}", url)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 1180)
    colours: set[bytes] = set()
    non_white = 0
    for y in range(0, height, 4):
        row = rows[y]
        for x in range(0, width, 4):
            px = row[3 * x:3 * x + 3]
            colours.add(px)
            non_white += px != b"\xff\xff\xff"
    sampled = (height // 4) * (width // 4)
    assert len(colours) > 50, len(colours)  # text, plots, fills: far from blank
    assert 0.03 < non_white / sampled < 0.9, non_white / sampled
    if os.environ.get("EXPERIMENT_HOOK_SAVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["EXPERIMENT_HOOK_SAVE_SCREENSHOT"])


# ---- terminal ----------------------------------------------------------------------------------------------
def test_static_lines_follow_pre_commits_rhythm() -> None:
    from experiment_core.reports.terminal import experiment_line, static_line

    assert static_line("check yaml", "Passed") == "check yaml" + "." * 63 + "Passed"
    row = {"id": "exp-1", "name": "x" * 200, "status": "running", "sample_size": 10,
           "analysis": {"decision": {"action": "continue"}, "more_trials_needed": 3,
                        "control": {"n": 7}, "treatment": {"n": 8}}}  # fmt: skip
    line = experiment_line(row)
    assert len(line) == 79 and line.endswith("...Collecting (7/10)") and "…" in line


def test_status_under_pre_commit_is_one_line_per_experiment(repo: Path, exp_with_data: str) -> None:
    out = run_cli(repo, "status", env={**NOW, "PRE_COMMIT": "1"}).stdout.splitlines()
    assert len(out) == 1 and out[0].startswith(exp_with_data) and len(out[0]) == 79
    assert "\x1b[" not in out[0]
    piped = run_cli(repo, "status", env=NOW).stdout
    assert piped.splitlines() == out  # in a pipe too
    report = run_cli(repo, "status", "--markdown", env=NOW).stdout
    assert report.splitlines()[0].startswith(verdict_line(exp_with_data, analyze_json(repo, exp_with_data))[:20])
    assert "\x1b[" not in report


def test_status_on_a_terminal_is_a_table_and_honours_no_color(repo: Path, exp_with_data: str) -> None:
    if shutil.which("script") is None:
        pytest.skip("util-linux `script` is needed to give the command a terminal")
    import shlex
    import sys

    cmd = f"{shlex.quote(sys.executable)} -m experiment_core status"
    from tests.conftest import cli_env

    def tty(extra: dict[str, str]) -> str:
        env = cli_env({**NOW, "COLUMNS": "140", **extra})
        env.pop("NO_COLOR", None) if "NO_COLOR" not in extra else None
        return subprocess.run(["script", "-qec", cmd, "/dev/null"], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=60, check=True).stdout  # fmt: skip

    coloured = tty({})
    assert "\x1b[" in coloured and "change (95 % CI)" in coloured and "━" in coloured
    assert coloured.index("PROMOTE") < coloured.index("change (95 % CI)") or "COLLECTING" in coloured
    plain = tty({"NO_COLOR": "1"})
    assert "change (95 % CI)" in plain and "\x1b[1;32m" not in plain and "\x1b[32m" not in plain


def test_renderers_do_not_import_rich_or_plotting() -> None:
    code = ("import sys, experiment_core.reports.report, experiment_core.reports.terminal, "
            "experiment_core.reports.report_html, experiment_core.reports.exports; "
            "bad = [m for m in ('rich', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")  # fmt: skip
    import sys

    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_sequential_path_ends_at_analyzes_always_valid_interval() -> None:
    import math

    from experiment_core.evidence.analysis import analyze_experiment
    from experiment_core.reports.history import sequential_path, trials_in_order
    from experiment_core.store.spec import Experiment

    rng = random.Random(1)
    events = []
    for i in range(30):
        arm = "control" if i % 3 else "treatment"
        events.append({"type": "trial", "exp": "e1", "id": f"t{i}", "arm": arm, "metric": "time_to_complete",
                       "value": (10 if arm == "control" else 8.5) + rng.gauss(0, 1), "unit": f"u{i}",
                       "ts": f"2026-01-01T10:00:{i:02d}Z"})  # fmt: skip
    exp = Experiment(id="e1", name="n", files={"a": ".experiments/e1/a"}, sample_size=8)
    seq = analyze_experiment(exp, events).to_dict()["sequential"]
    path = sequential_path(trials_in_order(events, "e1", "time_to_complete"), "e1", "time_to_complete",
                           direction="lower", alpha=0.05, sample_size=8)  # fmt: skip
    assert [p.n for p in path] == list(range(path[0].n, 31))
    assert path[-1].n == seq["n"]
    assert math.isclose(path[-1].lo, seq["relative_ci95"][0], rel_tol=1e-12)
    assert math.isclose(path[-1].hi, seq["relative_ci95"][1], rel_tol=1e-12)
    assert all(p.lo <= p.estimate <= p.hi for p in path)
