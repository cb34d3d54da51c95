"""One decision per experiment for the whole team, as a team works: a real bare remote, three clones each on its
own feature branch, trials from all three, hooks installed by `experiment-hook install` and by real
`pre-commit install`. The decision commit lands on a branch of its own off main, never on a feature branch; every
clone follows the decision at its next sync, pull or push with `git status` clean; merging the decision branch
into main and main into each feature branch changes nothing more. Also: two clones deciding before either syncs,
and `experiment-hook --auto` from a shallow, detached CI checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiment_core.gitio import Git
from experiment_core.store import decisions, ledger
from tests.conftest import SEED_CONTROL, SEED_TREATMENT, cli_env, git, pre_commit_config, run_cli

CONTROL = "a=1\nmode=control\nz=9\n"
TREATMENT = "a=1\nmode=treatment\nz=9\n"


@dataclass
class Team:
    remote: Path
    clones: list[Path]
    exp: str
    mode: str

    def env(self, seed: str | None = None) -> dict[str, str]:
        env = cli_env({"EXPERIMENT_HOOK_SEED": seed} if seed else None)
        if self.mode == "pre-commit":
            env.pop("PYTHONPATH", None)  # hooks import the package pre-commit installed
        return env

    def git(self, where: Path, *args: str, seed: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        proc = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, env=self.env(seed))
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
        return proc

    @property
    def branch(self) -> str:
        return f"experiment-hook/promote-{self.exp}"


def install(repo: Path, mode: str, request: pytest.FixtureRequest) -> None:
    if mode == "install":
        run_cli(repo, "install")
        return
    _, _, home = request.getfixturevalue("pre_commit_hooks")
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, check=True, capture_output=True,
                   env=cli_env({"PRE_COMMIT_HOME": str(home)}))  # fmt: skip


def trials_csv(path: Path) -> Path:
    """A clearly faster treatment: 8 trials per arm."""
    rows = "".join(f"control,{2.0 + 0.01 * k}\ntreatment,{1.0 + 0.01 * k}\n" for k in range(8))
    path.write_text("arm,value\n" + rows)
    return path


def build(tmp_path: Path, mode: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
          settings: str = "") -> Team:  # fmt: skip
    """Clone 0 creates the experiment on main; each clone works on feature-<i> (clone 0's unit on the treatment,
    the others' on the control; clone 2's branch tracks main); every clone records trials and syncs them."""
    if mode == "pre-commit":
        monkeypatch.setenv("PRE_COMMIT_HOME", str(request.getfixturevalue("pre_commit_hooks")[2]))
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    clones = []
    for i in range(3):
        git(tmp_path, "clone", "-q", str(remote), str(tmp_path / f"clone{i}"))
        clones.append(tmp_path / f"clone{i}")
        for key, value in (("user.email", f"c{i}@example.com"), ("user.name", f"Clone {i}"),
                           ("commit.gpgsign", "false")):  # fmt: skip
            git(clones[i], "config", key, value)
    c0 = clones[0]
    (c0 / "cfg.txt").write_text(CONTROL)
    git(c0, "add", "cfg.txt")
    git(c0, "commit", "-qm", "init")
    exp = json.loads(run_cli(c0, "create", "--name", "mode", "--file", "cfg.txt", "--command", "true",
                             "--sample-size", "4", "--json").stdout)["id"]  # fmt: skip
    (c0 / ".experiments" / exp / "cfg.txt").write_text(TREATMENT)
    if settings:
        (c0 / "experiments.yaml").write_text(f"settings:\n{settings}" + (c0 / "experiments.yaml").read_text())
    if mode == "pre-commit":
        hook_repo, rev, _ = request.getfixturevalue("pre_commit_hooks")
        (c0 / ".pre-commit-config.yaml").write_text(pre_commit_config(hook_repo, rev))
    git(c0, "add", "-A")
    git(c0, "commit", "-qm", "experiment")
    git(c0, "push", "-q", "origin", "main")
    team = Team(remote, clones, exp, mode)
    for i, clone in enumerate(clones):
        if i:
            git(clone, "pull", "-q", "origin", "main")
        install(clone, mode, request)
        seed = SEED_TREATMENT if i == 0 else SEED_CONTROL
        team.git(clone, "checkout", "-q", "-b", f"feature-{i}", *(["--track", "origin/main"] if i == 2 else []),
                 seed=seed)  # fmt: skip
        (clone / f"f{i}.txt").write_text(f"work {i}\n")
        team.git(clone, "add", f"f{i}.txt")
        # (not timed by post-commit: the trials are the recorded ones below, so the decision is not left to chance)
        team.git(clone, "-c", f"core.hooksPath={os.devnull}", "commit", "-qm", f"feature {i}")
        run_cli(clone, "record", exp, "--from-csv", str(trials_csv(tmp_path / f"t{i}.csv")))
    assert [(c / "cfg.txt").read_text() for c in clones] == [TREATMENT, CONTROL, CONTROL]
    for clone in clones[1:] + clones[:1] + clones[1:]:
        run_cli(clone, "sync")  # everyone's trials reach everyone (sync makes no decision)
    return team


def decision_events(where: Path) -> list[ledger.Event]:
    return [e for e in ledger.read(Git(where), cache=False).events if e["type"] == "decision"]


def decision_branches(remote: Path) -> list[str]:
    return git(remote, "for-each-ref", "--format=%(refname)", "refs/heads/experiment-hook").split()


def follows(team: Team, clone: Path, content: str) -> None:
    assert (clone / "cfg.txt").read_text() == content
    assert team.git(clone, "status", "--porcelain").stdout == ""


def own_commits_only(team: Team, main_before: str) -> None:
    """Every feature branch (local and on the remote) holds only its owner's commits on top of main (and the
    owner's merges of main)."""
    for i, clone in enumerate(team.clones):
        team.git(clone, "fetch", "-q")
        for ref in (f"feature-{i}", f"origin/feature-{i}"):
            if team.git(clone, "rev-parse", "-q", "--verify", ref, check=False).returncode:
                continue
            log = team.git(clone, "log", "--no-merges", "--format=%s", f"{main_before}..{ref}").stdout.split("\n")
            assert [line for line in log if line] == [f"feature {i}"], (ref, log)


@pytest.mark.parametrize("mode", ["install", "pre-commit"])
def test_one_decision_for_the_team_on_a_branch_off_main(tmp_path: Path, mode: str, request: pytest.FixtureRequest,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    team = build(tmp_path, mode, request, monkeypatch)
    c0, c1, c2 = team.clones
    main_before = git(team.remote, "rev-parse", "main").strip()
    head0 = git(c0, "rev-parse", "HEAD").strip()

    pushed = team.git(c0, "push", "-u", "origin", "feature-0")  # the pre-push hook decides
    said = pushed.stderr + pushed.stdout
    assert f"promote {team.exp}: promoted in commit" in said and f"on branch {team.branch}" in said, said
    assert f"decision branch {team.branch} pushed to origin" in said
    assert "push again" not in said and "not part of this push" not in said
    assert git(team.remote, "rev-parse", "feature-0").strip() == head0 == git(c0, "rev-parse", "HEAD").strip()
    assert git(team.remote, "rev-parse", "main").strip() == main_before  # main only changes by a merge
    decided = git(team.remote, "rev-parse", team.branch).strip()
    assert git(team.remote, "rev-parse", f"{decided}^").strip() == main_before  # a branch off main
    assert sorted(git(team.remote, "show", "--name-only", "--format=", decided).split()) == ["cfg.txt",
                                                                                            "experiments.yaml"]
    assert git(team.remote, "show", f"{decided}:cfg.txt") == TREATMENT
    assert git(team.remote, "log", "-1", "--format=%s", decided).startswith(f"experiment: Promote {team.exp}")
    follows(team, c0, TREATMENT)

    pushed = team.git(c1, "push", "-u", "origin", "feature-1")  # another clone learns it, decides nothing
    said = pushed.stderr + pushed.stdout
    assert f"{team.exp} is promoted for the team" in said and "promote " not in said
    follows(team, c1, TREATMENT)
    status = run_cli(c1, "status").stdout
    assert f"{team.exp}: promoted 20" in status and "by clone " in status
    assert f"decision commit on `{team.branch}`, not yet merged into this branch" in status
    row = json.loads(run_cli(c1, "status", "--json").stdout)["experiments"][0]
    assert row["status"] == "promoted" and row["decision"]["branch"] == team.branch and row["this_worktree"] is None
    assert row["decision"]["by_clone"] == decisions.clone_id(Git(c0)) != decisions.clone_id(Git(c1))

    team.git(c1, "checkout", "-q", "-b", "feature-1b", seed=SEED_CONTROL)  # no unit of a decided experiment
    follows(team, c1, TREATMENT)
    assert json.loads(run_cli(c1, "status", "--json").stdout)["experiments"][0]["this_worktree"] is None
    team.git(c1, "checkout", "-q", "feature-1")

    other = tmp_path / "other"  # a teammate's unrelated pull request reaches main; clone 2 pulls it
    git(tmp_path, "clone", "-q", str(team.remote), str(other))
    (other / "readme.txt").write_text("docs\n")
    git(other, "add", "readme.txt")
    git(other, "-c", "user.name=Other", "-c", "user.email=o@e", "commit", "-qm", "docs")
    git(other, "push", "-q", "--no-verify", "origin", "main")
    pulled = team.git(c2, "pull", "--no-rebase", "--no-edit")
    assert f"{team.exp} is promoted for the team" in pulled.stderr + pulled.stdout
    follows(team, c2, TREATMENT)
    main_before = git(team.remote, "rev-parse", "main").strip()

    assert len(decision_events(team.remote)) == 1  # exactly one decision team-wide
    assert decision_branches(team.remote) == [f"refs/heads/{team.branch}"]
    for clone in team.clones:
        assert len(decision_events(clone)) <= 1
    own_commits_only(team, main_before)

    # the pull request: the decision branch merged into main; then each feature branch merges main
    team.git(c0, "fetch", "-q")
    team.git(c0, "checkout", "-q", "main")
    team.git(c0, "merge", "-q", "--ff-only", "origin/main")
    team.git(c0, "merge", "-q", "--no-ff", "--no-edit", f"origin/{team.branch}")
    team.git(c0, "push", "-q", "origin", "main")
    follows(team, c0, TREATMENT)
    team.git(c0, "checkout", "-q", "feature-0")
    for i, clone in enumerate(team.clones):
        merged = team.git(clone, "pull", "--no-rebase", "--no-edit", "origin", "main")
        assert "CONFLICT" not in merged.stdout + merged.stderr
        follows(team, clone, TREATMENT)
        assert "status: promoted" in (clone / "experiments.yaml").read_text()
        assert git(clone, "show", "HEAD:cfg.txt") == TREATMENT
        assert not (clone / ".git" / "experiment-hook" / "filter" / "deployed").read_text().strip(), i
        status = run_cli(clone, "status").stdout
        assert "merged into this branch" in status
    assert len(decision_events(team.remote)) == 1 and decision_branches(team.remote) == [f"refs/heads/{team.branch}"]


def test_two_clones_deciding_before_either_syncs_converge(tmp_path: Path, request: pytest.FixtureRequest,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    team = build(tmp_path, "install", request, monkeypatch)
    c0, c1, _ = team.clones
    url = str(team.remote)
    for clone in (c0, c1):  # both offline: each decides alone, its branch waits locally
        git(clone, "remote", "set-url", "origin", str(tmp_path / "unreachable.git"))
    first = run_cli(c0, "--auto").stdout
    second = run_cli(c1, "--auto", env={"GIT_COMMITTER_EMAIL": "second@example.com"}).stdout  # two people
    for out in (first, second):
        assert f"promote {team.exp}: promoted in commit" in out and "ledger not synced" in out, out
    commit0 = git(c0, "rev-parse", team.branch).strip()
    commit1 = git(c1, "rev-parse", team.branch).strip()
    assert commit0 != commit1
    follows(team, c0, TREATMENT)
    follows(team, c1, TREATMENT)
    for clone in (c0, c1):
        git(clone, "remote", "set-url", "origin", url)

    out1 = run_cli(c1, "sync").stdout  # c1 reaches the remote first: its decision is the team's
    assert f"decision branch {team.branch} pushed to origin" in out1
    out0 = run_cli(c0, "sync").stdout  # c0 learns it: withdraws its own (c0 decided earlier, it does not matter)
    assert f"{team.exp}: the team decided first" in out0 and "withdrawn" in out0, out0
    assert "pushed to origin" not in out0

    known = [decisions.known(Git(c)) for c in (c0, c1)]
    assert known[0] == known[1] and known[0][team.exp].commit == commit1
    assert decision_branches(team.remote) == [f"refs/heads/{team.branch}"]
    assert git(team.remote, "rev-parse", team.branch).strip() == commit1
    assert git(c0, "rev-parse", "-q", "--verify", f"refs/heads/{team.branch}", check=False).strip() == ""
    kept = git(c0, "for-each-ref", "--format=%(objectname)", f"refs/experiment-hook/superseded/{team.exp}").split()
    assert kept == [commit0]  # nothing lost
    events = ledger.read(Git(team.remote), cache=False).events
    assert len([e for e in events if e["type"] == "decision"]) == 2  # both kept (append-only), one retracted
    assert decisions.final(events)[team.exp].commit == commit1  # the retraction travelled: every clone agrees
    run_cli(c1, "sync")
    assert decisions.final(ledger.read(Git(c1), cache=False).events)[team.exp].commit == commit1
    follows(team, c0, TREATMENT)
    follows(team, c1, TREATMENT)
    assert "decision commit on" in run_cli(c0, "status").stdout
    again = run_cli(c0, "--auto").stdout  # never decided again
    assert "promote" not in again.replace(team.branch, "") and git(c0, "rev-parse", "HEAD") == git(c0, "rev-parse",
                                                                                                  "feature-0")


def test_auto_from_a_shallow_detached_ci_checkout(tmp_path: Path, request: pytest.FixtureRequest,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    team = build(tmp_path, "install", request, monkeypatch)
    c0 = team.clones[0]  # the team asks for merge requests from decision branches (GitLab's push option)
    team.git(c0, "checkout", "-q", "main")
    text = (c0 / "experiments.yaml").read_text()
    (c0 / "experiments.yaml").write_text("settings:\n  push_options: [merge_request.create]\n" + text)
    team.git(c0, "commit", "-qam", "settings")
    team.git(c0, "push", "-q", "--no-verify", "origin", "main")
    git(team.remote, "config", "receive.advertisePushOptions", "true")
    received = tmp_path / "push-options.txt"
    hook = team.remote / "hooks" / "pre-receive"
    hook.write_text(f'#!/bin/sh\ncat >/dev/null\necho "$GIT_PUSH_OPTION_COUNT $GIT_PUSH_OPTION_0" >> {received}\n')
    hook.chmod(0o755)
    ci = tmp_path / "ci"
    main = git(team.remote, "rev-parse", "main").strip()
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "main", f"file://{team.remote}", str(ci))
    git(ci, "checkout", "-q", "--detach")
    assert git(ci, "rev-parse", "--is-shallow-repository").strip() == "true"
    assert not (ci / ".git" / "hooks" / "pre-push").exists()
    out = run_cli(ci, "--auto", env={"GIT_AUTHOR_NAME": "CI", "GIT_COMMITTER_NAME": "CI"}).stdout
    assert f"promote {team.exp}: promoted in commit" in out and "pushed to origin" in out, out
    decided = git(team.remote, "rev-parse", team.branch).strip()
    assert git(team.remote, "rev-parse", f"{decided}^").strip() == main == git(team.remote, "rev-parse", "main").strip()
    assert git(team.remote, "show", f"{decided}:cfg.txt") == TREATMENT
    assert git(ci, "rev-parse", "HEAD").strip() == main  # the checkout itself is untouched
    assert len(decision_events(team.remote)) == 1
    assert "1 merge_request.create" in received.read_text().splitlines()  # the decision branch's push, with -o

    c1 = team.clones[1]
    pulled = team.git(c1, "push", "-u", "origin", "feature-1")  # a developer follows at their next push
    assert "is promoted for the team" in pulled.stderr + pulled.stdout
    follows(team, c1, TREATMENT)
    ci2 = tmp_path / "ci2"  # the next scheduled run decides nothing again
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{team.remote}", str(ci2))
    git(ci2, "checkout", "-q", "--detach")
    again = run_cli(ci2, "--auto").stdout
    assert "promoted in commit" not in again and len(decision_events(team.remote)) == 1


def _decision(exp: str, ts: str, id_: str, action: str = "promote") -> ledger.Event:
    return {**ledger.make_event("decision", exp, action=action, reasons=[]), "ts": ts, "id": id_}


def test_the_rule_every_clone_applies() -> None:
    """Pure: the earliest decision not withdrawn by its own clone; hold and continue end nothing."""
    early, late = _decision("e", "2026-12-04T10:00:00Z", "b"), _decision("e", "2026-12-04T11:00:00Z", "a", "rollback")
    hold = _decision("f", "2026-12-04T09:00:00Z", "c", "hold")
    assert decisions.final([late, early, hold]) == decisions.final([hold, early, late])
    assert decisions.final([late, early, hold])["e"].id == "b" and "f" not in decisions.final([hold])
    tie = _decision("e", "2026-12-04T10:00:00Z", "0")
    assert decisions.final([early, tie])["e"].id == "0"  # same time: the smaller id
    withdrawn = {**ledger.make_event("status", "e", **decisions.retraction(decisions.final([early])["e"], None))}
    won = decisions.final([late, early, withdrawn])["e"]
    assert (won.id, won.action, won.status, won.promoted) == ("a", "rollback", "rolled_back", False)
    assert decisions.final([early, withdrawn]) == {}


def test_a_withdrawn_current_branch_decision_is_taken_back(tmp_path: Path, request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """decision_commits: current — the clone whose decision lost takes its commit off the tip of its branch (kept
    under a ref), gets the registry back and follows the team's decision; git status clean."""
    team = build(tmp_path, "install", request, monkeypatch, settings="  decision_commits: current\n")
    c0, c1, _ = team.clones
    heads = [git(c, "rev-parse", "HEAD").strip() for c in (c0, c1)]
    for clone in (c0, c1):
        git(clone, "remote", "set-url", "origin", str(tmp_path / "unreachable.git"))
        assert f"promote {team.exp}: promoted in commit" in run_cli(clone, "--auto").stdout
        git(clone, "remote", "set-url", "origin", str(team.remote))
    mine = git(c0, "rev-parse", "HEAD").strip()
    assert git(c0, "rev-parse", "HEAD~1").strip() == heads[0]
    run_cli(c1, "sync")
    out = run_cli(c0, "sync").stdout
    assert "the team decided first" in out and f"feature-0 is back at {heads[0][:10]}" in out, out
    assert git(c0, "rev-parse", "HEAD").strip() == heads[0]  # the branch is back where its owner left it
    assert git(c0, "for-each-ref", "--format=%(objectname)", "refs/experiment-hook/superseded").split() == [mine]
    assert "status: running" in (c0 / "experiments.yaml").read_text()
    follows(team, c0, TREATMENT)
    assert decisions.known(Git(c0))[team.exp].id == decisions.known(Git(c1))[team.exp].id


def test_an_alert_is_announced_once_and_listed_while_it_holds(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    csv = repo.parent / "outlier.csv"
    values = [1.0 + 0.01 * (k % 5) for k in range(12)]
    csv.write_text("arm,value\n" + "".join(f"control,{v}\ntreatment,{v}\n" for v in values) + "control,50\n")
    run_cli(repo, "record", exp, "--from-csv", str(csv))
    first = run_cli(repo, "--auto").stdout
    assert f"alert {exp} [outliers]" in first, first
    again = run_cli(repo, "--auto").stdout
    assert "alert" not in again, again  # said once, when it first appeared
    listed = json.loads(run_cli(repo, "status", "--json").stdout)["experiments"][0]
    assert any("outlier" in a for a in listed["analysis"]["decision"]["alerts"])  # status: while it holds
