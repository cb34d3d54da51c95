"""What post-commit measures: every metric with a command, and never at the cost of a dropped trial."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import SEED_CONTROL, SEED_TREATMENT, cli_env, git, run_cli


def test_checkout_waits_for_the_running_measurement(repo: Path) -> None:
    """A checkout right after a commit must not drop the commit's running measurement: drops would hit the slower
    arm more often (its runs last longer) and bias the comparison."""
    exp = json.loads(run_cli(repo, "create", "--name", "slow", "--file", "build.sh", "--command", "sleep 0.6",
                             "--json").stdout)["id"]  # fmt: skip
    (repo / ".experiments" / exp / "build.sh").write_text("#!/bin/sh\necho treatment\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "experiment")
    run_cli(repo, "install")
    units = 3
    for i in range(units):
        seed = SEED_TREATMENT if i % 2 == 0 else SEED_CONTROL  # alternate arms: every checkout swaps build.sh
        subprocess.run(["git", "checkout", "-q", "-b", f"t{i}"], cwd=repo, check=True,
                       env=cli_env({"EXPERIMENT_HOOK_SEED": seed}))  # fmt: skip
        (repo / "f.txt").write_text(str(i))
        git(repo, "add", "f.txt")
        subprocess.run(["git", "commit", "-qm", f"t{i}"], cwd=repo, check=True, env=cli_env())
        # no `wait` here: the next checkout starts while the detached measurement runs
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True,
                   env=cli_env({"EXPERIMENT_HOOK_SEED": SEED_TREATMENT}))  # fmt: skip
    run_cli(repo, "wait")
    from experiment_core import ledger
    from experiment_core.gitio import Git

    events = ledger.read(Git(repo)).events
    trials = [e for e in events if e["type"] == "trial" and e["metric"] == "time_to_complete"]
    assert len(trials) == units, [e for e in events if e["type"] == "alert"]
    assert all(t["value"] >= 0.6 for t in trials)
    assert {t["arm"] for t in trials} == {"control", "treatment"}
    assert not [e for e in events if e["type"] == "alert" and e["kind"] == "dropped_trial"]


def test_secondary_metrics_with_a_command_are_timed_too(repo: Path) -> None:
    exp = json.loads(run_cli(repo, "create", "--name", "m", "--file", "build.sh", "--command", "true",
                             "--json").stdout)["id"]  # fmt: skip
    with (repo / "experiments.yaml").open("a") as f:
        f.write("    secondary:\n      - name: lint_time\n        command: sleep 0.05\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "experiment")
    run_cli(repo, "install")
    subprocess.run(["git", "checkout", "-q", "-b", "t"], cwd=repo, check=True, env=cli_env())
    git(repo, "commit", "-q", "--allow-empty", "-m", "work")
    run_cli(repo, "wait")
    from experiment_core import ledger
    from experiment_core.gitio import Git

    trials = [e for e in ledger.read(Git(repo)).events if e["type"] == "trial" and e["exp"] == exp]
    by_metric = {t["metric"]: t for t in trials}
    assert set(by_metric) == {"time_to_complete", "lint_time", "time_to_commit"}
    assert by_metric["lint_time"]["value"] >= 0.05
    assert len({t["unit"] for t in trials}) == 1
