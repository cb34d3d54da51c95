"""`experiment-hook demo`, the README's main job: a real experiment, real hooks, a real push, a real promotion."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git, run_cli


def test_demo_ends_with_a_promotion_by_push(tmp_path: Path) -> None:
    out = run_cli(tmp_path, "demo", "--dir", str(tmp_path / "demo"), "--trials", "4", "--seed", "7").stdout
    work, remote = tmp_path / "demo" / "work", tmp_path / "demo" / "remote.git"
    assert "## STATISTICAL ANALYSIS" in out and "## SUMMARY" in out
    assert "promoted in commit" in out and "on branch experiment-hook/promote-exp-" in out
    assert "build.sh is now the treatment (promoted); git status: clean" in out
    subject = git(remote, "log", "-1", "--format=%s", "main").strip()
    assert subject.startswith("experiment: Promote exp-") and subject.endswith("to production")
    assert "status: promoted" in (work / "experiments.yaml").read_text()
    assert git(work, "status", "--porcelain") == ""
    teammate = tmp_path / "demo" / "teammate"  # a second clone, its unit on the treatment, pulls the promotion
    assert "Teammate's clone:" in out and "its unit runs the treatment; git status: clean" in out
    assert "is promoted for the team" in out or "is promoted: its treatment is what this branch commits now" in out
    assert "teammate's build.sh is the treatment; git status: clean" in out
    assert git(teammate, "status", "--porcelain") == ""
    assert git(teammate, "rev-parse", "HEAD:build.sh") == git(remote, "rev-parse", "main:build.sh")
