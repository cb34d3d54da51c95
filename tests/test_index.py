"""The local SQLite index of the ledger equals a full re-read of the notes, whatever happened to them."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from experiment_core.evidence.analysis import analyze_data
from experiment_core.evidence.units import EventData, collect_units, orders_of
from experiment_core.gitio import Git
from experiment_core.store import ledger, ledger_index, refs, sync
from tests.conftest import PROJECT, cli_env, git, init_repo

EXPS = ("exp-1", "exp-2")
METRICS = ("t", "mem")


def _trial(exp: str = "exp-1", value: float = 1.0, arm: str = "control", unit: str = "u1", metric: str = "t",
           **extra: object) -> ledger.Event:  # fmt: skip
    return ledger.make_event("trial", exp, arm=arm, metric=metric, value=value, unit=unit, **extra)


def _varied(i: int, exp: str = "exp-1") -> list[ledger.Event]:
    """A few events of every shape the aggregates care about: arms, units, metrics, errors, pairs, machines,
    assignments, alerts; values whose sum depends on the order of addition."""
    arm = "control" if i % 2 else "treatment"
    unit = f"u{i % 5}"
    return [
        ledger.make_event("assign", exp, arm=arm, unit=unit),
        _trial(exp, 0.1 * i + 1e-9, arm, unit, machine=f"m{i % 3}", pair=f"p{i % 4}"),
        _trial(exp, 1e16 if i % 7 == 0 else 3.3, arm, unit, metric="mem"),
        _trial(exp, 2.0, arm, unit, exit_code=1),
        ledger.make_event("alert", exp, kind="srm", message=f"alert {i}"),
    ]


def assert_index_equals_notes(g: Git) -> None:
    """Every figure the index gives equals the same figure computed from a full re-read of the notes."""
    ledger_index.read_with(g, lambda index: _check(index, ledger.read(g, cache=False)))


def _check(index: ledger_index.LedgerIndex, full: ledger.LedgerRead) -> None:
    from experiment_core.clock import parse_ts

    assert index.notes_commit == full.notes_commit
    assert index.skipped == full.skipped
    assert index.events() == full.events  # same events, same order (time, then id)
    assert index.count() == len(full.events)
    exps = {e["exp"] for e in full.events} | set(EXPS)
    assert index.count_unknown(EXPS) == sum(e["exp"] not in EXPS for e in full.events)
    metrics = {e["metric"] for e in full.events if e["type"] == "trial"} | set(METRICS)
    for exp in sorted(exps):
        assert index.events(exp) == ledger.for_experiment(full.events, exp)
        assert index.events(exp, ("alert",)) == [e for e in full.events if e["exp"] == exp
                                                 and e["type"] == "alert"]  # fmt: skip
        for metric in sorted(metrics):
            units = collect_units(full.events, exp, metric)
            assert index.units(exp, metric) == units
            assert index.sums(exp, metric) == units.sums()  # exact: bit for bit, however the units came and went
            for k in (1, 2, 3, 100):
                assert index.first_units(exp, metric, k) == units.first(k)
            for alpha, log_scale in ((0.05, False), (0.01, True)):
                expected = orders_of(units.control, units.treatment, alpha=alpha, log_scale=log_scale)
                assert index.orders(exp, metric, alpha=alpha, log_scale=log_scale) == expected
            trials = [e for e in full.events if e["exp"] == exp and e["type"] == "trial"
                      and e["metric"] == metric]  # fmt: skip
            n, lo, hi = index.trial_span(exp, metric)
            assert n == len(trials)
            if trials:
                moments = [parse_ts(e["ts"]).timestamp() for e in trials]  # type: ignore[union-attr]
                assert (lo, hi) == (min(moments), max(moments))
        units = {a: {e["unit"] for e in full.events if e["exp"] == exp and e["type"] in ("assign", "trial")
                     and e["arm"] == a} for a in ("control", "treatment")}  # fmt: skip
        assert index.unit_counts(exp) == (len(units["control"]), len(units["treatment"]))
        events = EventData(ledger.for_experiment(full.events, exp), exp)
        for e in _experiments(exp):
            for log_scale in (False, True):
                try:
                    expected = analyze_data(e, events, log_scale=log_scale).to_dict()
                except ValueError:  # the log scale of values that are not all positive
                    continue
                assert analyze_data(e, index.data(exp), log_scale=log_scale).to_dict() == expected


def _experiments(exp_id: str) -> list[Any]:
    """The analysis's shapes: fixed horizon with a Mann-Whitney test, sequential with a guardrail and blocking,
    the log scale's always-valid test, no blocking."""
    from experiment_core.store.spec import Experiment, Metric

    guard = (Metric(name="mem", direction="lower", guardrail=True),)
    base = {"id": exp_id, "name": "x", "files": {"a.md": "b.md"}, "metric": Metric(name="t"), "sample_size": 2}
    return [Experiment(**base, analysis="fixed", test="mann-whitney", secondary=guard),  # type: ignore[arg-type]
            Experiment(**base, secondary=guard), Experiment(**base, block_by="none")]  # type: ignore[arg-type]


def _commit(repo: Path, name: str) -> None:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-qm", name)


def test_index_follows_appends_amends_rebases_removals_and_rewinds(repo: Path) -> None:
    g = Git(repo)
    ledger.ensure_config(g)
    assert_index_equals_notes(g)  # no ledger yet
    ledger.append(g, _varied(0))
    assert_index_equals_notes(g)
    assert ledger_index.index_path(g).is_file()
    first = git(repo, "rev-parse", refs.exp_ref("exp-1")).strip()
    for i in range(1, 8):
        ledger.append(g, _varied(i, EXPS[i % 2]))  # notes grow
        if i % 3 == 0:
            _commit(repo, f"f{i}")  # and new notes
    assert_index_equals_notes(g)
    git(repo, "commit", "--amend", "-qm", "amended")  # the note is copied: every id twice
    assert_index_equals_notes(g)
    git(repo, "checkout", "-q", "-b", "side", "HEAD~2")
    _commit(repo, "side-file")
    ledger.append(g, _varied(20))
    git(repo, "checkout", "-q", "main")
    git(repo, "rebase", "-q", "side")  # rebase picks copy the notes of main's commits
    ledger.append(g, [_trial(value=5.0)])
    assert_index_equals_notes(g)
    ledger_index._remove(ledger_index.index_path(g))  # a build from scratch dedups the copies the same way
    assert_index_equals_notes(g)
    garbage = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"garbage\n\xff\n{]\n",
                             capture_output=True, check=True).stdout.decode().strip()  # fmt: skip
    git(repo, "notes", "--ref=experiments-exp-1", "append", "-C", garbage, "HEAD")
    assert_index_equals_notes(g)
    git(repo, "notes", "--ref=experiments-exp-1", "remove", "HEAD")  # last copies go: aggregates recomputed
    assert_index_equals_notes(g)
    git(repo, "notes", "--ref=experiments-exp-1", "remove", "HEAD~1")
    assert_index_equals_notes(g)
    git(repo, "notes", "--ref=experiments", "append", "-C", garbage, "HEAD")  # the legacy ref: part of the ledger
    git(repo, "notes", "--ref=experiments", "append", "-m", ledger.encode(_trial("exp-2", 4.0)), "HEAD~1")
    assert_index_equals_notes(g)
    git(repo, "update-ref", refs.exp_ref("exp-1"), first)  # rewound: the diff runs backwards
    assert_index_equals_notes(g)
    git(repo, "update-ref", "-d", refs.exp_ref("exp-2"))  # gone altogether
    assert_index_equals_notes(g)
    for ref in refs.tips(g):
        git(repo, "update-ref", "-d", ref)  # no ledger left
    assert_index_equals_notes(g)


def test_sums_are_exact_whatever_the_order(repo: Path) -> None:
    """1e16 + 1 + 1 is 1e16 in floating point one way and 1e16 + 2 the other: the index gives fsum's answer."""
    g = Git(repo)
    values = [1e16, 1.0, 1.0, -1e16, 0.1, 0.2]
    for i, v in enumerate(values):
        _commit(repo, f"v{i}")
        ledger.append(g, [_trial(value=v, unit="same")])
        assert_index_equals_notes(g)
    with ledger_index.open_index(g) as index:
        import math

        assert index.units("exp-1", "t").control == [math.fsum(values) / len(values)]


def test_index_follows_syncs_with_a_remote(clones: tuple[Path, list[Path]]) -> None:
    _remote, (a, b, c) = clones
    for i, path in enumerate((a, b)):
        ledger.append(Git(path), _varied(i))
        assert_index_equals_notes(Git(path))  # index built before the sync: brought forward by it
    sync.sync(Git(a), "origin")
    sync.sync(Git(b), "origin")  # a true merge of two notes on the same commit
    ledger.append(Git(a), _varied(5, "exp-2"))
    sync.sync(Git(a), "origin")
    sync.sync(Git(c), "origin")  # a clone that had no ledger takes the remote's
    for path in (a, b, c):
        sync.sync(Git(path), "origin")
        assert_index_equals_notes(Git(path))
    assert refs.tips(Git(a)) == refs.tips(Git(b)) == refs.tips(Git(c))


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from experiment_core.store import ledger, ledger_index
    from experiment_core.gitio import Git
    g = Git(Path(sys.argv[1]))
    for i in range(int(sys.argv[3])):
        ledger.append(g, [ledger.make_event("trial", "exp-1", arm="control", metric="t", value=float(i),
                                            unit=sys.argv[2] + str(i % 3))])
        with ledger_index.open_index(g) as index:  # every writer also brings the index forward
            index.units("exp-1", "t")
    """
)


def test_concurrent_writers_and_readers_lose_nothing(repo: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(repo), f"w{k}-", "6"], cwd=PROJECT, env=cli_env(),
                              stderr=subprocess.PIPE) for k in range(6)]  # fmt: skip
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    g = Git(repo)
    assert_index_equals_notes(g)
    with ledger_index.open_index(g) as index:
        assert index.count() == 36


BUILDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from experiment_core.store import ledger_index
    from experiment_core.gitio import Git
    print("open", flush=True)
    ledger_index.open_index(Git(Path(sys.argv[1]))).close()
    """
)


def _add_many(repo: Path, n: int, start: int) -> None:
    """``n`` events on ``n`` new commits with one fast-import (a sync bringing a big batch looks the same)."""
    sys.path.insert(0, str(PROJECT / "benchmarks"))
    from ledger_scale import build_ledger

    build_ledger(repo, n, per_note=1, first_commit=start)


def test_kill_9_mid_update_leaves_a_usable_index(repo: Path) -> None:
    g = Git(repo)
    ledger.append(g, _varied(0))
    assert_index_equals_notes(g)
    path = ledger_index.index_path(g)
    old = refs.token(refs.tips(g))
    hit = 0
    delay = 0.4
    for round_ in range(6):
        _add_many(repo, 4000, start=round_ * 4000)
        proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(repo)], cwd=PROJECT, env=cli_env(),
                                stdout=subprocess.PIPE)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline() == b"open\n"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(path)
        indexed = dict(conn.execute("SELECT key, value FROM meta").fetchall())["commit"]
        conn.close()
        if indexed == old:
            hit += 1  # killed before its transaction committed: the old state stayed whole
        else:
            delay /= 2
        assert_index_equals_notes(g)
        old = refs.token(refs.tips(g))
        if hit >= 2:
            break
    assert hit >= 1, "no kill landed inside an update"


def test_corrupt_or_foreign_index_is_rebuilt(repo: Path, tmp_path: Path) -> None:
    g = Git(repo)
    for i in range(3):
        _commit(repo, f"f{i}")
        ledger.append(g, _varied(i))
    assert_index_equals_notes(g)
    path = ledger_index.index_path(g)
    other = init_repo(tmp_path / "other")
    ledger.append(Git(other), _varied(9, "exp-2"))
    ledger_index.open_index(Git(other)).close()
    foreign = ledger_index.index_path(Git(other))

    def damage(kind: str) -> None:
        ledger_index._remove(path)
        if kind == "garbage":
            path.write_bytes(b"this is not a database\n" * 100)
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "directory":
            path.mkdir()
        elif kind == "foreign":  # another clone's index (it is valid SQLite, with the right schema)
            conn = sqlite3.connect(foreign)
            conn.execute(f"VACUUM INTO '{path}'")
            conn.close()
        elif kind in ("version", "truncated", "unknown-commit"):
            ledger_index.open_index(g).close()
            conn = sqlite3.connect(path)
            if kind == "version":
                conn.execute("PRAGMA user_version=99")
            elif kind == "unknown-commit":
                conn.execute("UPDATE meta SET value='0123456789abcdef0123456789abcdef01234567' WHERE key='commit'")
            conn.commit()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            if kind == "truncated":
                size = path.stat().st_size
                with open(path, "r+b") as f:
                    f.seek(size // 2)
                    f.write(b"\x00\xff" * 2048)  # pages overwritten in the middle of the file
        _commit(repo, f"after-{kind}")
        ledger.append(g, [_trial(value=7.0)])

    for kind in ("garbage", "empty", "foreign", "version", "unknown-commit", "truncated", "directory"):
        damage(kind)
        if kind == "directory":
            with pytest.raises(Exception):  # noqa: B017 - not ours to delete: a clear failure, not a wrong answer
                ledger_index.open_index(g).close()
            os.rmdir(path)
            continue
        assert_index_equals_notes(g)


def test_hostile_notes_cannot_crash_a_read_of_the_index(repo: Path) -> None:
    g = Git(repo)
    ledger.append(g, _varied(1))
    hostile = [b"\xff\xfe" * 10, b"{" * 100000,
               b'{"v":1,"id":"x","type":"trial","exp":"exp-1","ts":"2026-01-01T00:00:00Z",'
               b'"arm":"control","metric":"t","value":NaN,"unit":"u"}', b"[1,2]{}", b'{"v":1}' * 3,
               b'{"v":1,"id":"y","type":"trial","exp":"exp-1","ts":"never","arm":"control","metric":"t",'
               b'"value":1,"unit":"u"}', b"null", b"\x00" * 50,
               b'{"arm":"control","exp":"exp-1","id":"\\ud800","metric":"t","ts":"2026-01-01T00:00:00Z",'
               b'"type":"trial","unit":"u","v":1,"value":1}',  # a lone surrogate: no text (SQLite refused it)
               b'{"arm":"control","exp":"exp-1","id":"s1","metric":"t","ts":"2026-01-01T00:00:00Z","type":"trial",'
               b'"unit":"\\uDFFF","v":1,"value":1}']  # fmt: skip
    for i, body in enumerate(hostile):
        _commit(repo, f"h{i}")
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=body + b"\n",
                              capture_output=True, check=True).stdout.decode().strip()  # fmt: skip
        git(repo, "notes", "--ref=experiments", "add", "-f", "-C", blob, "HEAD")
        assert_index_equals_notes(g)
    with ledger_index.open_index(g) as index:
        assert index.skipped == ledger.read(g, cache=False).skipped >= len(hostile)


def _edge_lines() -> list[bytes]:
    """Canonical trial and assign lines and their near misses: each must get :func:`ledger.validate`'s verdict
    on the bulk path of a cold build."""
    base = ledger.encode(_trial(machine="m1", commit="abcd12", exit_code=0, pair="p1", source="run"))
    assign = ledger.encode(ledger.make_event("assign", "exp-1", arm="treatment", unit="u1"))
    swaps = [("10", "1e999"), ("10", "-0"), ("10", "0.0"), ("10", "1E5"), ("10", "-1e-5"), ("10", "01"),
             ("10", "123456789012345678901234567890"), ("10", "9007199254740993"), ("10", "1.5e308"),
             ('"exit_code":0', '"exit_code":007'), ('"exit_code":0', '"exit_code":-0'),
             ('"exit_code":0', '"exit_code":null'), ('"exit_code":0', '"exit_code":3'),
             ('"exit_code":0', '"exit_code":1.0'), ('"exit_code":0', '"exit_code":true'),
             ('"arm":"control"', '"arm":"control","arm":"treatment"'), ('"arm":"control"', '"arm":"other"'),
             ('"source":"run"', '"source":"run","startup":1e999,"timing":true,"zz":null'),
             ('"source":"run"', '"source":[1]'), ('"source":"run"', '"source":"run","unit":"u9"'),
             ('"machine":"m1"', '"machine":""'), ('"machine":"m1"', '"machine":"' + "m" * 65 + '"'),
             ('"unit":"u1"', '"unit":""'), ('"unit":"u1"', '"unit":"\\u00fc"'), ('"unit":"u1"', '"unit":"ü"'),
             ('"exp":"exp-1"', '"exp":"-bad"'), ('"metric":"t"', '"metric":"1t"'), ('"v":1', '"v":1.0'),
             ('"v":1', '"v":2'), ('"pair":"p1"', '"pair":""'), ('"pair":"p1"', '"pair":5'),
             ('"commit":"abcd12"', '"commit":"ABCD12"'), ('"commit":"abcd12"', '"commit":"abc"'),
             ('"arm":"control"', '"arm": "control"'), ('"type":"trial"', '"type":"assign"'),
             ('"source":"run"', '"source":"' + "x" * 4000 + '"' + ',"sourcf":"' + "x" * 4000 + '"' * 1)]
    lines = [base.encode()]
    for old, new in swaps:
        line = base.replace(old, new, 1) if old != "10" else base.replace('"value":1.0', f'"value":{new}')
        lines.append(line.encode())
    for old, new in [("", ""), ('"unit":"u1"', '"unit":"' + "u" * 201 + '"'), ('"v":1', '"v":1,"x":1'),
                     ('"ts":"', '"ts":"x')]:  # fmt: skip
        lines.append((assign.replace(old, new, 1) if old else assign).encode())
    long_id = ledger.encode(_trial(id="i" * 64)).encode(), ledger.encode(_trial(id="i" * 65)).encode()
    return [*lines, *long_id, ledger.encode(_trial(value=1e16)).encode(), b'{"v":1}']


def test_bulk_path_of_a_cold_build_gives_validates_verdict(repo: Path) -> None:
    """Line for line, the cold build keeps exactly the lines :func:`ledger.validate` keeps; with the lines in
    notes, a build from scratch equals a full re-read."""
    lines = _edge_lines()
    trial, _assign = ledger.canonical_matchers()
    assert sum(trial(line) is not None for line in lines) >= 15  # the bulk path is tried
    for line in lines:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)  # a writer thread uses it
        conn.executescript(ledger_index._SCHEMA)
        build = ledger_index._Builder(conn)
        build.add_chunk(line)
        build.finish()
        ev = ledger._decode_line(line)
        assert build.skipped == (ev is None), line
        oracle = ledger_index._Aggregates()
        if ev is not None:
            oracle.add(ev)
        got = build.agg
        assert (got.units, got.pairs, got.arm_units, got.events) == (oracle.units, oracle.pairs, oracle.arm_units,
                                                                     oracle.events), line  # exact sums: bit for bit
    g = Git(repo)
    for i in range(0, len(lines), 5):
        _commit(repo, f"edge{i}")
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"\n".join(lines[i : i + 5]),
                              capture_output=True, check=True).stdout.decode().strip()  # fmt: skip
        git(repo, "notes", "--ref=experiments", "add", "-f", "-C", blob, "HEAD")
    ledger_index._remove(ledger_index.index_path(g))
    assert_index_equals_notes(g)
    assert ledger.read(g, cache=False).skipped >= 15


def _cached(g: Git) -> list[tuple[str, str, str]]:
    with sqlite3.connect(ledger_index.index_path(g)) as conn:
        return sorted(conn.execute("SELECT exp, metric, setting FROM orders").fetchall())


def test_order_statistics_are_cached_until_the_experiments_units_change(repo: Path) -> None:
    g = Git(repo)
    ledger.append(g, [e for i in range(6) for e in _varied(i)] + _varied(1, "exp-2"))
    read = lambda index: index.orders("exp-1", "t", alpha=0.05, log_scale=False)  # noqa: E731
    first = ledger_index.read_with(g, read)
    assert _cached(g) == [("exp-1", "t", "0.05:0")]
    with sqlite3.connect(ledger_index.index_path(g)) as conn:  # what a later read returns comes from the cache
        doc = json.loads(conn.execute("SELECT doc FROM orders").fetchone()[0])
        doc[0][1] = 123.0
        conn.execute("UPDATE orders SET doc=?", (json.dumps(doc),))
    assert ledger_index.read_with(g, read).control.median == 123.0
    ledger.append(g, [_trial("exp-2", 7.0)])  # another experiment's trial: exp-1's cache stays
    assert ledger_index.read_with(g, read).control.median == 123.0
    ledger.append(g, [_trial("exp-1", 7.0, unit="u-new")])  # a new unit of exp-1: computed again
    units = collect_units(ledger.read(g, cache=False).events, "exp-1", "t")
    expected = orders_of(units.control, units.treatment, alpha=0.05, log_scale=False)
    assert ledger_index.read_with(g, read) == expected and first != expected
    for garbage in ("{]", "[1, 2]", '[[1, 2, 3, "x"], null, 5]', "null"):  # a damaged cache is computed again
        with sqlite3.connect(ledger_index.index_path(g)) as conn:
            conn.execute("UPDATE orders SET doc=?", (garbage,))
        assert ledger_index.read_with(g, read) == expected


def test_a_reader_does_not_cache_what_a_writer_made_stale(repo: Path) -> None:
    g = Git(repo)
    ledger.append(g, [e for i in range(4) for e in _varied(i)])
    index = ledger_index.open_index(g)
    try:
        index.orders("exp-1", "t", alpha=0.05, log_scale=False)  # computed from this snapshot
        ledger.append(g, [_trial("exp-1", 9.0, unit="u-late")])
        ledger_index.open_index(g).close()  # a writer brings the index forward meanwhile
        index.save_computed()
    finally:
        index.close()
    assert _cached(g) == []
    assert_index_equals_notes(g)


def _chunk_lines() -> list[bytes]:
    """Note lines as a ledger holds them: canonical trials of two experiments (pairs, machines, failures, a value
    whose sum depends on the order), assignments, copies (the same line again, and the same id with other
    content), padded, blank and CRLF lines, lines only the exact path reads, lines nothing reads."""
    lines: list[bytes] = []
    for i in range(40):
        exp = EXPS[i % 7 % 2]
        for ev in _varied(i, exp):
            lines.append(ledger.encode(ev).encode())
        if i % 3 == 0:
            lines.append(lines[-2])  # a copy (amend, rebase)
        if i % 5 == 0:
            lines.append(b"")
    first = ledger.encode(_trial(value=7.0, unit="u-other"))
    lines += [first.encode(), ledger.encode({**json.loads(first), "value": 8.0}).encode(),  # same id: first kept
              b"  " + ledger.encode(_trial(value=2.5)).encode() + b"\r", b"\t",
              json.dumps(_trial(value=3.25), sort_keys=False).encode(),  # valid, not canonical
              ledger.encode(_trial(unit="caf\u00e9")).encode(), ledger.encode(_trial(ts="never")).encode(),
              b'{"v":1,"id":"z"}', b"not json"]  # fmt: skip
    return lines


@pytest.mark.parametrize("json_runs", [True, False])
@pytest.mark.parametrize("cuts", [(), (1,), (3, 50, 51, 120), tuple(range(0, 260, 7))])
def test_cold_build_of_chunks_equals_a_line_by_line_read(cuts: tuple[int, ...], json_runs: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """However the notes fall into chunks, a build from scratch keeps what a line-by-line read keeps: the first
    copy of each id (the others counted), every skipped line counted, the same aggregates bit for bit, each
    event's line in its experiment's segment of its type — with SQLite's JSON functions, and without (before
    3.38)."""
    monkeypatch.setattr(ledger_index, "JSON_RUNS", json_runs)
    lines = _chunk_lines()
    oracle = ledger_index._Aggregates()
    kept: dict[str, list[Any]] = {}  # id -> [event, copies]
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        ev = ledger._decode_line(line.strip())
        if ev is None:
            skipped += 1
        elif ev["id"] in kept:
            kept[ev["id"]][1] += 1
        else:
            kept[ev["id"]] = [ev, 1]
            oracle.add(ev)
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.executescript(ledger_index._SCHEMA)
    build = ledger_index._Builder(conn)
    for a, b in itertools.pairwise([0, *cuts, len(lines)]):
        build.add_chunk(b"\n".join(lines[a:b]))
    build.finish()
    assert build.skipped == skipped >= 3
    got = build.agg
    assert (got.units, got.pairs, got.arm_units, got.events) == (oracle.units, oracle.pairs, oracle.arm_units,
                                                                 oracle.events)  # fmt: skip
    rows = conn.execute("SELECT e.id, e.copies, s.exp, s.type, s.lines FROM events e JOIN segments s USING(seg)")
    table = {key: (copies, exp, type_, segment.split(b"\n")) for key, copies, exp, type_, segment in rows}
    assert set(table) == set(kept)
    for key, (ev, copies) in kept.items():
        assert table[key][:3] == (copies, ev["exp"], ev["type"])
        assert [json.loads(line)["id"] for line in table[key][3]].count(key) == 1
    segment_lines = [line for (seg,) in conn.execute("SELECT lines FROM segments") for line in seg.split(b"\n")]
    assert len(segment_lines) == len(kept)


def test_a_failed_insert_of_a_cold_build_fails_the_build() -> None:
    """The inserts run on a thread of their own: an error there is raised where the build runs, nothing hangs."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)  # no tables: inserts fail
    build = ledger_index._Builder(conn)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        for i in range(8):  # more chunks than the writer's queue holds
            build.add_chunk(b"\n".join(ledger.encode(ev).encode() for ev in _varied(i)))
        build.finish()
    build.writer.close(check=False)
    assert not build.writer.thread.is_alive()
