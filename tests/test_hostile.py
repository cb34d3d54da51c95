"""Hostile and broken input, one row per case. Ledger data arrives through a real remote: a hostile clone pushes
it, the victim syncs. Each case is skipped and counted, or refused with one line and exit code 2; never a
traceback, never a changed file or ref (beyond the ledger merge itself). Nothing from the ledger reaches a shell."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiment_core.gitio import Git
from experiment_core.store import ledger, sync
from tests.conftest import PROJECT, cli_env, git, make_clones, run_cli, snapshot
from tests.test_index import assert_index_equals_notes

EXP = "exp-real"
REGISTRY = textwrap.dedent(
    f"""\
    experiments:
      - id: {EXP}
        name: real
        created: '2026-11-24T10:00:00.000000Z'  # decide.py needs it (a registry without it crashes status)
        files:
          tool.cfg: .experiments/{EXP}/tool.cfg
        metric:
          name: t
          command: sh build.sh
    """
)
TS = "2026-11-24T10:00:00.000000Z"


def line(**over: object) -> bytes:
    """A trial line for the real experiment, with fields replaced (None removes one)."""
    event: dict[str, object] = {"v": 1, "id": "h" + os.urandom(6).hex(), "type": "trial", "exp": EXP, "ts": TS,
                                "arm": "control", "metric": "t", "value": 1.0, "unit": "u1"}  # fmt: skip
    for key, value in over.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event, allow_nan=True).encode()


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "notes": garbage in the remote's notes; "ref": the remote's notes ref itself; "registry": yaml
    payload: bytes = b""
    skipped: int = 0  # notes: lines the victim must skip and count
    unknown: int = 0  # notes: valid events for experiments the registry lacks (ignored, counted)
    needle: str = ""  # ref / registry: what the one error line must say


CASES = [
    Case("non-JSON line", "notes", b"this is not json\n{oops\n", skipped=2),
    Case("JSON but not an object", "notes", b'[1, 2, 3]\n"text"\n42\nnull\n', skipped=4),
    Case("value is a string", "notes", line(value="12") + b"\n", skipped=1),
    Case("value is a bool", "notes", line(value=True) + b"\n", skipped=1),
    Case("exp is a number", "notes", line(exp=7) + b"\n", skipped=1),
    Case("missing field", "notes", line(arm=None) + b"\n", skipped=1),
    Case("wrong schema version", "notes", line(v=99) + b"\n", skipped=1),
    Case("NaN value", "notes", line(value=float("nan")) + b"\n", skipped=1),
    Case("Infinity value", "notes", line(value=float("inf")) + b"\n", skipped=1),
    Case("overflowing number", "notes", line(value=1).replace(b'"value": 1', b'"value": 1e999') + b"\n", skipped=1),
    Case("huge line", "notes", line(unit="x" * 2_000_000) + b"\n", skipped=1),
    Case("deep nesting", "notes", b"[" * 200_000 + b"\n" + b'{"a":' * 100_000 + b"\n", skipped=2),
    Case("non-UTF-8 bytes", "notes", b'{"v":1,"id":"\xff\xfe","type":"trial"}\n\xc3\x28\n', skipped=2),
    Case("unknown event type", "notes", line(type="launch_missiles") + b"\n", skipped=1),
    Case("path-like experiment id", "notes", line(exp="../../etc/passwd") + b"\n", skipped=1),
    Case("conflict markers in notes", "notes", b"<<<<<<< ours\n=======\n>>>>>>> theirs\n", skipped=3),
    Case("events for an unknown experiment", "notes", line(exp="exp-ghost") + b"\n" + line(exp="exp-other") + b"\n",
         unknown=2),
    Case("shell text in fields", "notes", line(unit="$(touch PWNED)", command="touch PWNED") + b"\n"),
    Case("notes ref is a blob", "ref", b"blob", needle="not a notes commit"),
    Case("notes ref is a tree", "ref", b"tree", needle="not a notes commit"),
    Case("conflict markers in experiments.yaml", "registry",
         REGISTRY.replace("    name: real\n", "<<<<<<< HEAD\n    name: real\n=======\n    name: x\n>>>>>>> o\n"
                          ).encode(), needle="conflict"),
    Case("target path with ..", "registry", REGISTRY.replace("tool.cfg:", "../tool.cfg:").encode(), needle="'..'"),
    Case("absolute target path", "registry", REGISTRY.replace("tool.cfg:", "/etc/passwd:").encode(),
         needle="absolute"),
    Case("symlink leaving the tree", "registry", REGISTRY.replace("tool.cfg:", "link/passwd:").encode(),
         needle="symlink"),
]


def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A remote, a victim with a real experiment and two good trials, and a hostile clone up to date."""
    remote, (victim, hostile) = make_clones(tmp_path, 2)
    (victim / "experiments.yaml").write_text(REGISTRY)
    (victim / ".experiments" / EXP).mkdir(parents=True)
    (victim / ".experiments" / EXP / "tool.cfg").write_text("workers = 4\n")
    git(victim, "add", ".")
    git(victim, "commit", "-qm", "experiment")
    git(victim, "push", "-q", "origin", "main")
    ledger.append(Git(victim), [ledger.make_event("trial", EXP, arm="control", metric="t", value=v, unit=f"u{v}")
                                for v in (1.0, 2.0)])  # fmt: skip
    sync.sync(Git(victim), "origin")
    git(hostile, "pull", "-q", "origin", "main")
    sync.sync(Git(hostile), "origin")
    os.symlink("/etc", victim / "link")
    return remote, victim, hostile


def push_hostile_notes(hostile: Path, payload: bytes) -> None:
    """What a hostile clone can do with plain git: write any bytes as a note and push the notes ref."""
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=hostile, input=payload, capture_output=True,
                          check=True).stdout.decode().strip()  # fmt: skip
    git(hostile, "notes", "--ref=experiments", "append", "-C", blob, "HEAD")
    git(hostile, "push", "-q", "--no-verify", "origin", "refs/notes/experiments")


def force_remote_notes_ref(hostile: Path, kind: bytes) -> None:
    obj = git(hostile, "rev-parse", "HEAD^{tree}").strip() if kind == b"tree" else \
        subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=hostile, input=b"junk\n", capture_output=True,
                       check=True).stdout.decode().strip()  # fmt: skip
    git(hostile, "push", "-q", "--no-verify", "--force", "origin", f"{obj}:refs/notes/experiments")


def non_ledger_state(repo: Path) -> dict[str, str]:
    state = snapshot(repo)
    state["<refs>"] = "\n".join(r for r in state["<refs>"].splitlines() if " refs/notes/" not in f" {r.split()[0]}")
    return state


def one_line_exit_2(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    _, victim, hostile = world(tmp_path)
    good_before = len(ledger.read(Git(victim), cache=False).events)
    if case.kind == "notes":
        push_hostile_notes(hostile, case.payload)
        before = non_ledger_state(victim)
        proc = run_cli(victim, "sync", "--json")
        health = json.loads(proc.stdout)["ledger"]
        assert (health["skipped_lines"], health["unknown_experiment_events"]) == (case.skipped, case.unknown)
        assert health["events"] == good_before + case.unknown + (case.name == "shell text in fields")
        status = run_cli(victim, "status", "--json")
        assert "Traceback" not in status.stderr
        assert_index_equals_notes(Git(victim))  # what the index made of them is what a full re-read makes
        data = json.loads(status.stdout)
        assert data["summary"]["skipped_events"] == case.skipped
        row = data["experiments"][0]
        extra = 1 if case.name == "shell text in fields" else 0  # a valid trial, its text is only data
        assert row["trials"]["control"] == 2 + extra  # the unknown experiments' events are not counted here
        assert non_ledger_state(victim) == before  # the merge touched the ledger only
        assert not (victim / "PWNED").exists()
        return
    if case.kind == "ref":
        force_remote_notes_ref(hostile, case.payload)
        before = snapshot(victim)
        one_line_exit_2(run_cli(victim, "sync", check=False), case.needle)
        assert snapshot(victim) == before  # side ref restored, local ledger untouched
        assert len(ledger.read(Git(victim), cache=False).events) == good_before
        return
    assert case.kind == "registry"
    (victim / "experiments.yaml").write_bytes(case.payload)  # a hand edit, or a pull of someone's broken commit
    before = snapshot(victim)
    for args in (["status"], ["sync"], ["record", EXP, "--arm", "control", "--value", "1"], ["analyze", EXP]):
        proc = run_cli(victim, *args, check=False)
        one_line_exit_2(proc, case.needle)
        assert "experiments.yaml" in proc.stderr
        assert snapshot(victim) == before, args


AUDIT = textwrap.dedent(
    """
    import os, sys
    _log = os.environ["EH_AUDIT_LOG"]
    def _hook(event, args):
        if event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"):
            with open(_log, "a") as f:
                f.write(repr((event, args[:2])) + "\\n")
    sys.addaudithook(_hook)
    """
)


def test_nothing_from_the_ledger_reaches_a_shell(tmp_path: Path) -> None:
    """Every process our commands start is logged by an audit hook; hostile ledger text never appears in one."""
    _, victim, hostile = world(tmp_path)
    marker = "PWNED-7f3a"
    payload = b"\n".join([
        line(unit=f"$(touch {marker})", command=f"touch {marker}", metric_command=f"; touch {marker}"),
        line(type="decision", action="promote", reasons=[f"`touch {marker}`"]),
        line(type="alert", kind=f"|touch {marker}", message=f"$(touch {marker})"),
        line(type="created", files={"tool.cfg": f"$(touch {marker})"}, backups={"tool.cfg": f"{marker}"}),
        line(exp=f"{marker}", arm="treatment"),
    ]) + b"\n"  # fmt: skip
    push_hostile_notes(hostile, payload)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "audit.log"
    env = {"EH_AUDIT_LOG": str(log), "PYTHONPATH": f"{PROJECT}{os.pathsep}{site}"}
    commands = [["sync"], ["status"], ["status", "--json"], ["analyze", EXP], ["analyze", EXP, "--json"],
                ["record", EXP, "--arm", "treatment", "--value", "3"], ["sync"]]  # fmt: skip
    for args in commands:
        proc = subprocess.run([sys.executable, "-m", "experiment_core", *args], cwd=victim, capture_output=True,
                              text=True, env=cli_env(env))  # fmt: skip
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
    logged = log.read_text()
    assert "subprocess.Popen" in logged  # the hook saw our git processes
    # an experiment id names its notes ref (refs/notes/experiments-<id>, ids are [A-Za-z0-9._-]): the one piece of
    # ledger text a git command may carry, as one argument; no other text of the ledger reaches a process
    assert f"refs/notes/experiments-{marker}" in logged
    assert marker not in re.sub(rf"refs/notes/(remotes/origin/)?experiments-{marker}\b", "", logged)
    made = [p.relative_to(victim).as_posix() for p in victim.rglob(f"*{marker}*")]
    assert all(p.startswith((".git/refs/notes/", ".git/logs/refs/notes/")) for p in made), made  # only its ref
    assert not list(Path.cwd().glob(f"*{marker}*"))
    # the only shell in the package runs the registry's metric command (timing.time_command)
    shells = [p.name for p in (PROJECT / "experiment_core").rglob("*.py")
              if "shell=True" in p.read_text() or '"/bin/sh", "-c"' in p.read_text()]  # fmt: skip
    assert shells == ["timing.py"]


def test_cases_cover_the_issue() -> None:
    names = " ".join(c.name for c in CASES).lower()
    for topic in ("non-json", "string", "nan", "infinity", "huge", "utf-8", "unknown event type",
                  "unknown experiment", "conflict markers in experiments.yaml", "..", "absolute", "symlink"):
        assert topic in names, topic


