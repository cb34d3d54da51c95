"""Claude Code's handler, driven with the payloads the CLI sends (shapes checked with CLI 2.1.328, see DESIGN.md):
two sessions at once, a second use in one session, a branch checkout during a use, a replayed session, 30 idle
minutes, an API error, a transcript that cannot be read, repositories where nothing runs; and the settings file
``install --agent claude`` writes and ``uninstall`` gives back. The clock is ``EXPERIMENT_HOOK_NOW``, so durations
are exact. The real CLI end to end is tests/test_agents_claude.py."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT, cli_env, git, run_cli

COMMAND = ".claude/commands/review_pr.md"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
SETTINGS = Path(".claude/settings.local.json")


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Assistant:
    """Sends Claude Code's hook payloads to the installed handler, and writes the session's transcript lines."""

    def __init__(self, repo: Path, session: str) -> None:
        self.repo, self.session = repo, session
        self.transcript = repo.parent / f"{session}.jsonl"
        self.transcript.touch()

    def send(self, event: str, t: float, **fields: Any) -> subprocess.CompletedProcess[str]:
        payload = {"session_id": self.session, "transcript_path": str(self.transcript), "cwd": str(self.repo),
                   "hook_event_name": event, **fields}  # fmt: skip
        proc = subprocess.run([sys.executable, str(PROJECT / "hooks" / "agent_claude.py")], cwd=self.repo,
                              input=json.dumps(payload), capture_output=True, text=True,
                              env=cli_env({"EXPERIMENT_HOOK_NOW": at(t)}))  # fmt: skip
        assert proc.returncode == 0 and proc.stderr == ""
        return proc

    def answer(self, t: float, msg_id: str, tokens_in: int, tokens_out: int, lines: int = 1) -> None:
        line = {"type": "assistant", "timestamp": at(t)[:-4] + "Z", "sessionId": self.session,
                "message": {"id": msg_id, "role": "assistant",
                            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}}  # fmt: skip
        with self.transcript.open("a") as f:
            f.write((json.dumps(line) + "\n") * lines)

    def use(self, prompt: str, t: float, wait: float, tokens: tuple[int, int] = (100, 10),
            command: str = "review_pr") -> None:  # fmt: skip
        """``/review_pr``: submit, expansion, one answer, Stop."""
        self.send("UserPromptSubmit", t, prompt_id=prompt, prompt=f"/{command} 1")
        self.send("UserPromptExpansion", t, prompt_id=prompt, command_name=command, command_args="1",
                  expansion_type="slash_command", command_source="projectSettings")  # fmt: skip
        self.answer(t + wait / 2, f"msg-{prompt}", *tokens, lines=2)  # one response on two lines
        self.send("Stop", t + wait, prompt_id=prompt, last_assistant_message="ok\nexperiment-metric: found=2",
                  stop_hook_active=False, background_tasks=[])  # fmt: skip


def make_repo(tmp_path: Path, seed: str = "treat", command: str = COMMAND) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.email", "t@e"), ("user.name", "t"), ("commit.gpgsign", "false")):
        git(repo, "config", key, value)
    (repo / command).parent.mkdir(parents=True)
    (repo / command).write_text("Review $ARGUMENTS.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    run_cli(repo, "install")
    exp = json.loads(run_cli(repo, "create", "--agent", "--name", "r", "--file", command, "--json").stdout)["id"]
    (repo / ".experiments" / exp / command).write_text("Review $ARGUMENTS in parallel.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "experiment")
    run_cli(repo, "install", "--agent", "claude")
    checkout(repo, "task", seed)
    return repo, exp


def checkout(repo: Path, branch: str, seed: str) -> None:
    subprocess.run(["git", "checkout", "-q", "-b", branch], cwd=repo, check=True,
                   env=cli_env({"EXPERIMENT_HOOK_SEED": seed}))  # fmt: skip


def events(repo: Path, exp: str) -> list[dict[str, Any]]:
    out = run_cli(repo, "export", exp, "-o", "-", "--format", "jsonl").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def trials(repo: Path, exp: str) -> list[dict[str, float]]:
    """One dict of metrics per use (its events share the opaque ``use`` id)."""
    uses: dict[str, dict[str, float]] = {}
    for e in events(repo, exp):
        if e["type"] == "trial" and e.get("source") == "agent" and e["metric"] != "user_satisfaction":
            uses.setdefault(e["use"], {})[e["metric"]] = e["value"]
    return list(uses.values())


def test_two_sessions_at_once_and_a_second_use_each_keep_their_own_trial(tmp_path: Path) -> None:
    repo, exp = make_repo(tmp_path)
    a, b = Assistant(repo, "aaaa-1"), Assistant(repo, "bbbb-2")
    a.send("SessionStart", 0, source="startup")
    b.send("SessionStart", 1, source="startup")
    a.use("p1", 10, 4.0, (120, 30))
    b.use("p2", 11, 9.0, (200, 50))
    a.send("UserPromptSubmit", 20, prompt_id="p3", prompt="and the tests?")  # a follow-up turn of the same use
    a.answer(21, "msg-p3", 40, 5)
    a.send("Stop", 22.5, prompt_id="p3", last_assistant_message="ok\nexperiment-metric: found=3")
    a.use("p4", 30, 2.0)  # a second use of the command: the first ends here, neither overwrites the other
    a.send("SessionEnd", 40, reason="other")
    b.send("SessionEnd", 41, reason="other")
    got = sorted(trials(repo, exp), key=lambda t: t["duration_s"])
    assert got == [
        {"duration_s": 2.0, "active_s": 2.0, "turns": 1, "tool_errors": 0, "input_tokens": 100, "output_tokens": 10,
         "completed": 1, "found": 2.0},
        {"duration_s": 4.0, "active_s": 6.5, "turns": 2, "tool_errors": 0, "input_tokens": 160, "output_tokens": 35,
         "completed": 1, "found": 3.0},
        {"duration_s": 9.0, "active_s": 9.0, "turns": 1, "tool_errors": 0, "input_tokens": 200, "output_tokens": 50,
         "completed": 1, "found": 2.0},
    ]  # fmt: skip
    arms = {e["arm"] for e in events(repo, exp) if e["type"] == "trial"}
    assert arms == {"treatment"}
    notes = "".join(json.dumps(e) for e in events(repo, exp))
    for private in ("and the tests?", "aaaa-1", "bbbb-2", "p1", str(tmp_path)):
        assert private not in notes


def test_a_replayed_session_counts_once_and_a_session_without_the_command_records_nothing(tmp_path: Path) -> None:
    repo, exp = make_repo(tmp_path)
    a = Assistant(repo, "cccc-3")
    a.send("SessionStart", 0, source="startup")
    a.use("p1", 5, 3.0)
    a.send("SessionEnd", 10, reason="other")
    a.send("SessionStart", 20, source="resume")  # --resume: the same session id, the same prompt replayed
    a.use("p1", 25, 3.0)
    a.send("SessionEnd", 30, reason="other")
    c = Assistant(repo, "dddd-4")
    c.send("SessionStart", 40, source="startup")
    c.send("UserPromptSubmit", 41, prompt_id="q1", prompt="hello")
    c.send("Stop", 42, prompt_id="q1", last_assistant_message="hi")
    c.send("SessionEnd", 43, reason="other")
    assert [t["duration_s"] for t in trials(repo, exp)] == [3.0]


def test_a_branch_checkout_during_a_use_drops_it_with_an_alert(tmp_path: Path) -> None:
    repo, exp = make_repo(tmp_path)
    a = Assistant(repo, "eeee-5")
    a.use("p1", 0, 1.0)
    checkout(repo, "other", "b")
    a.send("SessionEnd", 5, reason="other")
    got = events(repo, exp)
    assert [e for e in got if e["type"] == "trial" and e.get("source") == "agent"] == []
    assert [e["kind"] for e in got if e["type"] == "alert"] == ["dropped_trial"]


def test_idle_uses_close_lazily_and_an_api_error_is_not_completed(tmp_path: Path) -> None:
    repo, exp = make_repo(tmp_path)
    a, b = Assistant(repo, "ffff-6"), Assistant(repo, "gggg-7")
    a.use("p1", 0, 5.0)  # then the person walks away without closing the session
    b.send("UserPromptSubmit", 1000, prompt_id="q1", prompt="/review_pr 2")
    b.send("UserPromptExpansion", 1000, prompt_id="q1", command_name="review_pr", command_args="2")
    b.send("StopFailure", 1002, prompt_id="q1", error="overloaded")
    assert len(trials(repo, exp)) == 0  # 1000 s idle is not 30 minutes
    b.send("UserPromptSubmit", 1000 + 31 * 60, prompt_id="q2", prompt="still there?")
    got = sorted(trials(repo, exp), key=lambda t: t["completed"])
    assert [(t["completed"], t["duration_s"]) for t in got] == [(0, 2.0), (1, 5.0)]


def test_an_unreadable_transcript_is_no_trial_never_a_zero(tmp_path: Path) -> None:
    repo, exp = make_repo(tmp_path)
    a = Assistant(repo, "hhhh-8")
    a.use("p1", 0, 2.0)
    with a.transcript.open("a") as f:  # a response whose usage this version of the format does not have
        f.write(json.dumps({"type": "assistant", "timestamp": at(1.5)[:-4] + "Z",
                            "message": {"id": "m2", "usage": {"input_tokens": "many"}}}) + "\n")  # fmt: skip
    a.send("SessionEnd", 3, reason="other")
    got = events(repo, exp)
    assert [e for e in got if e["type"] == "trial" and e.get("source") == "agent"] == []
    assert [e["kind"] for e in got if e["type"] == "alert"] == ["unreadable_transcript"]


def test_rate_blocks_the_prompt_and_records_the_last_use(tmp_path: Path) -> None:
    repo, exp = make_repo(tmp_path)
    a = Assistant(repo, "iiii-9")
    proc = a.send("UserPromptSubmit", 0, prompt_id="r0", prompt="/rate 4")
    assert json.loads(proc.stdout) == {"decision": "block", "reason": "experiment-hook: nothing recorded; no use "
                                       "of an experimented command to rate in this worktree yet"}  # fmt: skip
    a.use("p1", 1, 1.0)
    proc = a.send("UserPromptSubmit", 5, prompt_id="r1", prompt="/rate 4")
    assert json.loads(proc.stdout)["reason"] == f"experiment-hook: recorded user_satisfaction=4 for the last use of " \
                                                f"review_pr ({exp})"  # fmt: skip
    bad = a.send("UserPromptSubmit", 6, prompt_id="r2", prompt="/rate 9").stdout
    assert "1 (poor) to 5" in json.loads(bad)["reason"]
    out = run_cli(repo, "rate", "2", exp).stdout
    assert out == f"Recorded user_satisfaction=2 for the last use of review_pr ({exp}).\n"
    rated = [e for e in events(repo, exp) if e["type"] == "trial" and e["metric"] == "user_satisfaction"]
    assert sorted(e["value"] for e in rated) == [2, 4] and {e["arm"] for e in rated} == {"treatment"}
    assert run_cli(repo, "rate", "6", check=False).returncode == 2


def test_where_nothing_runs_the_handler_costs_nothing_and_says_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    git(plain, "init", "-q")
    a = Assistant(plain, "jjjj-1")
    for event in ("SessionStart", "UserPromptSubmit", "UserPromptExpansion", "Stop", "SessionEnd"):
        assert a.send(event, 0, prompt_id="p1", prompt="/rate 3", command_name="review_pr").stdout == ""
    assert not (plain / ".git" / "experiment-hook").exists()
    outside = Assistant(tmp_path, "kkkk-2")  # not a repository at all
    assert outside.send("UserPromptExpansion", 0, prompt_id="p1", command_name="x").stdout == ""
    repo, exp = make_repo(tmp_path / "broken")
    (repo / "experiments.yaml").write_text("experiments: [\n")
    b = Assistant(repo, "llll-3")
    b.use("p1", 0, 1.0)
    b.send("SessionEnd", 2, reason="other")
    (repo / "experiments.yaml").unlink()
    git(repo, "checkout", "--", "experiments.yaml")
    assert [e for e in events(repo, exp) if e["type"] == "trial"] == []


def test_a_plugin_command_kept_in_the_repository_is_its_namespaced_name(tmp_path: Path) -> None:
    plugin = "plugins/psd-claude-workflow"
    (tmp_path / "repo" / plugin / ".claude-plugin").mkdir(parents=True)
    (tmp_path / "repo" / plugin / ".claude-plugin" / "plugin.json").write_text('{"name": "psd"}')
    repo, exp = make_repo(tmp_path, command=f"{plugin}/commands/review_pr.md")
    a = Assistant(repo, "mmmm-4")
    a.use("p1", 0, 1.0, command="review_pr")  # a project command of that name is another file: not a use
    a.use("p2", 5, 2.0, command="psd:review_pr")
    a.send("SessionEnd", 10, reason="other")
    assert [t["duration_s"] for t in trials(repo, exp)] == [2.0]


def test_commits_record_no_trial_for_an_assistant_experiment(tmp_path: Path) -> None:
    repo, exp = make_repo(tmp_path)
    (repo / "work.txt").write_text("x\n")
    git(repo, "add", "work.txt")
    git(repo, "commit", "-qm", "work")
    run_cli(repo, "wait")
    assert [e for e in events(repo, exp) if e["type"] == "trial"] == []


# ---- .claude/settings.local.json ------------------------------------------------------------------------
USER_FILE = '{\n    "model": "opus",\n    "hooks": {\n        "Stop": [{"hooks": [{"type": "command", ' \
            '"command": "say done"}]}]\n    }\n}\n'  # fmt: skip


def test_install_keeps_the_users_settings_and_uninstall_gives_them_back(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path)
    assert "removed" in run_cli(repo, "uninstall", "--agent", "claude").stdout
    assert not (repo / ".claude" / "settings.local.json").exists()  # we had created it: gone again
    (repo / SETTINGS).write_text(USER_FILE)
    for _ in range(2):  # idempotent
        run_cli(repo, "install", "--agent", "claude")
    data = json.loads((repo / SETTINGS).read_text())
    assert data["model"] == "opus"
    assert data["hooks"]["Stop"][0] == {"hooks": [{"type": "command", "command": "say done"}]}
    assert len(data["hooks"]["Stop"]) == 2 and all(len(v) == 1 for k, v in data["hooks"].items() if k != "Stop")
    ours = data["hooks"]["SessionEnd"][0]["hooks"][0]["command"]
    assert ours.split()[-1] == "#experiment-hook:agent-claude" and f" {sys.executable} " in f" {ours} "
    run_cli(repo, "uninstall")
    assert (repo / SETTINGS).read_text() == USER_FILE  # byte for byte


def test_the_settings_file_we_create_never_shows_in_git_status_and_uninstall_takes_the_exclusion_back(
        tmp_path: Path) -> None:  # fmt: skip
    repo, _ = make_repo(tmp_path)  # make_repo ran `install --agent claude`
    exclude = repo / ".git" / "info" / "exclude"
    assert (repo / SETTINGS).exists() and git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert exclude.read_text().count(".claude/settings.local.json") == 1
    run_cli(repo, "install", "--agent", "claude")
    assert exclude.read_text().count(".claude/settings.local.json") == 1  # idempotent
    run_cli(repo, "uninstall", "--agent", "claude")
    assert ".claude" not in exclude.read_text()  # the exclusion was ours: gone with our file
    (repo / SETTINGS).write_text(USER_FILE)  # the user's own untracked file stays visible to git, as they had it
    assert "settings.local.json" in git(repo, "status", "--porcelain", "--untracked-files=all")


def test_a_handler_whose_interpreter_is_gone_still_exits_0_and_says_nothing(tmp_path: Path) -> None:
    """Claude Code blocks a prompt on a hook's exit code 2: a deleted venv must not do that to the user."""
    repo, _ = make_repo(tmp_path)
    ours = json.loads((repo / SETTINGS).read_text())["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]
    gone = ours.replace(sys.executable, str(tmp_path / "deleted-venv" / "bin" / "python"))
    payload = json.dumps({"hook_event_name": "UserPromptSubmit", "session_id": "s", "prompt": "hi", "cwd": str(repo)})
    for command in (ours, gone):
        proc = subprocess.run(["sh", "-c", command], cwd=repo, input=payload, capture_output=True, text=True)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), command


def test_uninstall_after_the_user_edited_the_file_removes_only_ours(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path)
    data = json.loads((repo / SETTINGS).read_text())
    data["env"] = {"MINE": "1"}
    data["hooks"]["Stop"].insert(0, {"hooks": [{"type": "command", "command": "say done"}]})
    (repo / SETTINGS).write_text(json.dumps(data))
    assert "updated" in run_cli(repo, "uninstall", "--agent", "claude").stdout
    assert json.loads((repo / SETTINGS).read_text()) == {
        "env": {"MINE": "1"}, "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]}}


@pytest.mark.parametrize("text", ["{not json", "[]", '{"hooks": []}'])
def test_a_broken_settings_file_is_one_error_line_and_left_as_it_was(tmp_path: Path, text: str) -> None:
    repo, _ = make_repo(tmp_path)
    run_cli(repo, "uninstall", "--agent", "claude")
    (repo / SETTINGS).parent.mkdir(exist_ok=True)
    (repo / SETTINGS).write_text(text)
    proc = run_cli(repo, "install", "--agent", "claude", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "settings.local.json" in proc.stderr
    assert (repo / SETTINGS).read_text() == text


def test_create_agent_checks_the_file_is_the_assistants(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path)
    (repo / "notes.md").write_text("x\n")
    git(repo, "add", "notes.md")
    git(repo, "commit", "-qm", "notes")
    proc = run_cli(repo, "create", "--agent", "--name", "n", "--file", "notes.md", check=False)
    assert proc.returncode == 2 and "not a command, skill or instruction file" in proc.stderr
    proc = run_cli(repo, "create", "--name", "n", "--file", "notes.md", check=False)
    assert proc.returncode == 2 and "--command or --agent" in proc.stderr


def test_create_agent_guardrails_know_which_way_is_better(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path)
    (repo / "CLAUDE.md").write_text("# notes\n")
    git(repo, "add", "CLAUDE.md")
    git(repo, "commit", "-qm", "notes")
    exp = json.loads(run_cli(repo, "create", "--agent", "--name", "n", "--file", "CLAUDE.md", "--guardrail",
                             "completed", "--guardrail", "output_tokens:20", "--json").stdout)["id"]  # fmt: skip
    from experiment_core.store.spec import load_registry

    got = load_registry(repo).get(exp)
    assert (got.metric.name, got.metric.source, got.metric.command) == ("duration_s", "agent", None)
    assert [(m.name, m.direction, m.max_regression) for m in got.guardrails] == [
        ("completed", "higher", None), ("output_tokens", "lower", 20.0)]
