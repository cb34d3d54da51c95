"""experiments.yaml: round-trip writes keep comments; each bad input is one line, exit 2, nothing changed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from experiment_core.errors import UserError
from experiment_core.store.spec import load_registry, parse_registry, set_status
from tests.conftest import run_cli, snapshot

COMMENTED = """\
# Our experiments. Keep this comment!
settings:
  sync_on_push: true   # inline comment on a setting
experiments:
  - id: exp-hand-made       # written by hand
    name: 'single quoted'
    hypothesis: "double quoted"
    status: running
    files:
      tool.cfg: .experiments/exp-hand-made/tool.cfg
    metric:
      name: build_time
      command: sh build.sh
    sample_size: 12   # more than the default
"""


def test_defaults_are_the_seeds(repo: Path) -> None:
    reg = parse_registry(repo, {"experiments": [{"id": "e1", "files": {"tool.cfg": ".experiments/e1/tool.cfg"}}]})
    exp = reg.get("e1")
    assert (exp.targets.improvement_threshold, exp.targets.max_regression, exp.targets.alpha) == (15, 10, 0.05)
    assert (exp.sample_size, exp.max_duration_days, exp.auto_promote, exp.auto_rollback) == (10, 14, True, True)
    assert exp.metric.name == "time_to_complete" and exp.metric.direction == "lower"
    assert exp.analysis == "sequential" and exp.status == "running"


def test_round_trip_keeps_comments_order_and_quotes(repo: Path, create_exp: Callable[..., str]) -> None:
    (repo / "experiments.yaml").write_text(COMMENTED)
    new_id = create_exp(file="build.sh")
    text = (repo / "experiments.yaml").read_text()
    assert text.startswith(COMMENTED), text  # the user's part is byte-for-byte intact
    assert f"id: {new_id}" in text
    set_status(repo, "exp-hand-made", "promoted")
    text = (repo / "experiments.yaml").read_text()
    assert "# Our experiments. Keep this comment!" in text
    assert "# inline comment on a setting" in text
    assert "sample_size: 12   # more than the default" in text
    assert "name: 'single quoted'" in text and 'hypothesis: "double quoted"' in text
    assert "status: promoted" in text
    assert load_registry(repo).get("exp-hand-made").status == "promoted"
    assert load_registry(repo).get(new_id).status == "running"


def test_cache_is_used_and_invalidated(repo: Path, tmp_path: Path) -> None:
    (repo / "experiments.yaml").write_text(COMMENTED)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert load_registry(repo, cache).get("exp-hand-made").sample_size == 12
    assert json.loads((cache / "registry-cache.json").read_text())["data"]["experiments"][0]["sample_size"] == 12
    (repo / "experiments.yaml").write_text(COMMENTED.replace("sample_size: 12", "sample_size: 30"))
    assert load_registry(repo, cache).get("exp-hand-made").sample_size == 30


def _entry(**over: object) -> str:
    base = {"id": "exp-x", "files": {"tool.cfg": ".experiments/exp-x/tool.cfg"}}
    base.update(over)
    return json.dumps({"experiments": [base]})  # JSON is YAML


BAD_REGISTRIES = [
    ("broken yaml", "experiments: [\n  - id: x\n   files: {", "broken YAML"),
    ("conflict markers", "experiments:\n<<<<<<< HEAD\n  - id: a\n=======\n  - id: b\n>>>>>>> other\n", "conflict"),
    ("unknown top key", "experiment: []\n", "unknown key"),
    ("unknown exp key", _entry(sample_sise=3), "did you mean 'sample_size'"),
    ("mistyped number", _entry(sample_size="ten"), "sample_size"),
    ("bad direction", _entry(metric={"name": "t", "direction": "faster"}), "direction"),
    ("bad status", _entry(status="done"), "status"),
    ("bool as string", _entry(auto_promote="yes"), "auto_promote"),
    ("alpha out of range", _entry(targets={"alpha": 2}), "alpha"),
    ("absolute path", _entry(files={"/etc/passwd": ".experiments/x"}), "absolute"),
    ("dotdot path", _entry(files={"../outside": ".experiments/x"}), "'..'"),
    ("under .git", _entry(files={".git/config": ".experiments/x"}), ".git"),
    ("symlink escape", _entry(files={"link/passwd": ".experiments/x"}), "symlink"),
    ("not utf8", b"experiments: [\xff\xfe]\n", "UTF-8"),
    ("unknown metric key", _entry(secondary=[{"name": "runtime", "guardrial": True}]), "did you mean 'guardrail'"),
    ("guardrail on primary", _entry(metric={"name": "t", "guardrail": True}), "primary metric cannot be a guardrail"),
    ("bad alert level", _entry(secondary=[{"name": "s", "alert_below": "half"}]), "alert_below"),
    ("negative guardrail limit", _entry(secondary=[{"name": "r", "guardrail": True, "max_regression": -5}]),
     "max_regression"),
    ("bad block_by", _entry(block_by="desk"), "block_by"),
    ("bad decision_commits", "settings:\n  decision_commits: feature\nexperiments: []\n", "decision_commits"),
    ("bad push_options", "settings:\n  push_options: {a: 1}\nexperiments: []\n", "push_options"),
    ("bad base_branch", "settings:\n  base_branch: ../main\nexperiments: []\n", "base_branch"),
]


@pytest.mark.parametrize(("case", "content", "needle"), BAD_REGISTRIES, ids=[c[0] for c in BAD_REGISTRIES])
def test_bad_registry_is_one_line_exit_2_nothing_changed(repo: Path, case: str, content: str | bytes,
                                                         needle: str) -> None:  # fmt: skip
    os.symlink("/etc", repo / "link")
    path = repo / "experiments.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(repo)
    for args in (["status"], ["create", "--name", "n", "--file", "build.sh", "--command", "true"], ["sync"]):
        proc = run_cli(repo, *args, check=False)
        assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "experiments.yaml" in lines[0] and needle in lines[0], lines[0]
        assert "Traceback" not in proc.stderr
        assert snapshot(repo) == before


BAD_ARGS = [
    ("outside work tree", ["create", "--name", "n", "--file", "../x", "--command", "true"], "'..'"),
    ("absolute", ["create", "--name", "n", "--file", "/etc/hosts", "--command", "true"], "absolute"),
    ("under .git", ["create", "--name", "n", "--file", ".git/HEAD", "--command", "true"], ".git"),
    ("symlink leaving", ["create", "--name", "n", "--file", "link/hosts", "--command", "true"], "symlink"),
    ("missing file", ["create", "--name", "n", "--file", "nope.txt", "--command", "true"], "no such file"),
    ("untracked", ["create", "--name", "n", "--file", "untracked.txt", "--command", "true"], "not tracked"),
    ("unknown experiment", ["analyze", "exp-nope"], "unknown experiment"),
    ("record unknown", ["record", "exp-nope", "--arm", "control", "--value", "1"], "unknown experiment"),
]


@pytest.mark.parametrize(("case", "args", "needle"), BAD_ARGS, ids=[c[0] for c in BAD_ARGS])
def test_bad_arguments(repo: Path, case: str, args: list[str], needle: str) -> None:
    os.symlink("/etc", repo / "link")
    (repo / "untracked.txt").write_text("x")
    before = snapshot(repo)
    proc = run_cli(repo, *args, check=False)
    assert proc.returncode == 2, (case, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr
    assert snapshot(repo) == before


def test_non_numeric_value_refused(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp()
    before = snapshot(repo)
    for value in ("fast", "nan", "inf"):
        proc = run_cli(repo, "record", exp, "--arm", "control", "--value", value, check=False)
        assert proc.returncode == 2 and "--value" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert snapshot(repo) == before


def test_user_error_line_format() -> None:
    err = UserError("experiments.yaml: experiments[0].x", "unknown key", "remove it")
    assert err.line() == "experiments.yaml: experiments[0].x: unknown key — remove it"


def test_decision_settings(repo: Path) -> None:
    default = parse_registry(repo, {"experiments": []}).settings
    assert (default.decision_commits, default.base_branch, default.push_options) == ("branch", None, ())
    got = parse_registry(repo, {"settings": {"decision_commits": "current", "base_branch": "trunk",
                                             "push_options": "merge_request.create"}}).settings  # fmt: skip
    assert (got.decision_commits, got.base_branch, got.push_options) == ("current", "trunk", ("merge_request.create",))
