"""Applying decisions: the commit holds only the experiment's paths, nothing of the user's is lost, and a crash at
any point is finished by the next command."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SEED_TREATMENT, deploy_units, git, run_cli, snapshot

CONTROL = "workers = 1\n"
TREATMENT = "workers = 8\n"


def deploy_treatment(repo: Path, exp: str, target: str = "tool.cfg") -> None:
    """Commit the treatment, then do what post-checkout does for a treatment unit (through the filter driver)."""
    (repo / ".experiments" / exp / target).write_text(TREATMENT)
    git(repo, "add", "experiments.yaml", ".experiments")
    git(repo, "commit", "-qm", f"experiment {exp}")
    deploy_units(repo, SEED_TREATMENT)
    assert (repo / target).read_text() == TREATMENT and git(repo, "status", "--porcelain") == ""


def record(repo: Path, exp: str, control: list[float], treatment: list[float]) -> None:
    rows = ["arm,value"] + [f"control,{v}" for v in control] + [f"treatment,{v}" for v in treatment]
    csv = repo.parent / "trials.csv"
    csv.write_text("\n".join(rows) + "\n")
    run_cli(repo, "record", exp, "--from-csv", str(csv))


FAST = [0.50 + 0.01 * (i % 5) for i in range(12)]
SLOW = [1.00 + 0.01 * (i % 5) for i in range(12)]


def user_changes(repo: Path) -> None:
    (repo / "build.sh").write_text("#!/bin/sh\necho staged change\n")
    git(repo, "add", "build.sh")
    (repo / "notes.txt").write_text("untracked scribbles\n")
    (repo / "build.sh").write_text("#!/bin/sh\necho staged change\necho and an unstaged one\n")


def test_promote_by_hand_commits_only_the_experiment(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    user_changes(repo)
    proc = run_cli(repo, "promote", exp, "--yes")
    assert f"{exp} promoted" in proc.stdout
    msg = git(repo, "log", "-1", "--format=%B")
    assert msg.startswith(f"experiment: Promote {exp} to production\n\n")
    for line in ("Experiment: t", "Improvement: ", "Confidence: ", "Trials: 24"):
        assert line in msg, msg
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == ["experiments.yaml", "tool.cfg"]
    assert git(repo, "show", "HEAD:tool.cfg") == TREATMENT
    assert (repo / "tool.cfg").read_text() == TREATMENT
    assert "status: promoted" in (repo / "experiments.yaml").read_text()
    assert "S tool.cfg" not in git(repo, "ls-files", "-v", "tool.cfg")  # skip-worktree cleared
    # the user's staged change stays staged (not committed), the unstaged one unstaged, the untracked file kept
    assert git(repo, "diff", "--cached", "--name-only").split() == ["build.sh"]
    assert "and an unstaged one" in (repo / "build.sh").read_text()
    assert (repo / "notes.txt").exists()
    status = git(repo, "status", "--porcelain").splitlines()
    assert sorted(status) == ["?? notes.txt", "MM build.sh"], status
    analysis = json.loads(run_cli(repo, "status", "--json").stdout)["experiments"][0]
    assert analysis["status"] == "promoted"
    decisions = [e for e in _events(repo) if e["type"] == "decision"]
    assert [d["action"] for d in decisions] == ["promote"]


def _events(repo: Path) -> list[dict[str, object]]:
    from experiment_core.gitio import Git
    from experiment_core.store import ledger

    return ledger.read(Git(repo)).events


def test_rollback_by_hand_restores_control(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, FAST, SLOW)
    run_cli(repo, "rollback", exp, "--yes")
    msg = git(repo, "log", "-1", "--format=%B")
    assert msg.startswith(f"experiment: Rollback {exp}\n\nReason: ")
    assert "Regression: " in msg and "Status: Rolled back to pre-experiment state" in msg
    assert (repo / "tool.cfg").read_text() == CONTROL
    assert "status: rolled_back" in (repo / "experiments.yaml").read_text()
    assert git(repo, "status", "--porcelain") == ""


def test_auto_promotes_and_dry_run_changes_nothing(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    before = snapshot(repo)
    out = run_cli(repo, "--auto", "--dry-run").stdout
    assert f"{exp}: would promote" in out
    assert snapshot(repo) == before
    out = run_cli(repo, "--auto").stdout
    assert f"promote {exp}: promoted" in out
    assert (repo / "tool.cfg").read_text() == TREATMENT
    assert git(repo, "status", "--porcelain") == ""


def test_a_users_edit_is_never_overwritten(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    (repo / "tool.cfg").write_text("workers = 3  # my own tuning\n")
    before = snapshot(repo)
    proc = run_cli(repo, "promote", exp, "--yes", check=False)
    assert proc.returncode == 2 and "did not write" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert snapshot(repo) == before


def test_detached_head_applies_to_tree_without_commit(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "--detach")
    out = run_cli(repo, "promote", exp, "--yes").stdout
    assert "not committed" in out
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert (repo / "tool.cfg").read_text() == TREATMENT
    assert "status: promoted" in (repo / "experiments.yaml").read_text()


def _final_state(repo: Path, exp: str) -> str:
    """'before' or 'after'; asserts the invariant: exactly control or treatment, registry and ledger agree."""
    content = (repo / "tool.cfg").read_text()
    assert content in (CONTROL, TREATMENT)
    registry = (repo / "experiments.yaml").read_text()
    decided = any(e["type"] == "decision" for e in _events(repo))
    promoted = "status: promoted" in registry
    assert promoted == decided, (registry, decided)
    if promoted:
        assert content == TREATMENT
        assert git(repo, "show", "HEAD:tool.cfg") == TREATMENT
        assert git(repo, "log", "-1", "--format=%s").startswith(f"experiment: Promote {exp}")
        assert "S tool.cfg" not in git(repo, "ls-files", "-v", "tool.cfg")
        assert git(repo, "status", "--porcelain") == ""
        return "after"
    assert "status: running" in registry
    assert git(repo, "show", "HEAD:tool.cfg") == CONTROL
    return "before"


def test_crash_at_every_point_is_recovered(repo: Path, create_exp: Callable[..., str]) -> None:
    """SIGKILL the promote at each checkpoint in turn; `recover` or simply the next command finishes it."""
    import shutil
    import tarfile

    extra = ["build.sh", "lint.cfg", "prompt.md"]  # four targets: more steps, more crash points
    for name in extra[1:]:
        (repo / name).write_text(f"{name} control\n")
    git(repo, "add", *extra)
    git(repo, "commit", "-qm", "more files")
    exp = create_exp(*[arg for name in extra for arg in ("--file", name)])
    for name in extra:
        (repo / ".experiments" / exp / name).write_text(f"{name} faster\n")
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    base = repo.parent / "base.tar"
    with tarfile.open(base, "w") as tar:
        tar.add(repo, arcname="repo")
    point = 1
    while True:
        shutil.rmtree(repo)
        with tarfile.open(base) as tar:
            tar.extractall(repo.parent, filter="fully_trusted")
        proc = run_cli(repo, "promote", exp, "--yes", env={"EXPERIMENT_HOOK_CRASH_AT": str(point)}, check=False)
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, proc.stderr
            break
        # recover explicitly at odd points; at even points the next ordinary command does it
        run_cli(repo, "recover" if point % 2 else "status")
        assert _final_state(repo, exp) in ("before", "after")
        assert not list((repo / ".git" / "experiment-hook").glob("apply-journal*")), point
        point += 1
    assert point - 1 >= 18, f"only {point - 1} crash points"
    assert _final_state(repo, exp) == "after"
    assert all((repo / name).read_text() == f"{name} faster\n" for name in extra)


def test_expiry_past_max_duration_rolls_back(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW[:4], SLOW[4:8])  # too few trials to decide anything
    assert "continue" in run_cli(repo, "--auto").stdout
    assert (repo / "tool.cfg").read_text() == TREATMENT
    late = {"EXPERIMENT_HOOK_NOW": "2099-01-01T00:00:00Z"}
    out = run_cli(repo, "--auto", env=late).stdout
    assert f"expire {exp}: expired" in out, out
    assert (repo / "tool.cfg").read_text() == CONTROL
    assert "status: expired" in (repo / "experiments.yaml").read_text()
    msg = git(repo, "log", "-1", "--format=%B")
    assert msg.startswith(f"experiment: Rollback {exp}") and "past the maximum of 14 days" in msg
    kinds = {e["kind"] for e in _events(repo) if e["type"] == "alert"}
    assert "duration" in kinds


def test_aa_experiment_stays_running(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    same = [1.0 + 0.05 * ((i * 7) % 11) for i in range(30)]
    record(repo, exp, same, list(reversed(same)))
    out = run_cli(repo, "--auto").stdout
    assert f"{exp}: continue" in out
    assert "status: running" in (repo / "experiments.yaml").read_text()
    assert (repo / "tool.cfg").read_text() == TREATMENT
    # a second push with nothing new does not even import the statistics
    out = run_cli(repo, "--auto").stdout
    assert "nothing due" in out


def test_clear_regression_is_rolled_back_automatically(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, FAST, SLOW)
    out = run_cli(repo, "--auto").stdout
    assert f"rollback {exp}: rolled_back" in out, out
    assert f"alert {exp} [regression]" in out
    assert (repo / "tool.cfg").read_text() == CONTROL
    assert "regression" in {e["kind"] for e in _events(repo) if e["type"] == "alert"}
    assert git(repo, "status", "--porcelain") == ""


def test_expiry_with_promote_if_not_worse_keeps_a_better_treatment(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp("--sample-size", "50")  # never reached: only expiry can end it
    text = (repo / "experiments.yaml").read_text()
    (repo / "experiments.yaml").write_text(text + "    on_expiry: promote_if_not_worse\n")
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    out = run_cli(repo, "--auto", env={"EXPERIMENT_HOOK_NOW": "2099-01-01T00:00:00Z"}).stdout
    assert f"{exp}: promoted" in out, out
    assert (repo / "tool.cfg").read_text() == TREATMENT
    assert "status: promoted" in (repo / "experiments.yaml").read_text()
    assert git(repo, "log", "-1", "--format=%s").startswith(f"experiment: Promote {exp}")


@pytest.mark.parametrize("verb", ["promote", "rollback"])
def test_dry_run_by_hand_changes_nothing(repo: Path, create_exp: Callable[..., str], verb: str) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    before = snapshot(repo)
    out = run_cli(repo, verb, exp, "--dry-run").stdout
    assert "Dry run: would" in out
    assert snapshot(repo) == before


def test_by_hand_asks_first(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    deploy_treatment(repo, exp)
    record(repo, exp, SLOW, FAST)
    before = snapshot(repo)
    proc = run_cli(repo, "promote", exp, input="n\n", check=False)
    assert proc.returncode != 0 and "Promote" in proc.stdout
    assert snapshot(repo) == before
    run_cli(repo, "promote", exp, input="y\n")
    assert "status: promoted" in (repo / "experiments.yaml").read_text()
