"""Faults with real processes and real signals: kill -9 mid-append, stale locks, reads during appends."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from benchmarks.ledger_scale import build_ledger
from experiment_core.gitio import Git
from experiment_core.store import ledger, refs
from tests.conftest import PROJECT, cli_env

APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from experiment_core.store import ledger
    from experiment_core.gitio import Git
    g, log = Git(Path(sys.argv[1])), Path(sys.argv[2])
    i = 0
    while True:
        event = ledger.make_event("trial", "exp-1", arm="control", metric="t", value=float(i), unit="k")
        ledger.append(g, [event])
        with open(log, "a") as f:  # logged only once the append returned
            f.write(event["id"] + "\\n")
        i += 1
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from experiment_core.store import ledger
    from experiment_core.gitio import Git
    with ledger.ledger_lock(Git(Path(sys.argv[1]))):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def one_event(value: float = 0.0) -> ledger.Event:
    return ledger.make_event("trial", "exp-1", arm="treatment", metric="t", value=value, unit="after")


def spawn(*args: str, log: Path | None = None, **kw: object) -> subprocess.Popen[bytes]:
    # its own process group, so `kill -9` takes the git child (mid `git notes append`) down with it
    return subprocess.Popen([sys.executable, "-c", *args], env=cli_env(), cwd=PROJECT, start_new_session=True,
                            **kw)  # type: ignore[call-overload]  # fmt: skip


def test_kill_9_mid_append_leaves_a_readable_ledger_and_a_usable_lock(repo: Path, tmp_path: Path) -> None:
    g = Git(repo)
    log = tmp_path / "log"
    log.touch()
    rnd = random.Random(6)
    for _ in range(6):
        proc = spawn(APPENDER, str(repo), str(log))
        time.sleep(0.25 + rnd.random() * 0.3)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        read = ledger.read(g, cache=False)
        assert read.skipped == 0
        got = {e["id"] for e in read.events}
        assert set(log.read_text().split()) <= got  # every append that returned is there
        start = time.monotonic()
        ledger.append(g, [one_event()])  # the lock is usable (at worst after a stale ref lock turns old)
        assert time.monotonic() - start < ledger.STALE_REF_LOCK_SECONDS + 3
    assert len(log.read_text().split()) > 6
    fsck = subprocess.run(["git", "fsck", "--no-dangling", "--no-progress"], cwd=repo, capture_output=True)
    assert fsck.returncode == 0, fsck.stderr  # the object store is sound too


def test_stale_ref_lock_is_recovered(repo: Path) -> None:
    g = Git(repo)
    ledger.append(g, [one_event(1)])
    lock = g.common_dir / (refs.exp_ref("exp-1") + ".lock")  # one_event's experiment's ref
    lock.write_text("left by a git killed mid-update\n")
    old = time.time() - 600
    os.utime(lock, (old, old))
    ledger.append(g, [one_event(2)])
    assert not lock.exists()
    # a young lock (maybe a live amend copying notes) is waited for, then treated as stale
    lock.write_text("young\n")
    start = time.monotonic()
    ledger.append(g, [one_event(3)])
    assert ledger.STALE_REF_LOCK_SECONDS - 0.5 < time.monotonic() - start < ledger.STALE_REF_LOCK_SECONDS + 5
    assert sorted(e["value"] for e in ledger.read(g).events) == [1, 2, 3]


def test_flock_of_a_killed_holder_is_released(repo: Path) -> None:
    g = Git(repo)
    holder = spawn(HOLDER, str(repo), stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    blocked = spawn(textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from experiment_core.store import ledger
        from experiment_core.gitio import Git
        ledger.append(Git(Path(sys.argv[1])), [ledger.make_event("trial", "exp-1", arm="control", metric="t",
                                                                  value=1.0, unit="w")])
        """), str(repo))  # fmt: skip
    time.sleep(0.5)
    assert blocked.poll() is None  # waiting on the live holder
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    assert blocked.wait(timeout=10) == 0  # the kernel dropped the dead holder's lock
    assert len(ledger.read(g).events) == 1


def test_full_read_survives_concurrent_appends(repo: Path, tmp_path: Path) -> None:
    g = Git(repo)
    base = set(build_ledger(repo, 20000, per_note=1))
    log = tmp_path / "log"
    log.touch()
    writer = spawn(APPENDER, str(repo), str(log))
    try:
        previous = len(base)
        for _ in range(6):
            done_before = set(log.read_text().split())
            read = ledger.read(g, cache=False)
            got = {e["id"] for e in read.events}
            assert read.skipped == 0
            assert base | done_before <= got  # a consistent snapshot: nothing that was there is missing
            assert len(got) >= previous
            previous = len(got)
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    assert len(log.read_text().split()) > 0


INTERRUPTED_CHECKOUT = """
    import os, signal, sys, threading
    from pathlib import Path
    from experiment_core.gitio import Git
    threading.Timer(0.4, lambda: os.kill(os.getpid(), signal.SIGINT)).start()  # Ctrl-C while git works
    Git(Path(sys.argv[1])).run("checkout", "--", "slow.txt")
"""


def test_an_interrupt_lets_a_running_git_finish_instead_of_leaving_its_lock(repo: Path) -> None:
    """A Ctrl-C (or SIGTERM) of ours used to kill the git child a quarter second later (subprocess's way), and a
    killed ``git checkout`` leaves ``index.lock``: the restore after an interrupted ``run`` then failed."""
    from tests.conftest import git

    (repo / ".gitattributes").write_text("slow.txt filter=slow\n")
    (repo / "slow.txt").write_text("content\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "slow")
    git(repo, "config", "filter.slow.smudge", "sleep 1.5; cat")
    (repo / "slow.txt").write_text("changed\n")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(INTERRUPTED_CHECKOUT), str(repo)],
                          capture_output=True, text=True, env=cli_env())  # fmt: skip
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    assert not (repo / ".git" / "index.lock").exists()
    assert (repo / "slow.txt").read_text() == "content\n"  # git finished its checkout
    git(repo, "checkout", "--", "slow.txt")  # and the next git command works
