"""Guardrail metrics, alert levels and machine ids end to end: experiments.yaml, `create --guardrail`,
`record --from-csv` (with a machine column), `analyze --json`, `export`, and a real push to a bare remote whose
pre-push hook rolls back a winner that harms a guardrail (issue 11)."""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Callable
from pathlib import Path

from experiment_core.gitio import Git
from experiment_core.measure.machine import machine_id
from tests.conftest import git, make_clones, run_cli
from tests.test_decide_push import push

FAST_BUILD = [40.0, 41.0, 39.5, 40.5, 42.0, 39.0, 40.2, 41.3, 40.8, 39.7, 40.1, 41.6]


def trials_csv(path: Path, *, runtime_factor: float, with_runtime: bool = True, machines: int = 4) -> Path:
    """Primary 40 % faster in treatment; `runtime` (a guardrail) ``runtime_factor`` times control's."""
    rows = ["arm,metric,value,unit,machine"]
    for i, v in enumerate(FAST_BUILD):
        m = f"m{i % machines}"
        rows.append(f"control,time_to_complete,{v},c{i},{m}")
        rows.append(f"treatment,time_to_complete,{0.6 * v + 0.01 * (i % 3)},t{i},{m}")
        if with_runtime:
            rows.append(f"control,runtime,{10 + 0.1 * (i % 5)},c{i},{m}")
            rows.append(f"treatment,runtime,{runtime_factor * (10 + 0.1 * ((i + 2) % 5))},t{i},{m}")
    path.write_text("\n".join(rows) + "\n")
    return path


def analysis(repo: Path, exp: str) -> dict[str, object]:
    return dict(json.loads(run_cli(repo, "analyze", exp, "--json").stdout))


def test_create_guardrail_writes_the_registry_entry(repo: Path, create_exp: Callable[..., str]) -> None:
    exp = create_exp("--guardrail", "runtime:5", "--guardrail", "memory")
    text = (repo / "experiments.yaml").read_text()
    assert "guardrail: true" in text and "max_regression: 5.0" in text
    from experiment_core.store.spec import load_registry

    e = load_registry(repo).get(exp)
    assert [(m.name, m.guardrail, m.max_regression) for m in e.guardrails] == [("runtime", True, 5.0),
                                                                               ("memory", True, None)]  # fmt: skip
    proc = run_cli(repo, "create", "--name", "t", "--file", "build.sh", "--command", "true", "--guardrail", "x:-3",
                   check=False)  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--guardrail x:-3" in proc.stderr


def test_a_guardrail_regression_rolls_back_a_winner_through_record_and_analyze(
    repo: Path, create_exp: Callable[..., str], tmp_path: Path
) -> None:
    exp = create_exp("--guardrail", "runtime:10")
    run_cli(repo, "record", exp, "--from-csv", str(trials_csv(tmp_path / "t.csv", runtime_factor=1.5)))
    d = analysis(repo, exp)
    decision = d["decision"]
    assert isinstance(decision, dict) and decision["action"] == "rollback", decision
    assert decision["reasons"][0].startswith("guardrail runtime is 50 % worse, and at least ")
    assert "beyond its limit of 10 %" in decision["reasons"][0]
    assert d["blocking"] == "machine" and d["blocks"] == 4
    [sec] = d["secondary"]  # type: ignore[misc]
    assert sec["guardrail"]["max_regression"] == 10.0 and sec["blocking"] == "machine"
    report = run_cli(repo, "analyze", exp).stdout
    assert "runtime (guardrail)" in report and "GUARDRAIL FAILS" in report and "no guardrail fails" not in report
    assert "within 4 machines" in report


def test_a_guardrail_with_too_little_data_blocks_promotion_and_a_harmless_one_lets_it_through(
    repo: Path, create_exp: Callable[..., str], tmp_path: Path
) -> None:
    exp = create_exp("--guardrail", "runtime")
    run_cli(repo, "record", exp, "--from-csv", str(trials_csv(tmp_path / "a.csv", runtime_factor=1.0,
                                                              with_runtime=False)))  # fmt: skip
    decision = analysis(repo, exp)["decision"]
    assert isinstance(decision, dict) and decision["action"] == "continue"
    assert "guardrail runtime: too little data yet (n = 0/0)" in decision["reasons"]
    exp2 = create_exp("--guardrail", "runtime", file="build.sh")
    run_cli(repo, "record", exp2, "--from-csv", str(trials_csv(tmp_path / "b.csv", runtime_factor=1.0)))
    decision = analysis(repo, exp2)["decision"]
    assert isinstance(decision, dict) and decision["action"] == "promote"
    assert decision["reasons"][-1].startswith("guardrails hold: runtime ")


def test_alert_levels_raise_alerts(repo: Path, create_exp: Callable[..., str], tmp_path: Path) -> None:
    exp = create_exp()
    text = (repo / "experiments.yaml").read_text()
    text += "    secondary:\n      - name: satisfaction\n        direction: higher\n        alert_below: 0.5\n"
    text += "      - name: runtime\n        alert_above: 1.2x\n"
    (repo / "experiments.yaml").write_text(text)
    run_cli(repo, "record", exp, "--from-csv", str(trials_csv(tmp_path / "t.csv", runtime_factor=1.5)))
    rows = "arm,metric,value\n" + "".join(f"control,satisfaction,0.8\ntreatment,satisfaction,{0.4 + i / 100}\n"
                                          for i in range(4))  # fmt: skip
    (tmp_path / "s.csv").write_text(rows)
    run_cli(repo, "record", exp, "--from-csv", str(tmp_path / "s.csv"))
    decision = analysis(repo, exp)["decision"]
    assert isinstance(decision, dict)
    alerts = decision["alerts"]
    assert any(a.startswith("satisfaction 0.415 in treatment, below 0.5 (alert_below)") for a in alerts), alerts
    assert any(a.startswith("runtime 15.") and "above 1.2x control's" in a for a in alerts), alerts


def test_machine_column_round_trips_through_export(repo: Path, create_exp: Callable[..., str],
                                                   tmp_path: Path) -> None:  # fmt: skip
    exp = create_exp()
    run_cli(repo, "record", exp, "--from-csv", str(trials_csv(tmp_path / "t.csv", runtime_factor=1.0)))
    run_cli(repo, "record", exp, "--arm", "control", "--value", "40", "--machine", "laptop-7")
    out = tmp_path / "out.csv"
    run_cli(repo, "export", exp, "-o", str(out))
    lines = out.read_text().splitlines()
    assert lines[0].split(",")[-1] == "machine" and sum(line.endswith(",laptop-7") for line in lines) == 1
    exp2 = create_exp(file="build.sh")
    run_cli(repo, "record", exp2, "--from-csv", str(out))
    a, b = analysis(repo, exp), analysis(repo, exp2)
    assert (a["blocking"], a["blocks"], a["p_value"]) == (b["blocking"], b["blocks"], b["p_value"])
    proc = run_cli(repo, "record", exp, "--arm", "control", "--value", "1", "--machine", "x" * 65, check=False)
    assert proc.returncode == 2 and "--machine" in proc.stderr


def test_machine_id_is_anonymous_stable_across_clones_and_recorded_by_run(tmp_path: Path) -> None:
    _, (a, b) = make_clones(tmp_path, 2)
    ids = {machine_id(Git(a)), machine_id(Git(b))}
    assert len(ids) == 1
    (mid,) = ids
    assert len(mid) == 16 and socket.gethostname() not in mid and getpass.getuser() not in mid
    assert (a / ".git" / "experiment-hook-machine").exists()  # cached: a measurement job reads one file
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", "-b", "main", str(other))
    (other / "f").write_text("x")
    git(other, "add", "f")
    git(other, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "other root")
    assert machine_id(Git(other)) != mid  # salted by the repository: ids cannot be joined across projects
    out = run_cli(a, "create", "--name", "t", "--file", "tool.cfg", "--command", "true", "--json").stdout
    exp = json.loads(out)["id"]
    git(a, "add", "-A")
    git(a, "commit", "-qm", "experiment")
    run_cli(a, "run", "-e", exp, "-n", "2", "--", "true")
    trials = run_cli(a, "export", exp, "-o", "-", "--format", "jsonl").stdout.splitlines()
    machines = [json.loads(line).get("machine") for line in trials if '"type":"trial"' in line]
    assert len(machines) >= 2 and set(machines) == {mid}
    assert f'"{socket.gethostname()}"' not in "".join(trials) and f'"{getpass.getuser()}"' not in "".join(trials)


def test_push_rolls_back_a_winner_that_harms_a_guardrail(tmp_path: Path) -> None:
    remote, (repo,) = make_clones(tmp_path, 1)
    out = run_cli(repo, "create", "--name", "speed", "--file", "build.sh", "--command", "sh build.sh",
                  "--guardrail", "runtime:10", "--json").stdout  # fmt: skip
    exp = json.loads(out)["id"]
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "experiment")
    git(repo, "push", "-q", "origin", "main")
    run_cli(repo, "install")
    run_cli(repo, "record", exp, "--from-csv", str(trials_csv(tmp_path / "t.csv", runtime_factor=1.5)))
    (repo / "more.txt").write_text("work")
    git(repo, "add", "more.txt")
    git(repo, "commit", "-qm", "more work")
    proc = push(repo)
    assert proc.returncode == 0, proc.stderr
    assert f"rollback {exp}: rolled_back" in proc.stderr and "guardrail runtime is 50 % worse" in proc.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == "more work"  # the pushed branch is not touched
    branch = f"experiment-hook/rollback-{exp}"  # the decision commit: a branch off main, pushed by the hook
    assert git(remote, "log", "-1", "--format=%s", branch).strip() == f"experiment: Rollback {exp}"
    assert "status: rolled_back" in git(remote, "show", f"{branch}:experiments.yaml")
    assert json.loads(run_cli(repo, "status", "--json").stdout)["experiments"][0]["status"] == "rolled_back"
    assert git(repo, "status", "--porcelain") == ""
