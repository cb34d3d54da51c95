"""`experiment-hook plan`: n per arm against statsmodels' TTestIndPower."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner
from statsmodels.stats.power import TTestIndPower

from experiment_core.commands.plan import plan


def test_plan_cv_matches_statsmodels() -> None:
    r = CliRunner().invoke(plan, ["--mde", "20", "--cv", "0.2", "--quiet"])
    assert r.exit_code == 0, r.output
    ref = TTestIndPower().solve_power(effect_size=1.0, alpha=0.05, power=0.8)
    assert int(r.output) == math.ceil(float(ref))
    r = CliRunner().invoke(plan, ["--mde", "10", "--cv", "0.3", "--alpha", "0.01", "--power", "0.9"])
    ref = TTestIndPower().solve_power(effect_size=1 / 3, alpha=0.01, power=0.9)
    n = math.ceil(float(ref))
    assert r.exit_code == 0 and r.output.startswith(f"{n} trials per arm ({2 * n} in all)")


def test_plan_usage_errors() -> None:
    assert CliRunner().invoke(plan, ["--mde", "20"]).exit_code == 2
    assert CliRunner().invoke(plan, ["--mde", "20", "--cv", "0.2", "--from", "x"]).exit_code == 2
    assert CliRunner().invoke(plan, ["--mde", "-5", "--cv", "0.2"]).exit_code == 2
    assert CliRunner().invoke(plan, ["--mde", "20", "--cv", "0.2", "--power", "1"]).exit_code == 2


def test_plan_from_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    from experiment_core.commands import plan as plan_module

    monkeypatch.setattr(
        plan_module, "cv_from_experiment", lambda exp: (0.25, 0.01, f"measured on 8 units of {exp}")
    )
    r = CliRunner().invoke(plan, ["--mde", "20", "--from", "exp-1"])
    ref = TTestIndPower().solve_power(effect_size=0.8, alpha=0.01, power=0.8)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"{math.ceil(float(ref))} trials per arm")
    assert "CV 0.25 (measured on 8 units of exp-1), alpha 0.01" in r.output
