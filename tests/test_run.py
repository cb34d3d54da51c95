"""`experiment-hook run -n N -- CMD`: balanced interleaved runs, trials recorded as they go, tree restored exactly,
also when interrupted by a real SIGINT half-way."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from experiment_core.gitio import Git
from experiment_core.store import ledger
from tests.conftest import SEED_TREATMENT, cli_env, git, run_cli, snapshot

TREATMENT = "workers = 8\n"
# Faster under treatment: the command reads the target.
CMD = ["sh", "-c", "if grep -q 'workers = 8' tool.cfg; then sleep 0.01; else sleep 0.05; fi"]


@pytest.fixture
def exp(repo: Path) -> str:
    out = run_cli(repo, "create", "--name", "w", "--file", "tool.cfg", "--command", "true", "--json").stdout
    exp_id = str(json.loads(out)["id"])
    (repo / ".experiments" / exp_id / "tool.cfg").write_text(TREATMENT)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "experiment")
    return exp_id


def tree_state(repo: Path) -> tuple[dict[str, str], str]:
    files = snapshot(repo)
    files.pop("<refs>")  # the ledger (notes) grows: that is the point
    return files, git(repo, "ls-files", "-s", "-v")


def run_trials(repo: Path, exp: str) -> list[ledger.Event]:
    return [e for e in ledger.read(Git(repo)).events
            if e["type"] == "trial" and e["exp"] == exp and e.get("source") == "run"]  # fmt: skip


def check_balanced_pairs(trials: list[ledger.Event]) -> None:
    pairs: dict[str, list[str]] = {}
    for t in trials:
        pairs.setdefault(t["pair"], []).append(t["arm"])
    complete = [arms for arms in pairs.values() if len(arms) == 2]
    assert all(sorted(arms) == ["control", "treatment"] for arms in complete)
    assert len(pairs) - len(complete) <= 1  # at most the interrupted pair is incomplete


def run_order(trials: list[ledger.Event]) -> list[str]:
    """The arms in the order they ran (a run's unit ends in its index)."""
    return [t["arm"] for t in sorted(trials, key=lambda t: int(str(t["unit"]).rsplit("-", 1)[1]))]


def test_run_n_is_runs_per_arm_balanced_in_every_block_of_two(repo: Path, exp: str) -> None:
    """`run -n 5` as hyperfine's `--runs 5`: 5 runs per arm, every consecutive pair one control + one treatment."""
    out = run_cli(repo, "run", "-n", "5", "--seed", "3", "--", *CMD).stdout
    assert "Recorded 10 trials" in out
    trials = run_trials(repo, exp)
    assert Counter(t["arm"] for t in trials) == {"control": 5, "treatment": 5}
    order = run_order(trials)
    blocks = [order[i : i + 2] for i in range(0, len(order), 2)]
    assert len(blocks) == 5 and all(sorted(b) == ["control", "treatment"] for b in blocks), order
    # the recorded pair ids are those blocks
    assert len({t["pair"] for t in trials}) == 5
    check_balanced_pairs(trials)
    help_text = run_cli(repo, "run", "--help").stdout
    assert "Runs per arm" in " ".join(help_text.split())


def test_run_interleaved_balanced_tree_unchanged(repo: Path, exp: str) -> None:
    before = tree_state(repo)
    out = run_cli(repo, "run", "-n", "10", "--", *CMD).stdout
    assert "Recorded 20 trials" in out
    assert tree_state(repo) == before
    trials = run_trials(repo, exp)
    assert Counter(t["arm"] for t in trials) == {"control": 10, "treatment": 10}
    check_balanced_pairs(trials)
    assert len({t["unit"] for t in trials}) == 20  # each run is its own unit
    mean = {arm: sum(t["value"] for t in trials if t["arm"] == arm) / 10 for arm in ("control", "treatment")}
    assert mean["treatment"] < mean["control"]  # the arms really ran different content
    order = run_order(trials)
    assert order[:10] != ["control"] * 10 and order[:10] != ["treatment"] * 10


def test_run_from_a_treatment_unit_puts_the_treatment_back(repo: Path, exp: str) -> None:
    run_cli(repo, "install")
    subprocess.run(["git", "checkout", "-q", "-b", "t"], cwd=repo, check=True,
                   env=cli_env({"EXPERIMENT_HOOK_SEED": SEED_TREATMENT}))  # fmt: skip
    assert (repo / "tool.cfg").read_text() == TREATMENT
    before = tree_state(repo)
    run_cli(repo, "run", "-n", "2", "--", *CMD)
    assert tree_state(repo) == before
    assert git(repo, "status", "--porcelain") == ""


def test_run_interrupted_half_way_restores_the_tree(repo: Path, exp: str) -> None:
    before = tree_state(repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiment_core", "run", "-n", "10", "--", "sh", "-c", "sleep 0.15"],
        cwd=repo, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 10 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line.startswith("  run ")
    time.sleep(0.05)  # inside run 11's command
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Interrupted" in err
    assert tree_state(repo) == before
    trials = run_trials(repo, exp)
    assert 10 <= len(trials) <= 11
    check_balanced_pairs(trials)
    assert git(repo, "status", "--porcelain") == ""


def test_run_records_how_it_timed_and_leaves_a_fresh_start_up_for_post_commit(repo: Path, exp: str) -> None:
    state = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-path", "experiment-hook").strip())
    (state / "shell-startup").write_text(f"0.5 {time.time()}\n")  # fresh, but `run` measures its own
    out = run_cli(repo, "run", "-n", "1", "--", "true").stdout  # a builtin: through the shell
    shell = run_trials(repo, exp)
    seconds = float((state / "shell-startup").read_text().split()[0])
    assert seconds != 0.5 and 0 < seconds < 0.5
    assert [(t["timing"], t["startup"]) for t in shell] == [("shell", seconds)] * 2
    assert f"timing: shell, start-up subtracted ({1000 * seconds:.2f} ms)" in out
    out = run_cli(repo, "run", "-n", "1", "--", "sh", "-c", "exit 0").stdout
    direct = [t for t in run_trials(repo, exp) if t not in shell]
    assert [t["timing"] for t in direct] == ["direct"] * 2 and "timing: direct exec" in out
    analysis = json.loads(run_cli(repo, "analyze", exp, "--json").stdout)
    assert analysis["timing"]["trials"] == {"direct": 2, "shell": 2, "unknown": 0}
