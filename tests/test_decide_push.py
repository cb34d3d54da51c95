"""Decisions made by a real `git push` (pre-push hook installed by `experiment-hook install`) to a real bare
remote: promote a clearly faster treatment, roll back a clearly slower one, expire an old one, leave an A/A one
running — and never touch the user's other changes or the push in flight."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_env, git, make_clones, run_cli

FAST = "#!/bin/sh\ntrue\n"
SLOW = "#!/bin/sh\nsleep 0.12\n"
# For a rollback the control must not be near zero: the regression is relative to its mean, and a mean of a few
# milliseconds is mostly scheduling noise on a loaded machine.
STEADY = "#!/bin/sh\nsleep 0.05\n"
FIVE_TIMES_SLOWER = "#!/bin/sh\nsleep 0.25\n"


def push(repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "push", "origin", "main"], cwd=repo, capture_output=True, text=True,
                          env=cli_env(env))  # fmt: skip


def setup_experiment(tmp_path: Path, control: str, treatment: str, sample_size: int = 4) -> tuple[Path, Path, str]:
    remote, (repo,) = make_clones(tmp_path, 1)
    (repo / "build.sh").write_text(control)
    git(repo, "commit", "-qam", "build script")
    exp = json.loads(run_cli(repo, "create", "--name", "speed", "--file", "build.sh", "--command", "sh build.sh",
                             "--sample-size", str(sample_size), "--json").stdout)["id"]  # fmt: skip
    (repo / ".experiments" / exp / "build.sh").write_text(treatment)
    # trunk-based work (everyone pushes main): the decision commit on the current branch, as before 0.3
    text = (repo / "experiments.yaml").read_text()
    (repo / "experiments.yaml").write_text("settings:\n  decision_commits: current\n" + text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "experiment")
    git(repo, "push", "-q", "origin", "main")
    run_cli(repo, "install")
    return remote, repo, exp


def run_units(repo: Path, exp: str, per_arm: int, start: int = 0) -> dict[str, int]:
    """Branch checkouts and commits, as a developer works, until each arm has ``per_arm`` units."""
    from experiment_core.deploy.assign import current_assignment
    from experiment_core.gitio import Git

    units = {"control": 0, "treatment": 0}
    i = start
    while min(units.values()) < per_arm:
        i += 1
        assert i < start + 60, units
        subprocess.run(["git", "checkout", "-q", "-b", f"task{i}", "main"], cwd=repo, check=True,
                       env=cli_env({"EXPERIMENT_HOOK_SEED": f"s{i}"}))  # fmt: skip
        (repo / "work.txt").write_text(str(i))
        git(repo, "add", "work.txt")
        git(repo, "commit", "-qm", f"task {i}", "--", "work.txt")  # only it: the user's staged work stays staged
        run_cli(repo, "wait")
        arm = current_assignment(Git(repo), exp)
        assert arm is not None and arm.arm is not None
        units[arm.arm] += 1
    git(repo, "checkout", "-q", "main")
    return units


def push_until_decided(repo: Path, exp: str, status: str) -> subprocess.CompletedProcess[str]:
    """Work (4 units per arm), push; on a loaded machine timings are noisy, so work a little more and push again
    until the pre-push hook reaches ``status`` — a clear difference must get there, and never the other way."""
    run_units(repo, exp, 4)
    proc = push(repo)
    for batch in range(1, 6):
        if status in proc.stderr:
            break
        assert proc.returncode == 0 and "promoted" not in proc.stderr and "rolled_back" not in proc.stderr, proc.stderr
        run_units(repo, exp, 2, start=100 * batch)
        proc = push(repo)
    return proc


def test_push_promotes_a_clearly_faster_treatment(tmp_path: Path) -> None:
    remote, repo, exp = setup_experiment(tmp_path, SLOW, FAST)
    # the user's other work in progress: a staged file and an unstaged edit
    (repo / "feature.py").write_text("x = 1\n")
    git(repo, "add", "feature.py")
    (repo / "tool.cfg").write_text("workers = 2  # mine\n")
    proc = push_until_decided(repo, exp, "promoted")
    pushed_head = git(repo, "rev-parse", "HEAD~1").strip()
    assert proc.returncode == 0, proc.stderr
    assert f"promote {exp}: promoted in commit" in proc.stderr
    assert "not part of this push" in proc.stderr
    # the push in flight carried exactly what git chose before the hook ran
    assert git(remote, "rev-parse", "main").strip() == pushed_head
    msg = git(repo, "log", "-1", "--format=%B")
    assert msg.startswith(f"experiment: Promote {exp} to production") and "Trials: " in msg
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == ["build.sh", "experiments.yaml"]
    assert (repo / "build.sh").read_text() == FAST and git(repo, "show", "HEAD:build.sh") == FAST
    assert "status: promoted" in (repo / "experiments.yaml").read_text()
    assert not git(repo, "ls-files", "-v", "build.sh").startswith("S")
    assert set(git(repo, "status", "--porcelain").splitlines()) == {"A  feature.py", " M tool.cfg"}
    assert (repo / "tool.cfg").read_text() == "workers = 2  # mine\n"
    # the next push publishes it, and the ledger (with the decision) reached the remote
    assert push(repo).returncode == 0
    assert git(remote, "log", "-1", "--format=%s", "main").startswith(f"experiment: Promote {exp}")
    assert '"action":"promote"' in "".join(  # in the experiment's own notes ref
        git(remote, "cat-file", "-p", line.split()[0])
        for line in git(remote, "notes", f"--ref=experiments-{exp}", "list").splitlines()
    )


def test_push_rolls_back_a_clearly_slower_treatment(tmp_path: Path) -> None:
    _, repo, exp = setup_experiment(tmp_path, STEADY, FIVE_TIMES_SLOWER)
    proc = push_until_decided(repo, exp, "rolled_back")
    assert proc.returncode == 0, proc.stderr
    assert f"rollback {exp}: rolled_back" in proc.stderr, proc.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == f"experiment: Rollback {exp}"
    assert (repo / "build.sh").read_text() == STEADY
    assert "status: rolled_back" in (repo / "experiments.yaml").read_text()
    assert git(repo, "status", "--porcelain") == ""


def _aa(repo: Path, exp: str) -> None:
    same = [1.0 + 0.05 * ((i * 7) % 11) for i in range(20)]
    csv = repo.parent / "aa.csv"
    rows = "".join(f"control,{v}\ntreatment,{w}\n" for v, w in zip(same, same[::-1], strict=True))
    csv.write_text("arm,value\n" + rows)
    run_cli(repo, "record", exp, "--from-csv", str(csv))


def test_push_leaves_an_aa_experiment_running_and_expires_it_after_14_days(tmp_path: Path) -> None:
    _, repo, exp = setup_experiment(tmp_path, FAST, FAST + "# same\n")
    _aa(repo, exp)
    head = git(repo, "rev-parse", "HEAD").strip()
    proc = push(repo)
    assert proc.returncode == 0 and "Promote" not in git(repo, "log", "-1", "--format=%s")
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert "status: running" in (repo / "experiments.yaml").read_text()
    late = {"EXPERIMENT_HOOK_NOW": "2099-01-01T00:00:00Z"}
    (repo / "x").write_text("x")
    git(repo, "add", "x")
    git(repo, "commit", "-qm", "more work")
    proc = push(repo, late)
    assert proc.returncode == 0, proc.stderr
    assert f"expire {exp}: expired" in proc.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == f"experiment: Rollback {exp}"
    assert "status: expired" in (repo / "experiments.yaml").read_text()
    assert (repo / "build.sh").read_text() == FAST


@pytest.mark.parametrize("block", [True, False])
def test_block_push_on_decision(tmp_path: Path, block: bool) -> None:
    remote, repo, exp = setup_experiment(tmp_path, SLOW, FAST)
    text = (repo / "experiments.yaml").read_text()
    (repo / "experiments.yaml").write_text(text.replace("settings:\n", f"settings:\n  block_push_on_decision: "
                                                        f"{str(block).lower()}\n", 1))  # fmt: skip
    git(repo, "commit", "-qam", "settings")
    proc = push_until_decided(repo, exp, "promoted")
    assert f"promote {exp}" in proc.stderr
    if block:
        assert proc.returncode != 0 and "push stopped" in proc.stderr
        assert git(remote, "rev-parse", "main").strip() != git(repo, "rev-parse", "HEAD").strip()
        assert push(repo).returncode == 0  # the next push carries the decision commit
    else:
        assert proc.returncode == 0
    assert push(repo).returncode == 0
    assert git(remote, "log", "-1", "--format=%s", "main").startswith(f"experiment: Promote {exp}")


def test_push_with_nothing_due_imports_no_statistics(tmp_path: Path) -> None:
    _, repo, exp = setup_experiment(tmp_path, FAST, FAST + "# same\n")
    _aa(repo, exp)
    assert push(repo).returncode == 0  # evaluates: continue
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(
        "import atexit, sys, os\n"
        "def _report():\n"
        "    if 'pre_push' in ' '.join(sys.argv):\n"
        "        open(os.environ['IMPORT_PROBE'], 'a').write(' '.join(m for m in ('scipy', 'numpy') "
        "if m in sys.modules) + '|')\n"
        "atexit.register(_report)\n"
    )
    out = tmp_path / "imports.txt"
    import os

    proc = push(repo, {"PYTHONPATH": f"{probe}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                       "IMPORT_PROBE": str(out)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "|", out.read_text()  # the hook ran and imported neither scipy nor numpy
