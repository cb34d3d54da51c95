"""The hooks end to end in real repositories, installed both ways: real `pre-commit install` (hooks from this
repository) and `experiment-hook install`. No mocks: real git, real ledger, real files."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiment_core.gitio import Git
from experiment_core.store import ledger
from tests.conftest import (
    SEED_CONTROL,
    SEED_TREATMENT,
    cli_env,
    git,
    init_repo,
    pre_commit_config,
    run_cli,
)

TREATMENT = "workers = 8\n"
CONTROL = "workers = 1\n"


@dataclass
class Hooked:
    repo: Path
    exp: str
    mode: str

    def env(self, seed: str | None = None) -> dict[str, str]:
        """The environment of a git command whose hooks run. Under pre-commit the hooks must import the package
        pre-commit installed in its environment, not this source tree (which has no experiment_core.hooks)."""
        env = cli_env({"EXPERIMENT_HOOK_SEED": seed} if seed else None)
        if self.mode == "pre-commit":
            env.pop("PYTHONPATH", None)
        return env

    def git(self, *args: str, seed: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = self.env(seed)
        proc = subprocess.run(["git", *args], cwd=self.repo, capture_output=True, text=True, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def events(self, type_: str) -> list[ledger.Event]:
        run_cli(self.repo, "wait")
        return [e for e in ledger.read(Git(self.repo)).events if e["type"] == type_ and e["exp"] == self.exp]

    def target(self) -> str:
        return (self.repo / "tool.cfg").read_text()


def setup_experiment(repo: Path) -> str:
    import json

    out = run_cli(repo, "create", "--name", "more workers", "--file", "tool.cfg", "--command", "true", "--json")
    exp = str(json.loads(out.stdout)["id"])
    (repo / ".experiments" / exp / "tool.cfg").write_text(TREATMENT)
    return exp


@pytest.fixture(params=["pre-commit", "install"])
def hooked(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hooked:
    repo = init_repo(tmp_path / "repo")
    exp = setup_experiment(repo)
    if request.param == "pre-commit":
        hook_repo, rev, home = request.getfixturevalue("pre_commit_hooks")
        monkeypatch.setenv("PRE_COMMIT_HOME", str(home))
        (repo / ".pre-commit-config.yaml").write_text(pre_commit_config(hook_repo, rev))
        subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, check=True, capture_output=True,
                       env=cli_env())  # fmt: skip
        # `create` set notes.rewriteRef (amend and rebase carry the notes of every ledger ref)
        assert "refs/notes/experiments-*" in git(repo, "config", "--get-all", "notes.rewriteRef").split()
    else:
        run_cli(repo, "install")
    hooked = Hooked(repo, exp, request.param)
    hooked.git("add", "-A")
    hooked.git("commit", "-q", "-m", "experiment: more workers")
    return hooked


def committed_target_blobs(repo: Path) -> set[str]:
    """The blob of tool.cfg in every commit of every branch."""
    commits = git(repo, "rev-list", "--branches").split()
    query = "".join(f"{c}:tool.cfg\n" for c in commits)
    out = subprocess.run(["git", "cat-file", "--batch-check=%(objectname)"], cwd=repo, input=query,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return set(out.split())


def blob_of(repo: Path, text: str) -> str:
    return git(repo, "hash-object", "--stdin", input=text).strip()


def test_twenty_checkouts_and_commits_give_twenty_units(hooked: Hooked) -> None:
    repo = hooked.repo
    for i in range(20):
        hooked.git("checkout", "-q", "-b", f"work-{i}", "main")
        assert hooked.target() in (CONTROL, TREATMENT)
        (repo / f"work-{i}.txt").write_text(f"change {i}\n")
        hooked.git("add", f"work-{i}.txt")
        hooked.git("commit", "-q", "-m", f"work {i}")
        assert hooked.git("status", "--porcelain").stdout == ""
        run_cli(repo, "wait")  # the measurement runs detached: let it finish before the next checkout
    assigns = hooked.events("assign")
    units = {e["unit"] for e in assigns}
    assert len(units) == 20
    assert {e["arm"] for e in assigns} == {"control", "treatment"}
    trials = hooked.events("trial")
    assert {t["unit"] for t in trials if t["metric"] == "time_to_complete"} == units  # the command, per unit
    assert {t["unit"] for t in trials if t["metric"] == "time_to_commit"} == units  # assignment -> commit
    arm_of = {e["unit"]: e["arm"] for e in assigns}
    assert all(t["arm"] == arm_of[t["unit"]] and t["exit_code"] in (0, None) for t in trials)
    assert blob_of(repo, TREATMENT) not in committed_target_blobs(repo)  # no commit holds treatment content


def test_rebase_and_amend_record_no_trial(hooked: Hooked) -> None:
    repo = hooked.repo
    hooked.git("checkout", "-q", "-b", "feature", "main")
    for i in range(5):
        (repo / f"f{i}.txt").write_text(f"{i}\n")
        hooked.git("add", f"f{i}.txt")
        hooked.git("commit", "-q", "-m", f"feature {i}")
        run_cli(repo, "wait")
    before = len(hooked.events("trial"))
    assert before == 5 + 1  # five command timings, one time-to-commit for the unit
    hooked.git("commit", "-q", "--amend", "-m", "feature 4, amended")
    hooked.git("checkout", "-q", "main")
    (repo / "main.txt").write_text("main moves on\n")
    hooked.git("add", "main.txt")
    hooked.git("commit", "-q", "-m", "main moves on")
    after_main = len(hooked.events("trial"))
    hooked.git("checkout", "-q", "feature")
    hooked.git("rebase", "-q", "main")
    assert len(git(repo, "rev-list", "main..feature").split()) == 5
    assert len(hooked.events("trial")) == after_main  # the rebase of 5 commits made no trial
    assert hooked.git("status", "--porcelain").stdout == ""


def test_user_edit_during_treatment_survives(hooked: Hooked) -> None:
    repo = hooked.repo
    hooked.git("checkout", "-q", "-b", "t1", "main", seed=SEED_TREATMENT)
    assert hooked.target() == TREATMENT
    assert hooked.git("status", "--porcelain").stdout == ""  # a deployed variant is clean to git
    assert not git(repo, "ls-files", "-v", "tool.cfg").startswith("S ")  # no skip-worktree bit
    mine = TREATMENT + "# my own tuning\n"
    (repo / "tool.cfg").write_text(mine)
    assert hooked.git("status", "--porcelain").stdout == " M tool.cfg\n"  # git sees the edit
    assert "+# my own tuning" in hooked.git("diff").stdout and "workers = 8" not in hooked.git("diff").stdout
    first = hooked.git("checkout", "-q", "-b", "t2", "main", seed=SEED_TREATMENT)
    assert hooked.target() == mine  # left alone, carried over by git
    if hooked.mode == "install":  # pre-commit stashes unstaged edits around post-checkout: the hook never sees them
        assert "holds your edit" in first.stderr
    second = hooked.git("checkout", "-q", "-b", "t3", "main", seed=SEED_TREATMENT)
    assert "holds your edit" not in second.stderr + second.stdout  # said once
    if hooked.mode == "install":
        kept = git(repo, "for-each-ref", "--format=%(objectname)", f"refs/experiments/kept/{hooked.exp}").split()
        assert blob_of(repo, mine) in kept
    hooked.git("commit", "-qam", "my tuning")  # the edit is committed on top of the control
    assert git(repo, "show", "HEAD:tool.cfg") == CONTROL + "# my own tuning\n"
    assert hooked.target() == mine and hooked.git("status", "--porcelain").stdout == ""
    assert blob_of(repo, mine) not in committed_target_blobs(repo)
    assert blob_of(repo, TREATMENT) not in committed_target_blobs(repo)
    hooked.git("checkout", "-q", "-b", "t4", seed=SEED_TREATMENT)  # a new unit on the new control
    assert hooked.target() == mine and hooked.git("status", "--porcelain").stdout == ""
    out = run_cli(repo, "restore", hooked.exp).stdout
    assert "control restored" in out
    assert hooked.target() == CONTROL + "# my own tuning\n" and hooked.git("status", "--porcelain").stdout == ""


def test_checkout_to_a_branch_that_changes_the_target(hooked: Hooked) -> None:
    repo = hooked.repo
    hooked.git("checkout", "-q", "-b", "cfg2", "main", seed=SEED_CONTROL)
    (repo / "tool.cfg").write_text("workers = 1\nthreads = 2\n")
    hooked.git("commit", "-q", "-am", "two threads")
    hooked.git("checkout", "-q", "-b", "t", "main", seed=SEED_TREATMENT)
    assert hooked.target() == TREATMENT
    hooked.git("checkout", "-q", "cfg2", seed=SEED_CONTROL)  # git updates the file through the filter
    assert hooked.target() == "workers = 1\nthreads = 2\n"  # the new unit drew control
    hooked.git("checkout", "-q", "t", seed=SEED_TREATMENT)
    hooked.git("checkout", "-q", "cfg2", seed=SEED_TREATMENT)
    assert hooked.target() == "workers = 8\nthreads = 2\n"  # the treatment's change on this branch's control
    assert hooked.git("status", "--porcelain").stdout == ""
    assert "control restored" in run_cli(repo, "restore").stdout
    assert hooked.target() == "workers = 1\nthreads = 2\n"
    assert hooked.git("status", "--porcelain").stdout == ""
    assert blob_of(repo, TREATMENT) not in committed_target_blobs(repo)


EXIT_CODE_SCRIPT: list[tuple[str, ...]] = [
    ("checkout", "-q", "-b", "x", "main"),
    ("commit", "-q", "--allow-empty", "-m", "empty"),
    ("commit", "-q", "-m", "nothing staged"),
    ("checkout", "-q", "no-such-branch"),
    ("checkout", "-q", "main"),
    ("merge", "-q", "--no-edit", "x"),
    ("switch", "-q", "-c", "y"),
    ("checkout", "-q", "-"),
    ("commit", "-q", "--amend", "--no-edit"),
    ("push", "-q", "no-such-remote", "main"),
    ("checkout", "-q", "-b", "z", "HEAD~1"),
]


def exit_codes(repo: Path, env: dict[str, str]) -> list[int]:
    return [subprocess.run(["git", *cmd], cwd=repo, capture_output=True, env=env).returncode
            for cmd in EXIT_CODE_SCRIPT]  # fmt: skip


@pytest.mark.parametrize("seed", [SEED_TREATMENT, SEED_CONTROL])
def test_git_exit_codes_are_those_of_a_repo_without_the_tool(hooked: Hooked, seed: str, tmp_path: Path) -> None:
    plain = init_repo(tmp_path / "plain")
    setup_experiment(plain)
    git(plain, "add", "-A")
    git(plain, "commit", "-q", "-m", "experiment: more workers")
    expected = exit_codes(plain, hooked.env(seed))
    assert expected.count(0) >= 6 and 1 in expected  # the script has failures too
    assert exit_codes(hooked.repo, hooked.env(seed)) == expected

