"""Everyday git while a variant is deployed, in two real clones of one bare remote, with the hooks installed by
`experiment-hook install` and by real `pre-commit install`. Every scenario ends with `git status` clean (unless
the user's own edit is the difference) and no commit in any history holding the treatment."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiment_core.store import ledger
from experiment_core.store.spec import set_status
from tests.conftest import SEED_CONTROL, SEED_TREATMENT, cli_env, git, make_clones, pre_commit_config, run_cli

CONTROL = "a=1\nmode=control\nz=9\n"
TREATMENT = "a=1\nmode=treatment\nz=9\n"


@dataclass
class Team:
    """Clone ``a`` made the experiment; clone ``b`` runs its treatment."""

    remote: Path
    a: Path
    b: Path
    exp: str
    mode: str

    def env(self, seed: str | None = None) -> dict[str, str]:
        env = cli_env({"EXPERIMENT_HOOK_SEED": seed} if seed else None)
        if self.mode == "pre-commit":
            env.pop("PYTHONPATH", None)  # hooks import the package pre-commit installed, not this source tree
        return env

    def git(self, where: Path, *args: str, seed: str | None = None, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        proc = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, env=self.env(seed),
                              input=input)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def cfg(self, where: Path | None = None) -> str:
        return ((where or self.b) / "cfg.txt").read_text()

    def teammate_commits(self, text: str, branch: str = "main") -> None:
        if branch != "main":
            self.git(self.a, "checkout", "-q", "-B", branch, "origin/main", seed=SEED_CONTROL)
        (self.a / "cfg.txt").write_text(text)
        self.git(self.a, "commit", "-qam", f"cfg on {branch}")
        self.git(self.a, "push", "-q", "origin", branch)
        if branch != "main":
            self.git(self.a, "checkout", "-q", "main", seed=SEED_CONTROL)

    def local_commit(self, name: str = "local.txt") -> None:
        (self.b / name).write_text(f"{name}\n")
        self.git(self.b, "add", name)
        self.git(self.b, "commit", "-qm", f"local {name}")


def install(repo: Path, mode: str, request: pytest.FixtureRequest) -> None:
    if mode == "install":
        run_cli(repo, "install")
        return
    hook_repo, rev, home = request.getfixturevalue("pre_commit_hooks")
    (repo / ".pre-commit-config.yaml").write_text(pre_commit_config(hook_repo, rev))
    git(repo, "add", ".pre-commit-config.yaml")
    env = cli_env({"PRE_COMMIT_HOME": str(home)})
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, check=True, capture_output=True,
                   env=env)  # fmt: skip


def build_team(request: pytest.FixtureRequest, tmp_path: Path, mode: str) -> Team:
    remote, (a, b) = make_clones(tmp_path, 2, seed_commit=False)
    (a / "cfg.txt").write_text(CONTROL)
    git(a, "add", "cfg.txt")
    git(a, "commit", "-qm", "init")
    out = run_cli(a, "create", "--name", "mode", "--file", "cfg.txt", "--command", "true", "--json").stdout
    exp = str(json.loads(out)["id"])
    (a / ".experiments" / exp / "cfg.txt").write_text(TREATMENT)
    text = (a / "experiments.yaml").read_text()  # everyone works on main: decisions committed there (trunk-based)
    (a / "experiments.yaml").write_text("settings:\n  decision_commits: current\n" + text)
    install(a, mode, request)
    team = Team(remote, a, b, exp, mode)
    git(a, "add", "-A")
    team.git(a, "commit", "-qm", "experiment")
    team.git(a, "push", "-q", "origin", "main")
    team.git(b, "pull", "-q", "origin", "main")
    install(b, mode, request)
    if mode == "pre-commit":
        team.git(b, "checkout", "-q", "--", ".pre-commit-config.yaml")
    team.git(b, "branch", "-q", "--set-upstream-to=origin/main", "main")
    fetched = team.git(b, "fetch", check=False)  # the remote has no ledger yet: fetch must work anyway
    assert fetched.returncode == 0, fetched.stderr
    team.git(b, "checkout", "-q", "-B", "main", "origin/main", seed=SEED_TREATMENT)  # a new unit: treatment
    assert team.cfg() == TREATMENT and team.git(b, "status", "--porcelain").stdout == ""
    return team


@pytest.fixture(scope="session", params=["install", "pre-commit"])
def team_template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Team:
    """Built once per mode and worker; each test gets a copy (the setup is most of a scenario's time)."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "pre-commit":
            mp.setenv("PRE_COMMIT_HOME", str(request.getfixturevalue("pre_commit_hooks")[2]))
        return build_team(request, tmp_path_factory.mktemp(f"team-{request.param}"), request.param)


@pytest.fixture
def team(team_template: Team, request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Team:  # fmt: skip
    """A copy of the template: the paths in each clone's config (remote URL, filter command) moved along."""
    import shutil

    if team_template.mode == "pre-commit":
        monkeypatch.setenv("PRE_COMMIT_HOME", str(request.getfixturevalue("pre_commit_hooks")[2]))
    old, new = team_template.remote.parent, tmp_path / "team"
    shutil.copytree(old, new, symlinks=True)
    for clone in (team_template.a, team_template.b):
        config = new / clone.name / ".git" / "config"
        config.write_text(config.read_text().replace(str(old), str(new)))
    team = Team(new / "remote.git", new / team_template.a.name, new / team_template.b.name, team_template.exp,
                team_template.mode)  # fmt: skip
    clean(team)  # every stat changed with the copy: git compares content (through the filter) once
    return team


def treatment_free(repo: Path, *allowed: str) -> None:
    """No commit of any branch holds treatment content of cfg.txt (other than the user's own ``allowed``)."""
    commits = git(repo, "rev-list", "--all").split()
    query = "".join(f"{c}:cfg.txt\n" for c in commits)
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input=query, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert "mode=treatment" not in out.replace("".join(allowed), "") if allowed else "mode=treatment" not in out


def clean(team: Team, where: Path | None = None) -> None:
    assert team.git(where or team.b, "status", "--porcelain").stdout == ""


# ---- scenarios: (name, what to do in clone b, what cfg.txt must hold afterwards) ---------------------------
def pull_ff(team: Team) -> str:
    team.teammate_commits("a=2\nmode=control\nz=9\n")
    team.git(team.b, "pull", "-q", "--ff-only")
    return "a=2\nmode=treatment\nz=9\n"  # the teammate's change flows in, the treatment stays


def pull_conflicting_change(team: Team) -> str:
    team.teammate_commits("a=1\nmode=fast\nz=9\n")  # the treatment's own line: the treatment no longer applies
    pulled = team.git(team.b, "pull", "--ff-only")
    assert f"the treatment of {team.exp} no longer applies" in pulled.stderr + pulled.stdout
    assert f".experiments/{team.exp}/cfg.txt" in pulled.stderr + pulled.stdout  # what to update
    alerts = run_cli(team.b, "export", team.exp, "-o", str(team.b.parent / "events.jsonl"))
    assert alerts.returncode == 0 and "treatment_conflict" in (team.b.parent / "events.jsonl").read_text()
    return "a=1\nmode=fast\nz=9\n"  # this unit runs the control


def pull_ff_other_file(team: Team) -> str:
    (team.a / "other.txt").write_text("x\n")
    team.git(team.a, "add", "other.txt")
    team.git(team.a, "commit", "-qm", "other")
    team.git(team.a, "push", "-q", "origin", "main")
    team.git(team.b, "pull", "-q", "--ff-only")
    return TREATMENT


def pull_merge(team: Team) -> str:
    team.teammate_commits("a=2\nmode=control\nz=9\n")
    team.local_commit()
    team.git(team.b, "pull", "-q", "--no-rebase", "--no-edit")
    return "a=2\nmode=treatment\nz=9\n"


def pull_rebase(team: Team) -> str:
    team.teammate_commits("a=1\nmode=control\nz=8\n")
    team.local_commit()
    team.git(team.b, "pull", "-q", "--rebase")
    assert "local local.txt" in team.git(team.b, "log", "-1", "--format=%s").stdout
    return "a=1\nmode=treatment\nz=8\n"


def pull_rebase_no_local(team: Team) -> str:
    team.teammate_commits("a=1\nmode=control\nz=8\n")
    team.git(team.b, "pull", "-q", "--rebase")
    return "a=1\nmode=treatment\nz=8\n"


def merge_branch(team: Team) -> str:
    team.teammate_commits("a=1\nmode=control\nz=7\n", branch="feat")
    team.local_commit()
    team.git(team.b, "fetch", "-q")
    team.git(team.b, "merge", "-q", "--no-edit", "origin/feat")
    return "a=1\nmode=treatment\nz=7\n"


def rebase_branch(team: Team) -> str:
    team.teammate_commits("a=1\nmode=control\nz=7\n", branch="feat")
    team.local_commit()
    team.git(team.b, "fetch", "-q")
    team.git(team.b, "rebase", "-q", "origin/feat")
    return "a=1\nmode=treatment\nz=7\n"


def cherry_pick(team: Team) -> str:
    team.teammate_commits("a=3\nmode=control\nz=9\n", branch="feat")
    team.git(team.b, "fetch", "-q")
    team.git(team.b, "cherry-pick", "origin/feat")
    return "a=3\nmode=treatment\nz=9\n"


def stash_and_pop(team: Team) -> str:
    assert "No local changes" in team.git(team.b, "stash").stdout
    (team.b / "cfg.txt").write_text(TREATMENT + "mine=1\n")
    team.git(team.b, "stash", "-q")
    assert team.cfg() == TREATMENT
    team.git(team.b, "stash", "pop", "-q")
    assert team.cfg() == TREATMENT + "mine=1\n"
    assert team.git(team.b, "diff", "--stat").stdout.strip().endswith("1 insertion(+)")  # only the user's line
    team.git(team.b, "commit", "-qam", "my line")
    assert team.git(team.b, "show", "HEAD:cfg.txt").stdout == CONTROL + "mine=1\n"  # on top of the control
    return TREATMENT + "mine=1\n"


def switch_branches(team: Team) -> str | None:
    team.git(team.b, "checkout", "-q", "-b", "other", seed=SEED_CONTROL)
    assert team.cfg() == CONTROL
    clean(team)
    team.git(team.b, "checkout", "-q", "main", seed=SEED_TREATMENT)
    assert team.cfg() == TREATMENT
    clean(team)
    team.git(team.b, "switch", "-q", "other", seed=SEED_CONTROL)
    return CONTROL


def worktree_add(team: Team) -> str:
    wt = team.b.parent / "wt"
    team.git(team.b, "worktree", "add", "-q", "-b", "wtb", str(wt), seed=SEED_CONTROL)
    assert team.cfg(wt) == CONTROL  # its own unit, its own variant
    clean(team, wt)
    (wt / "w.txt").write_text("w\n")
    team.git(wt, "add", "-A")
    team.git(wt, "commit", "-qm", "in the worktree")
    clean(team, wt)
    return TREATMENT


def reset_hard(team: Team) -> str:
    team.local_commit()
    team.git(team.b, "reset", "-q", "--hard", "HEAD~1")
    team.git(team.b, "reset", "-q", "--hard")
    return TREATMENT


def checkout_file(team: Team) -> str:
    team.git(team.b, "checkout", "--", "cfg.txt")
    assert team.cfg() == TREATMENT
    (team.b / "cfg.txt").write_text("scratch\n")
    team.git(team.b, "checkout", "--", "cfg.txt")  # throws the edit away, as git alone would
    return TREATMENT


def add_all_and_commit_a(team: Team) -> str:
    (team.b / "new.txt").write_text("n\n")
    team.git(team.b, "add", "-A")
    team.git(team.b, "commit", "-qm", "add -A")
    (team.b / "new.txt").write_text("n2\n")
    team.git(team.b, "commit", "-qam", "commit -a")
    assert "cfg.txt" not in team.git(team.b, "log", "--name-only", "--format=", "-2").stdout
    return TREATMENT


def edit_committed(team: Team) -> str:
    (team.b / "cfg.txt").write_text("a=1\nmode=treatment\nz=9\nmine=1\n")
    assert team.git(team.b, "status", "--porcelain").stdout == " M cfg.txt\n"  # git sees the edit
    team.git(team.b, "commit", "-qam", "my line")
    assert team.git(team.b, "show", "HEAD:cfg.txt").stdout == CONTROL + "mine=1\n"
    return TREATMENT + "mine=1\n"


def edit_retunes_treatment_line(team: Team) -> str:
    (team.b / "cfg.txt").write_text("a=1\nmode=fast\nz=9\n")
    team.git(team.b, "commit", "-qam", "retune")
    assert team.git(team.b, "show", "HEAD:cfg.txt").stdout == "a=1\nmode=fast\nz=9\n"  # the user's own line
    return "a=1\nmode=fast\nz=9\n"


def edit_overlapping_refused(team: Team) -> str:
    mine = "a=1\nmode=treatment-x\nmode=extra\nz=9\n"  # rewrites the treatment's lines: no clean way onto the control
    (team.b / "cfg.txt").write_text(mine)
    head = team.git(team.b, "rev-parse", "HEAD").stdout
    assert team.git(team.b, "status", "--porcelain").stdout == " M cfg.txt\n"  # status still works
    refused = team.git(team.b, "commit", "-qam", "overlap", check=False)
    assert refused.returncode != 0 and "cfg.txt: your edit overlaps" in refused.stderr
    assert team.cfg() == mine and team.git(team.b, "rev-parse", "HEAD").stdout == head
    out = run_cli(team.b, "restore", team.exp).stdout
    assert "your edit kept" in out and team.cfg() == mine
    assert team.git(team.b, "status", "--porcelain").stdout == " M cfg.txt\n"
    team.git(team.b, "checkout", "--", "cfg.txt")
    return CONTROL


def teammate_decides(action: str) -> Callable[[Team], str]:
    def scenario(team: Team) -> str:
        env = {"EXPERIMENT_HOOK_NOW": "2099-01-01T00:00:00Z"} if action == "expire" else None
        if action == "expire":
            assert f"expire {team.exp}: expired" in run_cli(team.a, "--auto", env=env).stdout
        else:
            run_cli(team.a, action, team.exp, "--yes")
        team.git(team.a, "push", "-q", "origin", "main")
        team.local_commit()
        pulled = team.git(team.b, "pull", "--no-rebase", "--no-edit")
        status = {"promote": "promoted", "rollback": "rolled back", "expire": "expired"}[action]
        assert f"{team.exp} is {status}" in pulled.stderr + pulled.stdout  # the user is told (pre-commit: verbose)
        assert not (team.b / ".git" / "experiment-hook" / "filter" / "deployed").read_text()
        team.git(team.b, "checkout", "-q", "-b", "next", seed=SEED_TREATMENT)  # no unit of an ended experiment
        return "a=1\nmode=treatment\nz=9\n" if action == "promote" else CONTROL

    scenario.__name__ = f"teammate_{action}s"
    return scenario


SCENARIOS: list[Callable[[Team], str | None]] = [
    pull_ff, pull_conflicting_change, pull_ff_other_file, pull_merge, pull_rebase, pull_rebase_no_local,
    merge_branch, rebase_branch, cherry_pick, stash_and_pop, switch_branches, worktree_add, reset_hard,
    checkout_file, add_all_and_commit_a, edit_committed, edit_retunes_treatment_line, edit_overlapping_refused,
    teammate_decides("promote"), teammate_decides("rollback"), teammate_decides("expire"),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_everyday_git_with_a_variant_deployed(team: Team, scenario: Callable[[Team], str | None]) -> None:
    expected = scenario(team)
    if expected is not None:
        assert team.cfg() == expected
    clean(team)
    promoted = "a=1\nmode=treatment\nz=9\n" if scenario.__name__ == "teammate_promotes" else ""
    treatment_free(team.b, *([promoted] if promoted else []))
    treatment_free(team.a, *([promoted] if promoted else []))


def test_a_pulled_rollback_under_an_edit_keeps_the_edit_on_the_control_and_says_so(team: Team) -> None:
    (team.b / "cfg.txt").write_text(TREATMENT + "mine=1\n")  # b edits while its unit runs the treatment
    run_cli(team.a, "rollback", team.exp, "--yes")
    team.git(team.a, "push", "-q", "origin", "main")
    pulled = team.git(team.b, "pull", "--no-rebase", "--no-edit")
    said = pulled.stderr + pulled.stdout
    assert team.cfg() == CONTROL + "mine=1\n"  # the treatment's line is gone, the user's line stays
    if team.mode == "install":
        assert "cfg.txt holds your edit: kept, now on the control" in said
    else:  # pre-commit stashes the unstaged edit around the hook: the hook never sees it, the result is the same
        assert "Stashing unstaged files" in said and "holds your edit" not in said
    assert "pauses" not in said
    assert f"{team.exp} is rolled back" in said
    assert team.git(team.b, "status", "--porcelain").stdout == " M cfg.txt\n"
    assert team.git(team.b, "diff").stdout.endswith(" z=9\n+mine=1\n")


def test_fetch_brings_the_ledger(team: Team) -> None:
    """The remote has a ledger now (clone a's push synced it): a plain fetch in b brings it into the side ref."""
    team.git(team.b, "fetch", "-q")
    names = git(team.b, "for-each-ref", "--format=%(refname)").split()
    assert f"refs/notes/remotes/origin/experiments-{team.exp}" in names
    assert team.git(team.b, "pull", "-q").returncode == 0


def no_trace_of_the_tool(repo: Path) -> None:
    assert not git(repo, "config", "--local", "--get-regexp", "^filter\\.", check=False)
    assert "filter=" not in (repo / ".git" / "info" / "attributes").read_text()
    assert not [line for line in git(repo, "ls-files", "-v").splitlines() if line.startswith("S ")]
    hooks = [p for p in (repo / ".git" / "hooks").iterdir() if "experiment-hook" in p.read_text(errors="replace")]
    assert hooks == []


@pytest.mark.parametrize("edit", ["", "mine=1\n"])
def test_uninstall_leaves_the_repo_as_git_alone_would(team: Team, edit: str) -> None:
    (team.b / "cfg.txt").write_text(TREATMENT + edit)
    run_cli(team.b, "uninstall")
    assert team.cfg() == CONTROL + edit  # committed content, the user's edit on top
    assert team.git(team.b, "status", "--porcelain").stdout == (" M cfg.txt\n" if edit else "")
    if team.mode == "install":
        no_trace_of_the_tool(team.b)
    else:
        assert not git(team.b, "config", "--local", "--get-regexp", "^filter\\.", check=False)
    team.teammate_commits("a=2\nmode=control\nz=9\n")
    team.git(team.b, "stash", "-q") if edit else None
    team.git(team.b, "pull", "-q", "--ff-only")
    assert team.cfg() == "a=2\nmode=control\nz=9\n"


def make_it_a_0_1_clone(team: Team, content: str) -> None:
    """The state 0.1 left: no filter, the variant written under a skip-worktree bit, the exact fetch refspec."""
    b = team.b
    git(b, "config", "--local", "--remove-section", "filter.experiment-hook")
    (b / ".git" / "info" / "attributes").write_text("")
    (b / ".git" / "experiment-hook" / "filter" / "deployed").unlink()
    git(b, "config", "--unset-all", "remote.origin.fetch", "experiments", check=False)
    git(b, "config", "--add", "remote.origin.fetch", "+refs/notes/experiments:refs/notes/experiments-remote/origin")
    git(b, "update-index", "--skip-worktree", "cfg.txt")
    (b / "cfg.txt").write_text(content)
    # and 0.1 wrote the ledger to refs/notes/experiments, on the remote too (the exact refspec needs it there)
    line = ledger.encode(ledger.make_event("trial", team.exp, arm="control", metric="t", value=1.0, unit="old"))
    git(b, "notes", "--ref=experiments", "add", "-m", line, "HEAD")
    git(b, "push", "-q", "--no-verify", "origin", "refs/notes/experiments")


@pytest.mark.parametrize("edit", ["", "mine=1\n"])
def test_a_skip_worktree_clone_moves_over_on_its_first_hook_run(team: Team, edit: str) -> None:
    make_it_a_0_1_clone(team, TREATMENT + edit)
    first = team.git(team.b, "checkout", "-q", "-b", "next", seed=SEED_TREATMENT)  # the first hook run
    if edit and team.mode == "pre-commit":  # a hook that makes a change visible fails under pre-commit: restore
        assert "run `experiment-hook restore` to let git see it" in first.stdout + first.stderr
        assert team.cfg() == TREATMENT + edit
        run_cli(team.b, "restore")
    assert not git(team.b, "ls-files", "-v", "cfg.txt").startswith("S ")
    assert team.cfg() == TREATMENT + edit  # nothing lost
    if edit:
        assert team.git(team.b, "status", "--porcelain").stdout == " M cfg.txt\n"  # the edit, visible at last
        kept = git(team.b, "for-each-ref", "--format=%(objectname)", "refs/experiments/kept/")
        assert git(team.b, "hash-object", "--no-filters", "cfg.txt").strip() in kept
    else:
        clean(team)
    assert team.git(team.b, "fetch").returncode == 0  # the exact refspec is gone
    treatment_free(team.b)


@pytest.mark.parametrize("status", ["running", "rolled_back"])
def test_uninstall_clears_only_the_bits_of_experimented_files(team: Team, status: str) -> None:
    """A skip-worktree bit the user set on a file of their own survives uninstall (it is theirs: a local change
    git must not see); the bit 0.1 set on an experimented target goes, and the target holds the committed content
    again — also when its experiment has ended."""
    (team.b / "other.txt").write_text("shared=1\n")
    team.git(team.b, "add", "other.txt")
    team.git(team.b, "commit", "-qm", "a file of the user's")
    git(team.b, "update-index", "--skip-worktree", "other.txt")
    (team.b / "other.txt").write_text("shared=1\nlocal=1\n")  # the user's local change, hidden from git on purpose
    make_it_a_0_1_clone(team, TREATMENT)
    if status != "running":
        set_status(team.b, team.exp, status)
    run_cli(team.b, "uninstall")
    assert git(team.b, "ls-files", "-v", "other.txt") == "S other.txt\n"
    assert (team.b / "other.txt").read_text() == "shared=1\nlocal=1\n"
    assert git(team.b, "ls-files", "-v", "cfg.txt") == "H cfg.txt\n"
    assert team.cfg() == CONTROL
