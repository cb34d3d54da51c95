"""Experiments on Claude Code's command and instruction files, measured from the real CLI's use.

The real ``claude`` binary (pinned, see tests/claude_cli.py) runs ``claude -p "/review_pr N"`` in real clones with
``experiment-hook install --agent claude``, against a model server on 127.0.0.1 that answers the treatment's
command text faster: each trial equals what the server sent and the CLI reported, ``git push`` promotes the faster
command file, an A/A twin (the instruction file) decides nothing, and a session that never uses the command
records nothing for it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.claude_cli import ClaudeCli, Session, require_cli
from tests.conftest import cli_env, git, make_clones, pre_commit_config, run_cli
from tests.model_server import ModelServer, Reply, has_tool_result, request_text

COMMAND = ".claude/commands/review_pr.md"
CONTROL = "Review pull request $ARGUMENTS one file at a time (variant: sequential).\n"
TREATMENT = "Review pull request $ARGUMENTS with parallel agents (variant: parallel).\n"
INSTRUCTIONS = "# Team notes\nKeep answers short.\n"
SLOW = Reply(text="Reviewed.\nexperiment-metric: issues_caught=2", delay=2.5, input_tokens=523, output_tokens=67)
FAST = Reply(text="Reviewed.\nexperiment-metric: issues_caught=3", delay=0.1, input_tokens=311, output_tokens=41)
OTHER = Reply(text="Hello.", delay=0.05, input_tokens=50, output_tokens=5)
CLI_SLACK = 1.0  # seconds the CLI's JSON duration may miss of our expansion-to-Stop (hook start-up on both ends)


def choose(body: dict[str, Any]) -> Reply:
    text = request_text(body)
    if "variant: parallel" in text:
        return FAST
    if "variant: sequential" in text:
        return SLOW
    return OTHER


def export(repo: Path, exp: str) -> list[dict[str, Any]]:
    out = run_cli(repo, "export", exp, "-o", "-", "--format", "jsonl").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def by_unit(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """unit -> {metric: value, "arm": arm} of the agent's trials."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for e in events:
        if e["type"] == "trial" and e.get("source") == "agent":
            out[e["unit"]][e["metric"]] = e["value"]
            out[e["unit"]]["arm"] = e["arm"]
    return dict(out)


def seeds_for(cells: list[tuple[str, str]]) -> list[str]:
    """A seed per (arm of the command experiment, arm of the A/A twin): both drawn in registry order."""
    from experiment_core.deploy.assign import draw_arm

    out = []
    for i, cell in enumerate(cells):
        n = 0
        while True:
            rng = random.Random(seed := f"s{i}-{n}")
            if (draw_arm(0.5, rng), draw_arm(0.5, rng)) == cell:
                break
            n += 1
        out.append(seed)
    return out


def units_of(repo: Path) -> dict[str, tuple[str, str]]:
    """exp -> (unit, arm) this worktree runs."""
    from experiment_core.deploy.assign import load_assignments
    from experiment_core.gitio import Git

    return {e: (a.unit, a.arm) for e, a in load_assignments(Git(repo)).items() if a.unit and a.arm}


def hook_env(seed: str | None = None) -> dict[str, str]:
    """A git command's environment whose hooks may run under pre-commit: they import the package pre-commit
    installed, not this source tree (which has no experiment_core.hooks)."""
    env = cli_env({"EXPERIMENT_HOOK_SEED": seed} if seed else None)
    env.pop("PYTHONPATH", None)
    return env


def checkout(repo: Path, branch: str, seed: str) -> None:
    subprocess.run(["git", "checkout", "-q", "-b", branch, "main"], cwd=repo, check=True, env=hook_env(seed))


def setup_team(tmp_path: Path) -> tuple[Path, Path, Path, str, str]:
    """Two clones; Alice creates the command experiment and its A/A twin on the instruction file."""
    remote, (alice, bob) = make_clones(tmp_path, 2)
    (alice / COMMAND).parent.mkdir(parents=True)
    (alice / COMMAND).write_text(CONTROL)
    (alice / "CLAUDE.md").write_text(INSTRUCTIONS)
    git(alice, "add", "-A")
    git(alice, "commit", "-qm", "review command")
    run_cli(alice, "install")
    exp = json.loads(run_cli(alice, "create", "--agent", "--name", "parallel review", "--file", COMMAND,
                             "--sample-size", "4", "--json").stdout)["id"]  # fmt: skip
    aa = json.loads(run_cli(alice, "create", "--agent", "--name", "A/A", "--file", "CLAUDE.md",
                            "--sample-size", "4", "--json").stdout)["id"]  # fmt: skip
    (alice / ".experiments" / exp / COMMAND).write_text(TREATMENT)
    (alice / ".experiments" / aa / "CLAUDE.md").write_text(INSTRUCTIONS + "\n")
    git(alice, "add", "-A")
    git(alice, "commit", "-qm", "experiments")
    git(alice, "push", "-q", "origin", "main")
    git(bob, "pull", "-q", "origin", "main")
    run_cli(bob, "install")
    for repo in (alice, bob):
        out = run_cli(repo, "install", "--agent", "claude").stdout
        assert "installed" in out and ".claude/settings.local.json" in out
    return remote, alice, bob, exp, aa


def work(cli: ClaudeCli, repo: Path, name: str, cells: list[tuple[str, str]], exp: str, aa: str,
         seen: dict[str, tuple[str, Session]]) -> None:  # fmt: skip
    """A branch checkout per cell, one `/review_pr` session on each."""
    for i, (cell, seed) in enumerate(zip(cells, seeds_for(cells), strict=True)):
        checkout(repo, f"{name}-{i}", seed)
        units = units_of(repo)
        assert (units[exp][1], units[aa][1]) == cell
        variant = (repo / COMMAND).read_text()
        assert variant == (TREATMENT if cell[0] == "treatment" else CONTROL)
        seen[units[exp][0]] = (cell[0], cli.run(repo, f"/review_pr {40 + i}"))
    git(repo, "checkout", "-q", "main")


def assert_trials_equal_what_was_seen(events: list[dict[str, Any]], seen: dict[str, tuple[str, Session]]) -> None:
    trials = by_unit(events)
    assert set(trials) == set(seen)
    for unit, (arm, session) in seen.items():
        got, reply, result = trials[unit], FAST if arm == "treatment" else SLOW, session.result
        assert got["arm"] == arm
        assert got["input_tokens"] == reply.input_tokens == result["usage"]["input_tokens"]
        assert got["output_tokens"] == reply.output_tokens == result["usage"]["output_tokens"]
        assert got["turns"] == result["num_turns"] == 1
        assert got["completed"] == 1 and got["tool_errors"] == 0
        assert got["issues_caught"] == (3 if arm == "treatment" else 2)
        assert reply.delay <= got["duration_s"] <= result["duration_ms"] / 1000 + CLI_SLACK
        assert got["duration_s"] <= session.wall
        assert 0 < got["active_s"] <= got["duration_s"] + 0.001


def test_a_teams_week_with_the_real_cli_promotes_the_faster_command(tmp_path: Path) -> None:
    binary = require_cli()
    remote, alice, bob, exp, aa = setup_team(tmp_path)
    cells = [("treatment", "treatment"), ("control", "control"), ("treatment", "control"), ("control", "treatment")]
    seen: dict[str, tuple[str, Session]] = {}
    with ModelServer(choose) as server:
        cli = ClaudeCli(binary, tmp_path / "home", server)
        cli.home.mkdir()
        work(cli, alice, "alice", cells, exp, aa, seen)
        first = subprocess.run(["git", "push", "origin", "main"], cwd=alice, capture_output=True, text=True,
                               env=cli_env())  # fmt: skip
        assert first.returncode == 0 and "promoted" not in first.stderr, first.stderr  # 2 units per arm: too early
        work(cli, bob, "bob", cells, exp, aa, seen)
        checkout(bob, "bob-chat", "s-chat")
        chat_unit = units_of(bob)[exp][0]
        cli.run(bob, "hello")  # a session that never uses the command
        git(bob, "checkout", "-q", "main")
        (bob / "notes.txt").write_text("done\n")
        git(bob, "add", "notes.txt")
        git(bob, "commit", "-qm", "notes")
        run_cli(bob, "sync")  # Alice's trials (her push published them)
        pushed = push(bob)
        for extra in range(2):  # on a loaded machine the CLI's own time is noisy: a little more work, push again
            if f"promote {exp}" in pushed.stderr:
                break
            assert "promoted" not in pushed.stderr and "rolled_back" not in pushed.stderr, pushed.stderr
            work(cli, bob, f"bob-more{extra}", cells[2:], exp, aa, seen)
            (bob / "notes.txt").write_text(f"more {extra}\n")
            git(bob, "commit", "-qam", "more notes")
            pushed = push(bob)
    assert pushed.returncode == 0, pushed.stderr
    assert f"promote {exp}: promoted" in pushed.stderr and f"{aa}: continue" in pushed.stderr, pushed.stderr
    events = export(bob, exp)
    assert chat_unit not in by_unit(events)
    assert_trials_equal_what_was_seen(events, seen)
    decisions = [e["action"] for e in export(bob, exp) if e["type"] == "decision"]
    assert decisions == ["promote"]
    assert [e for e in export(bob, aa) if e["type"] == "decision" and e["action"] != "continue"] == []
    aa_trials = by_unit(export(bob, aa))
    assert len(aa_trials) == len(seen) + 1  # every session is a use of the instruction file, the chat too
    assert {t["arm"] for t in aa_trials.values()} == {"control", "treatment"}
    decision_branch = f"experiment-hook/promote-{exp}"  # a pull request away from main, never on main itself
    assert git(remote, "log", "-1", "--format=%s", decision_branch).startswith(f"experiment: Promote {exp}")
    git(remote, "merge-base", "--is-ancestor", f"{decision_branch}^", "main")  # built on main as the clone knew it
    assert git(remote, "show", f"{decision_branch}:{COMMAND}") == TREATMENT
    assert (bob / COMMAND).read_text() == TREATMENT and git(bob, "status", "--porcelain") == ""  # bob follows at once
    ledger_text = notes_text(remote)
    for private in ["pull request", "variant:", "/review_pr 4", "hello", str(tmp_path), "Reviewed"]:
        assert private not in ledger_text
    for _, session in seen.values():
        assert session.result["session_id"] not in ledger_text


def push(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "push", "origin", "main"], cwd=repo, capture_output=True, text=True, env=cli_env())


def notes_text(repo: Path) -> str:
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/notes").split()
    out = []
    for ref in refs:
        for line in git(repo, "ls-tree", "-r", ref).splitlines():
            out.append(git(repo, "cat-file", "-p", line.split()[2]))
    return "".join(out)


def tool_failure(body: dict[str, Any]) -> Reply:
    if has_tool_result(body) or "variant:" not in request_text(body):
        return Reply(text="Could not run it.", delay=0.05, input_tokens=70, output_tokens=9)
    return Reply(tool=("Bash", {"command": "exit 3", "description": "run the checks"}), input_tokens=60,
                 output_tokens=8)  # fmt: skip


def user_settings() -> str:
    hooks = {"Stop": [{"matcher": "", "hooks": [{"type": "command", "command": "touch user-stop-hook-ran"}]}]}
    return json.dumps({"permissions": {"allow": ["Bash(ls:*)"]}, "hooks": hooks}, indent=4) + "\n"


def test_under_pre_commit_tool_errors_rating_and_uninstall(tmp_path: Path, request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    binary = require_cli()
    hook_repo, rev, home = request.getfixturevalue("pre_commit_hooks")
    monkeypatch.setenv("PRE_COMMIT_HOME", str(home))
    _, (repo,) = make_clones(tmp_path, 1)
    (repo / COMMAND).parent.mkdir(parents=True)
    (repo / COMMAND).write_text(CONTROL)
    (repo / ".pre-commit-config.yaml").write_text(pre_commit_config(hook_repo, rev))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "review command")
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, check=True, capture_output=True,
                   env=cli_env())  # fmt: skip
    exp = json.loads(run_cli(repo, "create", "--agent", "--name", "r", "--file", COMMAND, "--json").stdout)["id"]
    (repo / ".experiments" / exp / COMMAND).write_text(TREATMENT)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=hook_env())
    subprocess.run(["git", "commit", "-qm", "experiment"], cwd=repo, check=True, env=hook_env())
    (repo / ".claude" / "settings.local.json").write_text(user_settings())
    run_cli(repo, "install", "--agent", "claude")
    with ModelServer(tool_failure) as server:
        cli = ClaudeCli(binary, tmp_path / "home", server)
        cli.home.mkdir()
        checkout(repo, "task", "treat")
        unit, arm = units_of(repo)[exp]
        assert arm == "treatment" and (repo / COMMAND).read_text() == TREATMENT
        used = cli.run(repo, "/review_pr 7", "--allowedTools", "Bash")
        requests = len(server.served)
        rated = cli.run(repo, "/rate 4")
        assert len(server.served) == requests  # blocked before any model call
    assert rated.result["num_turns"] == 0 and "recorded user_satisfaction=4" in json.dumps(rated.result)
    assert (repo / "user-stop-hook-ran").exists()  # the user's own hook still runs beside ours
    got = by_unit(export(repo, exp))[unit]
    assert got["arm"] == "treatment" and got["user_satisfaction"] == 4
    assert got["tool_errors"] == 1 and got["turns"] == used.result["num_turns"] == 2
    assert got["input_tokens"] == 130 == used.result["usage"]["input_tokens"]
    assert got["output_tokens"] == 17 == used.result["usage"]["output_tokens"]
    out = run_cli(repo, "uninstall").stdout
    assert "restored" in out
    assert (repo / ".claude" / "settings.local.json").read_text() == user_settings()


def by_args(body: dict[str, Any]) -> Reply:
    text = request_text(body)
    if "<command-args>1</command-args>" in text:
        return Reply(text="one", delay=0.3, input_tokens=101, output_tokens=11)
    if "<command-args>2</command-args>" in text:
        return Reply(text="two", delay=1.5, input_tokens=202, output_tokens=22)
    return Reply(text="You're welcome.", delay=0.05, input_tokens=7, output_tokens=3)


def test_two_sessions_at_once_keep_their_own_use_and_a_resumed_one_counts_once(tmp_path: Path) -> None:
    import threading

    binary = require_cli()
    _, (repo,) = make_clones(tmp_path, 1)
    (repo / COMMAND).parent.mkdir(parents=True)
    (repo / COMMAND).write_text(CONTROL)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "review command")
    run_cli(repo, "install")
    exp = json.loads(run_cli(repo, "create", "--agent", "--name", "r", "--file", COMMAND, "--json").stdout)["id"]
    (repo / ".experiments" / exp / COMMAND).write_text(TREATMENT)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "experiment")
    run_cli(repo, "install", "--agent", "claude")
    checkout(repo, "task", "b")
    sessions: dict[str, Session] = {}
    with ModelServer(by_args) as server:
        cli = ClaudeCli(binary, tmp_path / "home", server)
        cli.home.mkdir()
        threads = [threading.Thread(target=lambda n=n: sessions.__setitem__(n, cli.run(repo, f"/review_pr {n}")))
                   for n in ("1", "2")]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cli.run(repo, "thanks", "--resume", sessions["1"].result["session_id"])  # not a use; the first not again
    uses: dict[str, dict[str, Any]] = defaultdict(dict)
    for e in export(repo, exp):
        if e["type"] == "trial":
            uses[e["use"]][e["metric"]] = e["value"]
    got = sorted(uses.values(), key=lambda u: u["input_tokens"])
    assert [(u["input_tokens"], u["output_tokens"], u["turns"]) for u in got] == [(101, 11, 1), (202, 22, 1)]
    for use, n, delay in zip(got, ("1", "2"), (0.3, 1.5), strict=True):
        assert delay <= use["duration_s"] <= sessions[n].result["duration_ms"] / 1000 + CLI_SLACK
