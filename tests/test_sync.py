"""Ledger sync through a real bare remote: side-ref fetch, cat_sort_uniq merge, push with a lease, fresh clones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from experiment_core.gitio import Git
from experiment_core.store import ledger, refs, sync
from tests.conftest import cli_env, git, make_clones, run_cli


def trial(unit: str, value: float = 1.0) -> ledger.Event:
    return ledger.make_event("trial", "exp-1", arm="control", metric="t", value=value, unit=unit, exit_code=0,
                             commit=None)  # fmt: skip


EXP_REF = refs.exp_ref("exp-1")  # where trial() events live


def ids(path: Path, ref: str | None = None) -> list[str]:
    return sorted(e["id"] for e in ledger.read(Git(path), ref, cache=False).events)


def remote_notes(remote: Path) -> str | None:
    out = git(remote, "for-each-ref", "--format=%(objectname)", EXP_REF).strip()
    return out or None


def test_two_clones_merge_to_the_exact_union(clones: tuple[Path, list[Path]]) -> None:
    remote, (a, b, _) = clones
    ea, eb = [trial("a", v) for v in (1, 2)], [trial("b", v) for v in (3, 4)]
    ledger.append(Git(a), ea)
    ledger.append(Git(b), eb)
    ra = sync.sync(Git(a), "origin")
    assert ra.pushed and ra.merge == "none" and remote_notes(remote) == git(a, "rev-parse", EXP_REF).strip()
    rb = sync.sync(Git(b), "origin")  # both clones wrote notes on the same commit: a true cat_sort_uniq merge
    assert rb.merge == "merge" and rb.pushed
    sync.sync(Git(a), "origin")
    want = sorted(e["id"] for e in ea + eb)
    assert ids(a) == ids(b) == want
    note = git(a, "notes", "--ref=experiments-exp-1", "show", "HEAD")
    assert sorted(json.loads(line)["id"] for line in note.splitlines() if line.strip()) == want  # no duplicate line
    again = sync.sync(Git(b), "origin")  # idempotent: nothing to fetch, merge or push
    assert (again.merge, again.pushed, again.fetched) == ("none", False, False)


def test_fresh_clone_is_set_up_and_gets_the_ledger(clones: tuple[Path, list[Path]], tmp_path: Path) -> None:
    remote, (a, _, _) = clones
    events = [trial("a", v) for v in range(3)]
    ledger.append(Git(a), events)
    run_cli(a, "sync")
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(remote), str(fresh))
    assert git(fresh, "for-each-ref", "refs/notes").strip() == ""  # git itself fetches no notes
    out = run_cli(fresh, "sync").stdout
    assert "took the remote's ledger" in out
    assert ids(fresh) == sorted(e["id"] for e in events)
    fetch = git(fresh, "config", "--get-all", "remote.origin.fetch").split()
    assert "+refs/notes/experiments*:refs/notes/remotes/origin/experiments*" in fetch  # a glob: no ledger, no error
    rewrite = git(fresh, "config", "--get-all", "notes.rewriteRef").split()
    assert rewrite == [ledger.NOTES_REF, "refs/notes/experiments-*"]
    # from now on a plain `git fetch` brings the remote ledger into the side ref (never over the local one)
    ledger.append(Git(a), [trial("later")])
    run_cli(a, "sync")
    local_before = git(fresh, "rev-parse", EXP_REF)
    git(fresh, "fetch", "-q")
    assert git(fresh, "rev-parse", sync.side_ref("origin", EXP_REF)) == git(a, "rev-parse", EXP_REF)
    assert git(fresh, "rev-parse", EXP_REF) == local_before
    run_cli(fresh, "sync")
    assert len(ids(fresh)) == 4


def test_empty_sides(clones: tuple[Path, list[Path]]) -> None:
    remote, (a, b, _) = clones
    nothing = sync.sync(Git(a), "origin")  # neither side has a ledger
    assert (nothing.merge, nothing.pushed) == ("none", False) and remote_notes(remote) is None
    ledger.append(Git(b), [trial("b")])
    first = sync.sync(Git(b), "origin")  # remote has none: the lease says "must not exist yet"
    assert first.pushed and remote_notes(remote) is not None
    got = sync.sync(Git(a), "origin")  # no local notes yet
    assert got.merge == "created" and ids(a) == ids(b)


def test_stale_lease_is_refused_then_sync_retries(clones: tuple[Path, list[Path]]) -> None:
    remote, (a, b, _) = clones
    ledger.append(Git(a), [trial("a")])
    sync.sync(Git(a), "origin")
    seen = remote_notes(remote)
    ledger.append(Git(b), [trial("b")])
    sync.sync(Git(b), "origin")  # b pushes in between: `seen` is stale now
    ledger.append(Git(a), [trial("a2")])
    lease_ok, _ = sync._push(Git(a), "origin", {EXP_REF: seen}, backups=False)
    assert not lease_ok and remote_notes(remote) == git(b, "rev-parse", EXP_REF).strip()
    result = sync.sync(Git(a), "origin")
    assert result.pushed and result.merge == "merge"
    assert len(ids(a)) == 3 and ids(a) == ids(remote)


def test_merge_without_a_configured_identity(clones: tuple[Path, list[Path]]) -> None:
    _, (a, b, _) = clones
    ledger.append(Git(a), [trial("a")])
    sync.sync(Git(a), "origin")
    ledger.append(Git(b), [trial("b")])
    for key in ("user.name", "user.email"):
        git(b, "config", "--unset", key)
    git(b, "config", "user.useConfigOnly", "true")  # no guessing from the host name either
    env = {k: v for k, v in cli_env().items() if not k.startswith(("GIT_COMMITTER_", "GIT_AUTHOR_", "EMAIL"))}
    proc = subprocess.run([sys.executable, "-m", "experiment_core", "sync"], cwd=b, env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(ids(b)) == 2


def test_backups_travel(clones: tuple[Path, list[Path]], tmp_path: Path) -> None:
    remote, (a, b, _) = clones
    blob = Git(a).hash_object(b"control content\n")
    git(a, "update-ref", "refs/experiments/backups/exp-1/0", blob)
    ledger.append(Git(a), [trial("a")])
    sync.sync(Git(a), "origin")
    assert blob in git(remote, "for-each-ref", "refs/experiments/backups")
    sync.sync(Git(b), "origin")
    assert git(b, "cat-file", "-p", blob) == "control content\n"  # b can restore the control content
    assert blob in git(b, "for-each-ref", "refs/experiments/remote-backups/origin")


def test_bad_remote_argument_is_one_line(clones: tuple[Path, list[Path]]) -> None:
    _, (a, _, _) = clones
    for bad in ("nope", "../x", "-x"):
        proc = run_cli(a, "sync", "--", bad, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_default_remote_choice(tmp_path: Path) -> None:
    _, (a,) = make_clones(tmp_path, 1)
    assert sync.default_remote(Git(a)) == "origin"
    assert sync.default_remote(Git(a), "upstream") == "upstream"
    git(a, "remote", "rename", "origin", "hub")
    assert sync.default_remote(Git(a)) == "hub"


def test_pre_push_entry_point_honors_the_setting(clones: tuple[Path, list[Path]]) -> None:
    remote, (a, _, _) = clones
    ledger.append(Git(a), [trial("a")])
    (a / "experiments.yaml").write_text("settings:\n  sync_on_push: false\nexperiments: []\n")
    assert sync.pre_push(Git(a), "origin") is None and remote_notes(remote) is None
    (a / "experiments.yaml").write_text("settings:\n  sync_on_push: true\nexperiments: []\n")
    message = sync.pre_push(Git(a), "origin")
    assert message and "pushed" in message and remote_notes(remote) is not None
    assert "not a named remote" in (sync.pre_push(Git(a), str(remote)) or "")
    (a / "experiments.yaml").write_text("settings: [\n")
    assert "not synced" in (sync.pre_push(Git(a), "origin") or "")  # broken registry: a message, no exception


def test_rewritten_remote_history_loses_nothing(clones: tuple[Path, list[Path]]) -> None:
    """A clone force-pushes a fresh notes history that drops everyone's records: the next sync merges the
    unrelated histories (union) and puts the records back on the remote."""
    remote, (a, b, _) = clones
    kept = [trial("a", v) for v in range(3)]
    ledger.append(Git(a), kept)
    sync.sync(Git(a), "origin")
    git(b, "notes", "--ref=experiments-exp-1", "add", "-m", ledger.encode(trial("b")), "HEAD")  # unrelated history
    git(b, "push", "-q", "--force", "--no-verify", "origin", EXP_REF)
    assert len(ids(remote)) == 1
    result = sync.sync(Git(a), "origin")
    assert result.merge == "merge" and result.pushed
    assert len(ids(a)) == len(ids(remote)) == 4
