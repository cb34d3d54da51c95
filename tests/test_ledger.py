"""The git-notes ledger: append/read, no loss under concurrency, garbage skipped and counted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from experiment_core.gitio import Git
from experiment_core.store import ledger, ledger_index, refs
from tests.conftest import PROJECT, cli_env, git


def _trial(exp: str = "exp-1", value: float = 1.0, arm: str = "control") -> ledger.Event:
    return ledger.make_event("trial", exp, arm=arm, metric="t", value=value, unit="u1", exit_code=0, commit=None)


def test_append_then_read_round_trip(repo: Path) -> None:
    g = Git(repo)
    events = [_trial(value=v) for v in (1.5, 2.5, 3.5)]
    assert ledger.append(g, events) == 3
    ledger.append(g, [_trial(value=9.0)])
    read = ledger.read(g)
    assert read.skipped == 0
    assert sorted(e["value"] for e in read.events) == [1.5, 2.5, 3.5, 9.0]
    assert {e["id"] for e in events} <= {e["id"] for e in read.events}
    # stored where the user can see it, one JSON object per line, on a real commit
    note = git(repo, "notes", "--ref", "experiments-exp-1", "show", "HEAD")  # the experiment's own ref
    assert sum(1 for line in note.splitlines() if line.startswith("{")) == 4
    tip = git(repo, "rev-parse", "refs/notes/experiments-exp-1").strip()
    assert refs.tips(g) == {"refs/notes/experiments-exp-1": tip}
    assert read.notes_commit == refs.token(refs.tips(g))
    ledger.append(g, [_trial("exp-2"), _trial("exp-1", value=7.0)])  # one append, two experiments: two refs
    assert len(git(repo, "notes", "--ref", "experiments-exp-2", "list").split()) == 2
    assert sorted(e["value"] for e in ledger.read(g).events) == [1.0, 1.5, 2.5, 3.5, 7.0, 9.0]


COUNT_PROCESSES = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from experiment_core.store import ledger
    from experiment_core.gitio import Git
    g = Git(Path(sys.argv[1]))
    g.common_dir, g.git_path("experiment-hook")  # path lookups are cached per Git: not part of a read
    started = []
    sys.addaudithook(lambda event, args: started.append(args[1]) if event == "subprocess.Popen" else None)
    read = ledger.read(g, cache=sys.argv[2] == "cache")
    print(len(read.events), len(started), " ".join(a[1] for a in started))
    """
)


def _processes_of_a_read(repo: Path, mode: str) -> tuple[int, int, str]:
    out = subprocess.run([sys.executable, "-c", COUNT_PROCESSES, str(repo), mode], env=cli_env(), cwd=PROJECT,
                         capture_output=True, text=True, check=True).stdout.split(maxsplit=2)  # fmt: skip
    return int(out[0]), int(out[1]), out[2].strip() if len(out) > 2 else ""


def test_read_uses_constant_number_of_git_processes(repo: Path) -> None:
    g = Git(repo)
    for i in range(15):
        (repo / "f").write_text(str(i))
        git(repo, "add", "f")
        git(repo, "commit", "-qm", f"c{i}")
        ledger.append(g, [_trial(value=float(i))])
    assert _processes_of_a_read(repo, "cold") == (15, 3, "for-each-ref cat-file ls-tree")  # never one per note
    assert _processes_of_a_read(repo, "cache")[:2] == (15, 3)  # first read builds the index
    assert _processes_of_a_read(repo, "cache") == (15, 1, "for-each-ref")  # warm: no notes commit moved
    ledger.append(g, [_trial(value=99.0)])
    assert _processes_of_a_read(repo, "cache") == (16, 3, "for-each-ref diff-tree cat-file")  # only what changed
    ledger.append(g, [_trial("exp-2", value=98.0)])  # a new experiment's ref: diffed against the empty tree
    assert _processes_of_a_read(repo, "cache") == (17, 3, "for-each-ref diff-tree cat-file")
    git(repo, "notes", "--ref=experiments", "append", "-m", ledger.encode(_trial("exp-3")), "HEAD")  # a 0.2 clone
    assert _processes_of_a_read(repo, "cold") == (18, 5, "for-each-ref cat-file ls-tree ls-tree ls-tree")
    assert _processes_of_a_read(repo, "cache") == (18, 3, "for-each-ref diff-tree cat-file")


def test_amend_carries_notes_and_readers_dedup(repo: Path) -> None:
    g = Git(repo)
    ledger.ensure_config(g)
    ledger.ensure_config(g)  # idempotent
    assert git(repo, "config", "--get-all", "notes.rewriteRef").split() == ["refs/notes/experiments",
                                                                           "refs/notes/experiments-*"]  # a glob
    ev = _trial()
    ledger.append(g, [ev])
    git(repo, "commit", "--amend", "-qm", "amended")
    assert ev["id"] in git(repo, "notes", "--ref=experiments-exp-1", "show", "HEAD")  # copied to the new commit
    read = ledger.read(g)
    assert [e["id"] for e in read.events] == [ev["id"]]  # two copies in notes, one event


GARBAGE = [
    b"not json at all",
    b'{"v":1,"id":"x1","type":"trial","exp":"exp-1","ts":"2026-01-01T00:00:00Z","arm":"control",'
    b'"metric":"t","value":NaN,"unit":"u"}',
    b'{"v":1,"id":"x2","type":"trial","exp":"exp-1","ts":"2026-01-01T00:00:00Z","arm":"control",'
    b'"metric":"t","value":"12","unit":"u"}',
    b'{"v":1,"id":"x3","type":"trial","exp":"exp-1","ts":"2026-01-01T00:00:00Z","arm":"sideways",'
    b'"metric":"t","value":1,"unit":"u"}',
    b'{"v":1,"id":"x4","type":"mystery","exp":"exp-1","ts":"2026-01-01T00:00:00Z"}',
    b'{"v":1,"id":"x5","type":"trial","exp":"../etc","ts":"2026-01-01T00:00:00Z","arm":"control",'
    b'"metric":"t","value":1,"unit":"u"}',
    b"\xff\xfe\x00 binary",
    b"[1, 2, 3]",
    b'{"v":1,"id":"x6","type":"trial","exp":"exp-1","ts":"yesterday","arm":"control","metric":"t","value":1,"unit":"u"}',
    b"{" * 100000,
    b'{"v":1,"id":"x7","type":"trial","exp":"exp-1","ts":"2026-01-01T00:00:00Z","arm":"control",'
    b'"metric":"t","value":1e999,"unit":"u"}',
]


def test_garbage_lines_are_skipped_and_counted(repo: Path) -> None:
    g = Git(repo)
    good = _trial(value=4.0)
    ledger.append(g, [good])
    blob = b"\n".join(GARBAGE) + b"\n" + ledger.encode(_trial(value=5.0)).encode() + b"\n"
    git_blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=blob, capture_output=True,
                              check=True).stdout.decode().strip()  # fmt: skip
    git(repo, "notes", "--ref=experiments", "append", "-C", git_blob, "HEAD")
    read = ledger.read(g)
    assert read.skipped == len(GARBAGE)
    assert sorted(e["value"] for e in read.events) == [4.0, 5.0]


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from experiment_core.store import ledger
    from experiment_core.gitio import Git
    g = Git(Path(sys.argv[1]))
    for i in range(int(sys.argv[3])):
        ledger.append(g, [ledger.make_event("trial", "exp-1", arm="control", metric="t", value=float(i),
                                            unit=sys.argv[2], exit_code=0, commit=None)])
    """
)


def test_twenty_concurrent_writers_lose_nothing(repo: Path) -> None:
    writers, each = 20, 10
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(repo), f"w{w}", str(each)], env=cli_env(), cwd=PROJECT)
        for w in range(writers)
    ]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    read = ledger.read(Git(repo))
    assert read.skipped == 0
    assert len(read.events) == writers * each
    assert len({e["id"] for e in read.events}) == writers * each
    for w in range(writers):
        assert sorted(e["value"] for e in read.events if e["unit"] == f"w{w}") == [float(i) for i in range(each)]


def test_invalid_events_are_never_written(repo: Path) -> None:
    g = Git(repo)
    bad = _trial()
    bad["value"] = float("nan")
    try:
        ledger.append(g, [bad])
    except ValueError:
        pass
    else:
        raise AssertionError("NaN event was accepted")
    assert refs.tips(g) == {}


def _same_as_cold(g: Git) -> ledger.LedgerRead:
    warm = ledger.read(g)
    cold = ledger.read(g, cache=False)
    assert sorted(e["id"] for e in warm.events) == sorted(e["id"] for e in cold.events)
    assert warm.skipped == cold.skipped and warm.notes_commit == cold.notes_commit
    assert [e["ts"] for e in warm.events] == sorted(e["ts"] for e in warm.events)
    return warm


def test_cache_follows_every_kind_of_ledger_change(repo: Path) -> None:
    g = Git(repo)
    ledger.ensure_config(g)
    ledger.append(g, [_trial(value=1.0)])
    first = _same_as_cold(g)
    first_commit = git(repo, "rev-parse", refs.exp_ref("exp-1")).strip()
    assert ledger_index.index_path(g).exists()
    assert ledger.read(g).events == first.events  # same commit: served from the index
    ledger.append(g, [_trial(value=2.0)])  # a note grows
    _same_as_cold(g)
    (repo / "f").write_text("1")
    git(repo, "add", "f")
    git(repo, "commit", "-qm", "next")
    ledger.append(g, [_trial(value=3.0)])  # a new note
    _same_as_cold(g)
    git(repo, "commit", "--amend", "-qm", "amended")  # the note is copied: same ids twice
    assert len(_same_as_cold(g).events) == 3
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"garbage\n\xff\n",
                          capture_output=True, check=True).stdout.decode().strip()  # fmt: skip
    git(repo, "notes", "--ref=experiments-exp-1", "append", "-C", blob, "HEAD")
    assert _same_as_cold(g).skipped == 2
    git(repo, "notes", "--ref=experiments-exp-1", "remove", "HEAD")  # garbage and the amended copy go
    after_remove = _same_as_cold(g)
    assert after_remove.skipped == 0 and len(after_remove.events) == 3  # the pre-amend commit still has one
    git(repo, "notes", "--ref=experiments-exp-1", "remove", "HEAD~1")
    assert len(_same_as_cold(g).events) == 1
    git(repo, "update-ref", refs.exp_ref("exp-1"), first_commit)  # rewound: diff runs backwards
    assert len(_same_as_cold(g).events) == 1


def test_epoch_seconds_is_datetimes_timestamp_bit_for_bit() -> None:
    """The cold index build's fast reading of the ledger's time form against ``datetime`` as the oracle."""
    import random

    from experiment_core.clock import epoch_seconds, parse_ts

    rng = random.Random(18)
    texts = ["2026-12-04T23:59:59.999999Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.000001Z",
             "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z",
             "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z", "2026-01-01T00:00:00.12345Z", "2026-01-01 00:00:00Z",
             "2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00", "2026-01-01T0٣:00:00Z", "20260101T000000Z",
             "2026/01/01T00:00:00Z", "", "never", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"]  # fmt: skip
    for _ in range(3000):
        texts.append(f"{rng.randint(1, 9999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}T"
                     f"{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}:{rng.randint(0, 61):02d}"
                     + rng.choice(["Z", f".{rng.randint(0, 999999):06d}Z", f".{rng.randint(0, 99):02d}Z"]))  # fmt: skip
    for text in texts:
        moment = parse_ts(text)
        expected = None if moment is None else moment.timestamp()
        assert epoch_seconds(text) == expected, text
