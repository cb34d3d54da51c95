"""What post-commit measures: every metric with a command, and never at the cost of a dropped trial; how a
command is timed (directly when the shell would only exec it, else through the shell with its start-up
subtracted), checked against the shell itself."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from experiment_core.measure.timing import (
    DIRECT,
    SHELL,
    TIMEOUT_EXIT,
    cached_shell_startup,
    direct_argv,
    time_command,
)
from tests.conftest import SEED_CONTROL, SEED_TREATMENT, cli_env, git, run_cli

PLAIN_COMMANDS = [
    "sleep 0.02",
    "sh noop.sh",
    "python3 -c 'import os; print(1)'",
    'python3 -c "import sys"  --flag=x  ',
    "make -j4 CFLAGS=-O2 all",
    "\tprog  a\tb",
    "prog '' \"\" x''y \"a b\"c'd e'",
    "./build.sh --out=dist/a,b:c+d@e%f^g",
    "sh -c 'if grep -q '\"'\"'x'\"'\"' f; then :; fi'",  # what shlex.join makes of `run -- sh -c ...`
]
SHELL_COMMANDS = [
    "true", ":", "echo hi", "cd /tmp && ls", "ls *.py", "echo $HOME", 'echo "$HOME"', "a=1 prog", "prog > out",
    "prog | wc", "prog; prog", "prog &", "~/bin/prog", "prog \\ x", 'prog "a\\b"', "prog `date`", "prog # c",
    "prog\nprog", "if true; then :; fi", "", "   ", "prog 'unbalanced", "{ prog; }", "prog [ab]", "prog (x)",
]  # fmt: skip


@pytest.mark.parametrize("command", PLAIN_COMMANDS)
def test_a_plain_command_is_split_exactly_as_the_shell_splits_it(command: str) -> None:
    """The oracle is dash: the same words handed to printf come back one per NUL."""
    argv = direct_argv(command)
    assert argv is not None
    shell = subprocess.run(["sh", "-c", "printf '%s\\0' " + command], capture_output=True, check=True).stdout
    assert argv == shell.decode().split("\0")[:-1]


@pytest.mark.parametrize("command", SHELL_COMMANDS)
def test_shell_syntax_and_builtins_go_through_the_shell(command: str) -> None:
    assert direct_argv(command) is None


def test_time_command_keeps_exit_code_and_output_both_ways(tmp_path: Path) -> None:
    direct = time_command("sh -c 'echo out; echo err >&2; exit 3'", tmp_path, 10.0, lambda: 0.0)
    assert (direct.timing, direct.exit_code, direct.startup) == (DIRECT, 3, 0.0)
    assert sorted(direct.output.split()) == ["err", "out"]
    shell = time_command("echo $((6 * 7)) > answer; exit 4", tmp_path, 10.0, lambda: 0.25)
    assert (shell.timing, shell.exit_code, shell.startup) == (SHELL, 4, 0.25)
    assert (tmp_path / "answer").read_text() == "42\n"  # the shell ran it, in cwd
    missing = time_command("no-such-program-here --x", tmp_path, 10.0, lambda: 0.0)
    assert missing.timing == SHELL and missing.exit_code == 127 and "not found" in missing.output


def test_the_timed_command_gets_default_signal_dispositions_not_pythons(tmp_path: Path) -> None:
    """Python ignores SIGPIPE for itself; a timed `producer | head` must die of SIGPIPE as in a terminal."""
    for command in ("grep SigIgn /proc/self/status", "grep SigIgn /proc/self/status | cat"):
        m = time_command(command, tmp_path, 10.0, lambda: 0.0)
        ignored = int(m.output.split()[-1], 16)
        assert m.exit_code == 0 and not ignored & (1 << (signal.SIGPIPE - 1)), m.output


def test_the_shell_start_up_is_subtracted_never_below_zero(tmp_path: Path) -> None:
    """A start-up figure larger than the whole run leaves 0 (as hyperfine clamps), proving it is subtracted."""
    assert time_command(":", tmp_path, 10.0, lambda: 0.9).seconds == 0.0
    assert time_command("sh -c :", tmp_path, 10.0, lambda: 0.9).seconds > 0.0  # direct: nothing subtracted


def test_a_timeout_kills_the_command_even_when_a_child_keeps_its_output(tmp_path: Path) -> None:
    start = time.monotonic()
    m = time_command("sh -c 'sleep 20 & sleep 20'", tmp_path, 0.3, lambda: 0.0)
    assert m.exit_code == TIMEOUT_EXIT and "timed out after 0.3 s" in m.output
    assert time.monotonic() - start < 10  # not waiting for the orphan's end of output (v0.1 hung 20 s here)


def test_the_start_up_cache_is_reused_while_fresh_and_remeasured_otherwise(tmp_path: Path) -> None:
    cache = tmp_path / "shell-startup"
    cache.write_text(f"0.000123 {time.time()}\n")
    assert cached_shell_startup(tmp_path, cache)() == 0.000123  # a measurement never gives exactly this
    for stale in (f"0.000123 {time.time() - 7200}\n", "garbage\n", "0.000123 1e30\n", "5 1\n"):
        cache.write_text(stale)
        get = cached_shell_startup(tmp_path, cache)
        value = get()
        assert value != 0.000123 and 0 < value < 1
        assert get() == value  # measured once
        seconds, at = map(float, cache.read_text().split())
        assert seconds == value and abs(at - time.time()) < 60
    assert 0 < cached_shell_startup(tmp_path, tmp_path / "missing-dir" / "f")() < 1  # unwritable: measured anyway


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
    from experiment_core.gitio import Git
    from experiment_core.store import ledger

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
    from experiment_core.gitio import Git
    from experiment_core.store import ledger

    trials = [e for e in ledger.read(Git(repo)).events if e["type"] == "trial" and e["exp"] == exp]
    by_metric = {t["metric"]: t for t in trials}
    assert set(by_metric) == {"time_to_complete", "lint_time", "time_to_commit"}
    assert by_metric["lint_time"]["value"] >= 0.05
    assert by_metric["lint_time"]["timing"] == "direct" and "startup" not in by_metric["lint_time"]
    assert "timing" not in by_metric["time_to_commit"]  # not a timed command
    assert len({t["unit"] for t in trials}) == 1


def test_post_commit_subtracts_the_cached_shell_start_up_and_analyze_says_so(repo: Path) -> None:
    """A command that needs the shell: post-commit subtracts the start-up `run` left in the state dir (here a
    planted figure larger than the run, so the trial is 0), records how, and `analyze` says it."""
    exp = json.loads(run_cli(repo, "create", "--name", "t", "--file", "build.sh", "--command", ": builtin",
                             "--json").stdout)["id"]  # fmt: skip
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "experiment")
    run_cli(repo, "install")
    state = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-path", "experiment-hook").strip())
    subprocess.run(["git", "checkout", "-q", "-b", "t"], cwd=repo, check=True, env=cli_env())
    (state / "shell-startup").write_text(f"0.9 {time.time()}\n")
    git(repo, "commit", "-q", "--allow-empty", "-m", "work")
    run_cli(repo, "wait")
    from experiment_core.gitio import Git
    from experiment_core.store import ledger

    trials = [e for e in ledger.read(Git(repo)).events if e["type"] == "trial" and e["metric"] == "time_to_complete"]
    assert [(t["timing"], t["startup"], t["value"]) for t in trials] == [("shell", 0.9, 0.0)]
    analysis = json.loads(run_cli(repo, "analyze", exp, "--json").stdout)
    assert analysis["timing"]["trials"] == {"direct": 0, "shell": 1, "unknown": 0}
    assert analysis["timing"]["shell_startup_ms"] == pytest.approx(900.0)
    assert "**Timing**: shell, start-up subtracted (900.00 ms)" in run_cli(repo, "analyze", exp).stdout
