"""Team scale: three clones recording concurrently and syncing at random moments; worktrees share the ledger."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from experiment_core.gitio import Git
from experiment_core.state import state_dir
from experiment_core.store import ledger, ledger_index, refs, sync
from tests.conftest import PROJECT, cli_env, git

WRITER = textwrap.dedent(
    """
    import random, sys, time
    from pathlib import Path
    from experiment_core.store import ledger
    from experiment_core.gitio import Git
    repo, tag, count, log = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    g = Git(repo)
    rnd = random.Random(tag)
    for i in range(count):
        batch = [ledger.make_event("trial", "exp-1", arm=rnd.choice(["control", "treatment"]), metric="t",
                                   value=float(i), unit=f"{tag}-{i}-{j}") for j in range(rnd.randint(1, 3))]
        ledger.append(g, batch)
        with open(log, "a") as f:  # logged only once the append returned
            f.write("".join(e["id"] + "\\n" for e in batch))
        time.sleep(rnd.random() * 0.02)
    """
)

SYNCER = textwrap.dedent(
    """
    import random, sys, time
    from pathlib import Path
    from experiment_core.store import sync
    from experiment_core.errors import UserError
    from experiment_core.gitio import Git
    repo, rounds, seed = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rnd = random.Random(seed)
    attempts = []
    for _ in range(rounds):
        time.sleep(rnd.random() * 0.3)
        try:
            attempts.append(sync.sync(Git(repo), "origin").attempts)
        except UserError:
            attempts.append(-1)  # gave up this time: the next sync catches up
    print(max(attempts))
    """
)


def raw_id_counts(repo: Path) -> Counter[str]:
    """Every event line in every note blob, counted by id (no dedup: this is what a duplicate would show)."""
    counts: Counter[str] = Counter()
    g = Git(repo)
    for blob in ledger._iter_note_blobs(g, list(refs.tips(g).values())):
        events, skipped = ledger.decode(blob)
        assert skipped == 0
        counts.update(e["id"] for e in events)
    return counts


def test_three_clones_recording_and_syncing_concurrently(clones: tuple[Path, list[Path]], tmp_path: Path) -> None:
    remote, repos = clones
    writers_per_clone, appends_each = 3, 12
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    for c, repo in enumerate(repos):
        for w in range(writers_per_clone):
            log = tmp_path / f"log-{c}-{w}"
            log.touch()
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, "-c", WRITER, str(repo), f"c{c}w{w}", str(appends_each),
                                           str(log)], env=cli_env(), cwd=PROJECT))  # fmt: skip
    syncers = [subprocess.Popen([sys.executable, "-c", SYNCER, str(repo), "4", f"s{c}"], env=cli_env(), cwd=PROJECT,
                                stdout=subprocess.PIPE) for c, repo in enumerate(repos)]  # fmt: skip
    for p in procs:
        assert p.wait(timeout=240) == 0
    for s in syncers:
        out, _ = s.communicate(timeout=240)
        assert s.returncode == 0
        print("most sync attempts in one call:", out.decode().strip())
    written = [line for log in logs for line in log.read_text().split()]
    assert len(written) == len(set(written)) >= writers_per_clone * appends_each * len(repos)
    # quiet round: a, b, c, then a and b again, so everyone has everyone's records
    for repo in repos + repos[:2]:
        sync.sync(Git(repo), "origin")
    want = sorted(written)
    for repo in [*repos, remote]:
        got = ledger.read(Git(repo), cache=False)
        assert got.skipped == 0
        assert sorted(e["id"] for e in got.events) == want, repo  # no loss
        counts = raw_id_counts(repo)
        assert set(counts) == set(want) and max(counts.values()) == 1, repo  # no duplicate line anywhere


def test_worktrees_share_the_ledger_but_not_local_state(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "wt2"
    git(repo, "worktree", "add", "-q", "-b", "side", str(other))
    main_g, side_g = Git(repo), Git(other)
    assert state_dir(main_g) != state_dir(side_g)
    assert state_dir(side_g).is_relative_to(main_g.common_dir / "worktrees")
    assert main_g.common_dir.resolve() == side_g.common_dir.resolve()
    first = ledger.make_event("trial", "exp-1", arm="control", metric="t", value=1.0, unit="main")
    ledger.append(main_g, [first])
    assert [e["id"] for e in ledger.read(side_g).events] == [first["id"]]  # one ledger for both
    assert ledger_index.index_path(side_g) == ledger_index.index_path(main_g)  # one index per clone
    assert ledger_index.index_path(main_g).exists()
    # concurrent writers in both worktrees serialize on the lock in the common dir: nothing lost
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from experiment_core.store import ledger
        from experiment_core.gitio import Git
        g = Git(Path(sys.argv[1]))
        for i in range(10):
            ledger.append(g, [ledger.make_event("trial", "exp-1", arm="control", metric="t", value=float(i),
                                                unit=sys.argv[2])])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), f"{path.name}-{k}"], env=cli_env(),
                              cwd=PROJECT) for path in (repo, other) for k in range(3)]  # fmt: skip
    assert all(p.wait(timeout=120) == 0 for p in procs)
    for g in (main_g, side_g):
        read = ledger.read(g)  # the index is brought forward by whichever worktree reads first
        assert len(read.events) == 61 and read.skipped == 0
    # a worktree's own HEAD carries its notes, the other worktree still reads them
    (other / "f").write_text("x")
    git(other, "add", "f")
    git(other, "commit", "-qm", "side commit")
    ledger.append(side_g, [ledger.make_event("trial", "exp-1", arm="treatment", metric="t", value=2.0, unit="s")])
    assert len(ledger.read(main_g).events) == 62
    assert git(other, "notes", "--ref=experiments-exp-1", "list", "HEAD").strip()
    assert git(repo, "notes", "--ref=experiments-exp-1", "list", "HEAD").strip()
