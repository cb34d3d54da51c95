"""What a person waits on loads neither scipy, numpy nor rich (issue 18).

Every Python process the paths start — the CLI, the hooks git runs, the detached measurement job — is watched by
a ``sitecustomize`` probe on ``PYTHONPATH`` that writes, at exit, its command line and which of the heavy
packages it had loaded. The repository is real (a bare remote, the hooks installed directly, an experiment with
trials in both arms, so that the analysis runs in full: Welch, Fieller, always-valid, Mann-Whitney, blocking by
machine, the sample-ratio test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env, git, make_clones, run_cli

HEAVY = ("scipy", "numpy", "rich")
PROBE = """
import atexit, json, os, sys

def _report():
    heavy = sorted({name.split(".")[0] for name in sys.modules} & {"scipy", "numpy", "rich"})
    with open(os.environ["IMPORT_PROBE"], "a") as f:
        f.write(json.dumps({"argv": sys.argv, "heavy": heavy}) + "\\n")

atexit.register(_report)
"""


def _setup(tmp_path: Path) -> tuple[Path, Path, str, dict[str, str]]:
    _, (repo, other, _third) = make_clones(tmp_path, 3)
    out = run_cli(repo, "create", "--name", "t", "--file", "tool.cfg", "--command", "true", "--json").stdout
    exp = str(json.loads(out)["id"])
    (repo / ".experiments" / exp / "tool.cfg").write_text("workers = 8\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "experiment")
    git(repo, "push", "-q", "--no-verify", "origin", "main")
    run_cli(repo, "install")
    for i in range(12):  # units in both arms, on two machines: the full analysis runs
        arm = ("control", "treatment")[i % 2]
        for value in (1.0 + 0.01 * i, 1.05 + 0.01 * i):
            run_cli(repo, "record", exp, "--arm", arm, "--value", str(value), "--unit", f"u{i}",
                    "--machine", f"m{i % 3 // 2}")  # fmt: skip
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    env = {"PYTHONPATH": f"{probe}{os.pathsep}{cli_env()['PYTHONPATH']}",
           "IMPORT_PROBE": str(tmp_path / "imports.jsonl")}  # fmt: skip
    return repo, other, exp, env


def _loaded(path: Path) -> list[tuple[str, list[str]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return [(" ".join(r["argv"]), r["heavy"]) for r in rows]


def test_every_path_a_person_waits_on_loads_no_scipy_numpy_or_rich(tmp_path: Path) -> None:
    repo, other, exp, env = _setup(tmp_path)
    probe = Path(env["IMPORT_PROBE"])
    full = cli_env(env)
    commands = [("status",), ("status", "--json"), ("analyze", exp, "--json"), ("--auto", "--dry-run"),
                ("record", exp, "--arm", "control", "--value", "1.5", "--unit", "u99"), ("sync",)]  # fmt: skip
    for args in commands:
        run_cli(repo, *args, env=env)
        seen = _loaded(probe)
        assert seen, f"the probe did not see {args}"
        assert all(not heavy for _, heavy in seen), (args, seen)
    hooks = [["git", "checkout", "-q", "-b", "feature"], ["git", "commit", "-q", "--allow-empty", "-m", "trial"],
             ["git", "pull", "-q", "--no-rebase", "origin", "main"], ["git", "push", "-q", "origin", "feature"]]
    for cmd in hooks:
        if cmd[1] == "pull":  # a teammate's commit to merge
            git(other, "pull", "-q", "origin", "main")
            git(other, "commit", "-q", "--allow-empty", "-m", "teammate")
            git(other, "push", "-q", "--no-verify", "origin", "main")
        proc = subprocess.run(cmd, cwd=repo, env=full, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        run_cli(repo, "wait", env=env)  # the detached measurement job is done (and probed)
        seen = _loaded(probe)
        assert any("hooks" in argv for argv, _ in seen), f"no hook ran for {cmd}: {seen}"
        assert all(not heavy for _, heavy in seen), (cmd, seen)


def test_status_on_a_terminal_draws_its_table_without_rich(tmp_path: Path) -> None:
    """A person at a terminal (a real pseudo-terminal) gets the verdict, the coloured table and the summary."""
    repo, _, exp, env = _setup(tmp_path)
    leader, follower = os.openpty()
    proc = subprocess.run([sys.executable, "-m", "experiment_core", "status"], cwd=repo, stdout=follower,
                          stderr=subprocess.PIPE, env=cli_env({**env, "TERM": "xterm"}), timeout=60)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0, proc.stderr
    assert "verdict" in text and "change (95 % CI)" in text and exp in text and "\x1b[" in text, text
    assert all(not heavy for _, heavy in _loaded(Path(env["IMPORT_PROBE"])))


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """The probe itself works: a process that imports numpy is reported."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    out = tmp_path / "imports.jsonl"
    env = cli_env({"PYTHONPATH": str(probe), "IMPORT_PROBE": str(out)})
    subprocess.run([sys.executable, "-c", "import numpy"], env=env, check=True)
    assert _loaded(out) == [("-c", ["numpy"])]
