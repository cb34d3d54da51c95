"""What Claude Code waits on per hook event with `experiment-hook install --agent claude`, from one run.

A real repository with a running `metric.source: agent` experiment on `.claude/commands/review_pr.md`, its units
deployed by a branch checkout, and the handler command exactly as `install --agent claude` wrote it into
`.claude/settings.local.json`, run through `sh -c` as Claude Code runs it, with the payloads the CLI sends (shapes
from CLI 2.1.328). One session per round: SessionStart, UserPromptSubmit, UserPromptExpansion (a use opens), Stop,
SessionEnd (the use closes and is written to the ledger). Baseline, interleaved in the same rounds: the same
interpreter started bare (`python -c pass`) through `sh -c`. Also: every event in a repository without experiments.
The package's bytecode is compiled first, as an installed package has it (`PYTHONDONTWRITEBYTECODE` is dropped).

Prints each event's median (ms) and its ratio to the baseline, and the median over all events. Goal: median
≤ 60 ms per event. Usage: `python benchmarks/agent_hook_latency.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hook_latency import env, sh  # noqa: E402  (the same environment and runner as the git hooks' benchmark)

COMMAND = ".claude/commands/review_pr.md"
EVENTS = ("SessionStart", "UserPromptSubmit", "UserPromptExpansion", "Stop", "SessionEnd")


def cli(repo: Path, *args: str) -> str:
    return sh(repo, sys.executable, "-m", "experiment_core", *args)


def new_repo(path: Path, experiment: bool) -> str:
    """The repository; returns the handler's shell command from its settings file."""
    path.mkdir(parents=True)
    sh(path, "git", "init", "-q", "-b", "main")
    (path / COMMAND).parent.mkdir(parents=True)
    (path / COMMAND).write_text("Review $ARGUMENTS.\n")
    sh(path, "git", "add", ".")
    sh(path, "git", "commit", "-q", "-m", "initial")
    if experiment:
        cli(path, "install")
        exp = json.loads(cli(path, "create", "--agent", "--name", "b", "--file", COMMAND, "--json"))["id"]
        (path / ".experiments" / exp / COMMAND).write_text("Review $ARGUMENTS in parallel.\n")
        sh(path, "git", "add", "-A")
        sh(path, "git", "commit", "-q", "-m", "experiment")
        sh(path, "git", "checkout", "-q", "-b", "task", extra={"EXPERIMENT_HOOK_SEED": "treat"})
    cli(path, "install", "--agent", "claude")
    settings = json.loads((path / ".claude" / "settings.local.json").read_text())
    return str(settings["hooks"]["Stop"][0]["hooks"][0]["command"])


def payloads(repo: Path, session: str, transcript: Path) -> list[tuple[str, bytes]]:
    base = {"session_id": session, "transcript_path": str(transcript), "cwd": str(repo)}
    fields = {
        "SessionStart": {"source": "startup"},
        "UserPromptSubmit": {"prompt_id": "p1", "prompt": "/review_pr 42", "permission_mode": "default"},
        "UserPromptExpansion": {"prompt_id": "p1", "expansion_type": "slash_command", "command_name": "review_pr",
                                "command_args": "42", "command_source": "projectSettings", "prompt": "/review_pr 42"},
        "Stop": {"prompt_id": "p1", "stop_hook_active": False, "background_tasks": [],
                 "last_assistant_message": "Reviewed.\nexperiment-metric: issues_caught=2"},
        "SessionEnd": {"prompt_id": "p1", "reason": "other"},
    }  # fmt: skip
    return [(e, json.dumps({**base, "hook_event_name": e, **fields[e]}).encode()) for e in EVENTS]


def timed(command: str, cwd: Path, stdin: bytes) -> float:
    started = time.perf_counter()
    proc = subprocess.run(["sh", "-c", command], cwd=cwd, input=stdin, capture_output=True, env=env())
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or proc.stderr:
        raise SystemExit(f"the handler failed: {proc.stderr.decode()}")
    return elapsed


def transcript_line(session: str) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 0.2))
    return json.dumps({"type": "assistant", "timestamp": stamp, "sessionId": session,
                       "message": {"id": f"msg-{session}", "usage": {"input_tokens": 10, "output_tokens": 3}}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    sh(PROJECT, sys.executable, "-m", "compileall", "-q", "experiment_core", "hooks")  # as `pip install` does
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo, plain = base / "repo", base / "plain"
        handler, plain_handler = new_repo(repo, True), new_repo(plain, False)
        bare = f"{shlex.quote(sys.executable)} -c pass"
        times: dict[str, list[float]] = {e: [] for e in (*EVENTS, "baseline", "no experiments")}
        for i in range(args.rounds):
            session = f"bench-{i}"
            transcript = base / f"{session}.jsonl"
            transcript.write_text(transcript_line(session) + "\n")
            for (event, stdin), (_, plain_stdin) in zip(payloads(repo, session, transcript),
                                                         payloads(plain, session, transcript), strict=True):
                times["baseline"].append(timed(bare, repo, b""))
                times[event].append(timed(handler, repo, stdin))
                times["no experiments"].append(timed(plain_handler, plain, plain_stdin))
        report(times, repo)


def report(times: dict[str, list[float]], repo: Path) -> None:
    base = statistics.median(times["baseline"])
    print(f"bare interpreter (sh -c 'python -c pass'): {base * 1000:.1f} ms median")
    for name, values in times.items():
        if name != "baseline":
            median = statistics.median(values)
            print(f"{name:>20}: {median * 1000:6.1f} ms median  {median / base:5.2f}x baseline")
    every = [v for e in EVENTS for v in times[e]]
    overall = statistics.median(every)
    print(f"median per event (all {len(every)} events): {overall * 1000:.1f} ms = {overall / base:.2f}x baseline; "
          f"goal ≤ 60 ms: {'met' if overall <= 0.060 else 'NOT met'}")  # fmt: skip
    uses = sh(repo, "git", "notes", "--ref=experiments", "list").count("\n")
    left = len(list((repo / ".git" / "experiment-hook" / "agent" / "open").iterdir()))
    print(f"(commits with ledger notes: {uses}; open uses left: {left})")


if __name__ == "__main__":
    main()
