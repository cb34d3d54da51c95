"""`analyze --json` end to end: numbers checked against scipy and hand computation (an independent oracle)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats as sps

from tests.conftest import run_cli

CONTROL = [45.1, 52.3, 38.9, 47.7, 58.0, 41.2, 44.6, 49.9, 32.4, 51.0]
TREATMENT = [27.4, 31.2, 22.8, 25.9, 35.0, 21.3, 29.7, 26.1, 24.4, 30.5]


def test_analyze_json_matches_scipy(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    csv = repo.parent / "t.csv"
    csv.write_text("arm,value\n" + "".join(f"control,{v}\n" for v in CONTROL)
                   + "".join(f"treatment,{v}\n" for v in TREATMENT))  # fmt: skip
    run_cli(repo, "record", exp, "--from-csv", str(csv))
    out = json.loads(run_cli(repo, "analyze", exp, "--json").stdout)

    c, t = np.array(CONTROL), np.array(TREATMENT)
    welch = sps.ttest_ind(t, c, equal_var=False)
    assert out["test"] == "welch"
    assert math.isclose(abs(out["statistic"]), abs(welch.statistic), rel_tol=1e-9)
    assert math.isclose(out["p_value"], welch.pvalue, rel_tol=1e-9)
    v1, v2 = c.var(ddof=1) / len(c), t.var(ddof=1) / len(t)
    df = (v1 + v2) ** 2 / (v1**2 / (len(c) - 1) + v2**2 / (len(t) - 1))  # Welch–Satterthwaite by hand
    assert math.isclose(out["df"], df, rel_tol=1e-9)
    pooled = math.sqrt(((len(c) - 1) * c.var(ddof=1) + (len(t) - 1) * t.var(ddof=1)) / (len(c) + len(t) - 2))
    assert math.isclose(out["effect_size"], (t.mean() - c.mean()) / pooled, rel_tol=1e-9)
    half = sps.t.ppf(0.975, df) * math.sqrt(v1 + v2)
    diff = t.mean() - c.mean()
    assert math.isclose(out["ci95"][0], diff - half, rel_tol=1e-9)
    assert math.isclose(out["ci95"][1], diff + half, rel_tol=1e-9)
    assert math.isclose(out["difference"], diff, rel_tol=1e-12)
    assert math.isclose(out["improvement_pct"], (c.mean() - t.mean()) / c.mean() * 100, rel_tol=1e-9)
    for arm, data in (("control", c), ("treatment", t)):
        assert out[arm]["n"] == 10
        assert math.isclose(out[arm]["mean"], data.mean(), rel_tol=1e-12)
        assert math.isclose(out[arm]["std"], data.std(ddof=1), rel_tol=1e-9)
        assert (out[arm]["min"], out[arm]["max"]) == (data.min(), data.max())
    assert out["decision"]["action"] == "promote"
    assert any("≥ target 15 %" in r for r in out["decision"]["reasons"])
    report = run_cli(repo, "analyze", exp).stdout
    assert report.splitlines()[0].startswith(f"PROMOTE {exp}: ")
    assert f"## STATISTICAL ANALYSIS - {exp}" in report and "### RECOMMENDATION: PROMOTE TO PRODUCTION" in report


def test_status_reports_progress(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp("--sample-size", "10")
    for i in range(7):
        run_cli(repo, "record", exp, "--arm", "control", "--value", str(40 + i))
        run_cli(repo, "record", exp, "--arm", "treatment", "--value", str(30 + i))
    assert run_cli(repo).stdout.endswith("Collecting (7/10)\n")  # bare `experiment-hook` is status; a pipe: 1 line
    out = run_cli(repo, "status", "--markdown").stdout
    assert "Trials: ███████░░░ 70% (7/10)" in out
    assert "## ACTIVE EXPERIMENTS" in out and "## SUMMARY" in out
    data = json.loads(run_cli(repo, "status", "--json").stdout)
    assert data["experiments"][0]["trials"] == {"control": 7, "treatment": 7}
    assert data["summary"]["active"] == 1


def test_progress_never_shows_full_while_more_trials_are_needed(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp("--sample-size", "4")
    for i in range(6):  # a small, noisy difference: past sample_size, but the decision needs many more trials
        run_cli(repo, "record", exp, "--arm", "control", "--value", str(40 + (i * 7) % 5))
        run_cli(repo, "record", exp, "--arm", "treatment", "--value", str(39 + (i * 3) % 5))
    row = json.loads(run_cli(repo, "status", "--json").stdout)["experiments"][0]
    assert row["analysis"]["decision"]["action"] == "continue"
    progress = row["progress"]
    assert progress["done"] == 6 and (progress["needed"] > 6 or progress["open_ended"])
    out = run_cli(repo, "status", "--markdown").stdout
    assert "100%" not in out and "(6/4)" not in out
    line = run_cli(repo).stdout
    assert "Collecting (6/4)" not in line
