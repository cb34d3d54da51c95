"""One notes ref per experiment: a team upgrading one clone at a time loses no event and counts none twice.

A clone on the previous version (0.2) is simulated with the plain git commands 0.2 ran: ``git notes
--ref=experiments append`` under its lock, and its sync (fetch the remote's ``refs/notes/experiments`` into
``refs/notes/experiments-remote/<remote>``, ``git notes merge -s cat_sort_uniq``, push with a lease).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from experiment_core.gitio import Git
from experiment_core.store import ledger, ledger_index, migrate, refs, sync
from tests.conftest import git, run_cli
from tests.test_index import assert_index_equals_notes


def _event(exp: str, unit: str, value: float = 1.0) -> ledger.Event:
    return ledger.make_event("trial", exp, arm="control", metric="t", value=value, unit=unit)


def old_append(repo: Path, events: list[ledger.Event]) -> None:
    """What 0.2's ``ledger.append`` ran: every event into the note on HEAD in refs/notes/experiments."""
    lines = "".join(ledger.encode(e) + "\n" for e in events)
    git(repo, "notes", "--ref=refs/notes/experiments", "append", "-F", "-", "HEAD", input=lines)


def old_setup(repo: Path) -> None:
    """What 0.2 configured: its fetch glob and notes.rewriteRef."""
    glob = "+refs/notes/experiments*:refs/notes/experiments-remote/origin*"
    git(repo, "config", "--add", "remote.origin.fetch", glob)
    git(repo, "config", "--add", "notes.rewriteRef", "refs/notes/experiments")


def old_sync(repo: Path) -> None:
    """What 0.2's sync ran: one exact ref through a side ref, merged with cat_sort_uniq, pushed with a lease."""
    remote_sha = git(repo, "ls-remote", "origin", "refs/notes/experiments").split("\t")[0].strip()
    if remote_sha:
        git(repo, "fetch", "-q", "origin", "+refs/notes/experiments:refs/notes/experiments-remote/origin")
        if git(repo, "rev-parse", "-q", "--verify", "refs/notes/experiments", check=False).strip():
            git(repo, "notes", "--ref=experiments", "merge", "-q", "-s", "cat_sort_uniq",
                "refs/notes/experiments-remote/origin")  # fmt: skip
        else:
            git(repo, "update-ref", "refs/notes/experiments", remote_sha)
    git(repo, "push", "-q", "--no-verify", f"--force-with-lease=refs/notes/experiments:{remote_sha}", "origin",
        "refs/notes/experiments")  # fmt: skip


def ids_in(repo: Path, ref: str | None = None) -> Counter[str]:
    return Counter(e["id"] for e in ledger.read(Git(repo), ref, cache=False).events)


def test_three_clones_one_on_the_previous_layout(clones: tuple[Path, list[Path]]) -> None:
    remote, (a, b, old) = clones
    old_setup(old)
    written: list[ledger.Event] = []
    legacy = [_event("exp-1", "old1"), _event("exp-2", "old2"), _event("exp-2", "old3")]
    old_append(old, legacy)
    old_sync(old)
    written += legacy
    for repo, events in ((a, [_event("exp-1", "a1"), _event("exp-1", "a2")]),
                         (b, [_event("exp-2", "b1"), _event("exp-3", "b2")])):  # fmt: skip
        ledger.append(Git(repo), events)
        written += events
    ra = sync.sync(Git(a), "origin")
    assert ra.migrated == 3 and ra.pushed  # the legacy events, copied into exp-1's and exp-2's refs once
    rb = sync.sync(Git(b), "origin")
    assert rb.migrated == 0 and rb.merge == "merge"  # a's copies came in first, joined with b's exp-2 note
    # the old clone keeps writing the legacy ref, and keeps syncing it the old way
    more = [_event("exp-1", "old4"), _event("exp-3", "old5")]
    old_append(old, more)
    old_sync(old)
    written += more
    git(old, "fetch", "-q")  # its 0.2 glob brings the new refs too, harmlessly, into its own side refs
    assert ids_in(old, "refs/notes/experiments") == Counter(e["id"] for e in legacy + more)  # what 0.2 reads
    for repo in (a, b, a, b):
        sync.sync(Git(repo), "origin")
    want = Counter(e["id"] for e in written)
    for repo in (a, b):
        assert ids_in(repo) == want  # the exact union: every event once
        assert_index_equals_notes(Git(repo))
        assert {r.removeprefix("refs/notes/") for r in refs.tips(Git(repo))} == {
            "experiments", "experiments-exp-1", "experiments-exp-2", "experiments-exp-3"}  # fmt: skip
    for exp in ("exp-1", "exp-2", "exp-3"):  # each experiment's ref holds all of its events, the legacy ones too
        assert set(ids_in(remote, refs.exp_ref(exp))) == {e["id"] for e in written if e["exp"] == exp}
    # the old clone upgrades: its first sync takes every ref, its reads see the union
    assert git(old, "for-each-ref", "refs/notes/experiments-remote/")  # 0.2's side refs
    result = sync.sync(Git(old), "origin")
    assert ids_in(old) == want and result.merge == "created"  # the per-experiment refs, new to it
    assert_index_equals_notes(Git(old))
    fetch = git(old, "config", "--get-all", "remote.origin.fetch").split()
    assert "+refs/notes/experiments*:refs/notes/remotes/origin/experiments*" in fetch
    assert not [spec for spec in fetch if "experiments-remote" in spec]  # 0.2's glob and side refs are gone
    assert not git(old, "for-each-ref", "refs/notes/experiments-remote/")
    # from now on a push carries only the ref of the experiment that got an event; a fetch only that one
    a3 = _event("exp-3", "a3")
    ledger.append(Git(a), [a3])
    pushed = sync.sync(Git(a), "origin")
    assert (pushed.pushed_refs, pushed.fetched_refs) == ([refs.exp_ref("exp-3")], [])
    fetched = sync.sync(Git(b), "origin")
    assert (fetched.fetched_refs, fetched.pushed, fetched.merge) == ([refs.exp_ref("exp-3")], False, "fast-forward")
    assert sync.sync(Git(b), "origin").fetched_refs == []  # nothing changed: nothing negotiated
    for repo in (a, b, old):
        sync.sync(Git(repo), "origin")
        assert ids_in(repo) == want + Counter([a3["id"]])


def test_migrate_copies_the_legacy_ref_once(repo: Path) -> None:
    g = Git(repo)
    ledger.append(g, [_event("exp-1", "new")])  # this clone's own event on the same commit
    legacy = [_event("exp-1", "x"), _event("exp-2", "y")]
    old_append(repo, legacy)
    garbage = git(repo, "hash-object", "-w", "--stdin", input="not json\n").strip()
    git(repo, "notes", "--ref=experiments", "append", "-C", garbage, "HEAD")
    before = ledger.read(g, cache=False)
    assert before.skipped == 1 and len(before.events) == 3
    out = run_cli(repo, "migrate").stdout
    assert "copied 2 events of refs/notes/experiments into 2 per-experiment refs" in out
    note = git(repo, "notes", "--ref", "experiments-exp-1", "show", "HEAD")
    assert sorted(json.loads(line)["unit"] for line in note.splitlines() if line) == ["new", "x"]  # joined
    after = ledger.read(g, cache=False)
    assert [e["id"] for e in after.events] == [e["id"] for e in before.events] and after.skipped == 1  # once each
    assert_index_equals_notes(g)
    tips = refs.tips(g)
    assert "nothing to copy" in run_cli(repo, "migrate").stdout
    (g.common_dir / "experiment-hook" / migrate.MARK).unlink()  # forgotten: a full pass adds nothing either
    assert migrate.migrate(g).copied == 0 and refs.tips(g) == tips
    more = _event("exp-3", "z")
    old_append(repo, [more])  # a clone of the previous version writes again: only that is copied
    assert migrate.migrate(g).copied == 1
    assert [e["id"] for e in ledger.read(g, refs.exp_ref("exp-3"), cache=False).events] == [more["id"]]
    with ledger_index.open_index(g) as index:
        assert index.count() == 4


def test_ref_names() -> None:
    assert refs.exp_ref("exp-20261201-1") == "refs/notes/experiments-exp-20261201-1"
    assert refs.exp_ref("build.v2") == "refs/notes/experiments-build.v2"
    for odd in ("a..b", "x.lock", "x.", "remote"):  # not a ref name, or 0.2's side-ref directory
        name = refs.exp_ref(odd)
        assert refs.is_ledger_ref(name) and name != refs.PREFIX + odd
    assert refs.is_ledger_ref("refs/notes/experiments")
    for other in ("refs/notes/experiments-remote/origin", "refs/notes/experiments-$(x)", "refs/notes/experiments-",
                  "refs/notes/experimentsX", "refs/notes/remotes/origin/experiments-a"):  # fmt: skip
        assert not refs.is_ledger_ref(other), other
    assert refs.side_ref("origin", "refs/notes/experiments-a") == "refs/notes/remotes/origin/experiments-a"
    assert refs.from_side("origin", "refs/notes/remotes/origin/experiments-a") == "refs/notes/experiments-a"
    assert refs.from_side("origin-eu", "refs/notes/remotes/origin/experiments-a") is None


def test_odd_ids_and_an_experiment_called_remote(repo: Path) -> None:
    g = Git(repo)
    events = [_event(exp, exp) for exp in ("remote", "a..b", "x.lock", "plain")]
    ledger.append(g, events)
    assert sorted(e["exp"] for e in ledger.read(g, cache=False).events) == ["a..b", "plain", "remote", "x.lock"]
    assert_index_equals_notes(g)


def test_a_remote_experiment_ref_that_is_not_a_commit_is_refused(clones: tuple[Path, list[Path]]) -> None:
    _, (a, b, _) = clones
    ledger.append(Git(a), [_event("exp-1", "a")])
    sync.sync(Git(a), "origin")
    sync.sync(Git(b), "origin")
    tree = git(a, "rev-parse", "HEAD^{tree}").strip()
    git(a, "push", "-q", "--no-verify", "--force", "origin", f"{tree}:{refs.exp_ref('exp-1')}")
    before = git(b, "for-each-ref")
    proc = run_cli(b, "sync", check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "refs/notes/experiments-exp-1" in proc.stderr and "not a notes commit" in proc.stderr
    assert git(b, "for-each-ref") == before  # side ref put back, the ledger untouched


def test_an_index_of_the_previous_version_is_brought_forward(repo: Path) -> None:
    """0.2's index knew one notes commit (meta ``commit``, no ``tips``): it is taken as the legacy ref's."""
    import sqlite3

    g = Git(repo)
    old_append(repo, [_event("exp-1", "old")])
    assert_index_equals_notes(g)
    conn = sqlite3.connect(ledger_index.index_path(g))
    with conn:
        conn.execute("DELETE FROM meta WHERE key='tips'")
        conn.execute("INSERT INTO meta VALUES ('sentinel', 'a rebuild drops it')")
        legacy = git(repo, "rev-parse", "refs/notes/experiments").strip()
        assert conn.execute("SELECT value FROM meta WHERE key='commit'").fetchone()[0] == legacy  # as 0.2 wrote it
    conn.close()
    ledger.append(g, [_event("exp-2", "new")])
    assert_index_equals_notes(g)
    conn = sqlite3.connect(ledger_index.index_path(g))
    assert conn.execute("SELECT value FROM meta WHERE key='sentinel'").fetchone() is not None  # brought forward
    conn.close()
