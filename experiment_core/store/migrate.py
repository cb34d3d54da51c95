"""The legacy ledger ref's events copied into per-experiment refs: ``experiment-hook migrate``, and every sync.

Clones before 0.3 wrote every event to ``refs/notes/experiments``; a team upgrades one clone at a time, so old
clones keep writing there. Readers read that ref as part of the ledger anyway (:mod:`.refs`); this copies each of
its valid events into its experiment's ref, on the same commit, so that each experiment's history is in its own
ref. A copy is a line added to a note that does not hold it yet (the note's lines are joined, sorted and unique,
as ``cat_sort_uniq`` joins them): running it again adds nothing, two clones copying the same events merge to the
same notes, and readers deduplicate by id, so nothing is counted twice. Lines that do not validate stay where they
are (readers still skip and count them once).

Only what changed in the legacy ref since the last copy is read (``diff-tree`` from the commit recorded in
``$GIT_COMMON_DIR/experiment-hook/ledger-migrated``); every per-experiment ref touched gets one commit, all from
one ``git fast-import`` (notes on commits this clone does not have are copied too: paths, not ``N`` commands).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git, GitError
from experiment_core.hookenv import STATE_DIR
from experiment_core.store import ledger, refs

MARK = "ledger-migrated"
_IDENT = b"experiment-hook <experiment-hook@localhost>"


@dataclass
class Migrated:
    copied: int = 0  # event lines added to per-experiment notes
    refs: list[str] = field(default_factory=list)  # the refs that got a commit


def migrate(git: Git, legacy: str | bool | None = True) -> Migrated:
    """Copy the legacy ref's events not copied yet into their experiments' refs (under the ledger lock).
    ``legacy``: the legacy ref's commit when the caller knows it (None: no such ref), True: look it up."""
    if legacy is True:
        legacy = git.ref(refs.LEGACY)
    mark = git.common_dir / STATE_DIR / MARK
    if not isinstance(legacy, str) or _read_mark(mark) == legacy:
        return Migrated()
    with ledger.ledger_lock(git):
        legacy = git.ref(refs.LEGACY)
        if legacy is None:
            return Migrated()
        wanted = _legacy_lines(git, _read_mark(mark), legacy)
        result = _write(git, wanted)
        atomic_write_text(mark, legacy + "\n")
    return result


def _read_mark(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _legacy_lines(git: Git, done: str | None, legacy: str) -> dict[str, dict[str, set[bytes]]]:
    """{experiment ref: {annotated commit: valid event lines}} of the legacy notes added or changed since
    ``done`` (all of them when ``done`` is unknown)."""
    notes = _listing(git, done, legacy)
    blobs = git.cat_batch(blob for _path, blob in notes)
    wanted: dict[str, dict[str, set[bytes]]] = {}
    for (path, _blob), body in zip(notes, blobs, strict=True):
        if body is None:
            continue
        good, _bad = ledger.decode_lines(ledger._split_lines(body))
        commit = path.replace("/", "")
        for event, line in good:
            wanted.setdefault(refs.exp_ref(event["exp"]), {}).setdefault(commit, set()).add(line)
    return wanted


def _listing(git: Git, done: str | None, legacy: str) -> list[tuple[str, str]]:
    """(path, blob) of the notes of ``legacy`` that ``done`` did not have as they are."""
    if done is not None:
        try:
            raw = git.run("diff-tree", "-r", "--no-renames", "--no-commit-id", "--diff-filter=AM", done, legacy)
        except GitError:
            raw = None
        if raw is not None:
            out = []
            for entry in raw.decode("utf-8", "replace").splitlines():
                meta, _, path = entry.partition("\t")
                parts = meta.split()
                if len(parts) == 5 and parts[1] != "160000":
                    out.append((path, parts[3]))
            return out
    listing = git.run("ls-tree", "-r", legacy).decode("utf-8", "replace")
    return [(path, meta.split()[2]) for meta, _, path in (line.partition("\t") for line in listing.splitlines())
            if len(meta.split()) == 3 and meta.split()[1] == "blob"]  # fmt: skip


def _write(git: Git, wanted: dict[str, dict[str, set[bytes]]]) -> Migrated:
    """One commit per experiment ref whose notes gain lines, all through one ``git fast-import``."""
    if not wanted:
        return Migrated()
    tips = refs.tips(git)
    existing = {ref: _notes_of(git, tips[ref]) for ref in wanted if ref in tips}
    need = [blob for ref, notes in existing.items() for commit, (_p, blob) in notes.items() if commit in wanted[ref]]
    bodies = dict(zip(need, git.cat_batch(need), strict=True))
    result = Migrated()
    stream: list[bytes] = []
    now = int(time.time())
    for ref, by_commit in sorted(wanted.items()):
        notes = existing.get(ref, {})
        depth = _depth(notes, len(by_commit))
        changes: list[bytes] = []
        for commit, lines in sorted(by_commit.items()):
            path, blob = notes.get(commit, (_path(commit, depth), ""))
            have = set(ledger._split_lines(bodies.get(blob) or b"")) if blob else set()
            if lines <= have:
                continue
            result.copied += len(lines - have)
            body = b"".join(line + b"\n" for line in sorted(have | lines))
            changes.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(body), body))
        if not changes:
            continue
        msg = b"experiment-hook migrate: events of refs/notes/experiments\n"
        stream.append(b"commit %s\ncommitter %s %d +0000\ndata %d\n%s" % (ref.encode(), _IDENT, now, len(msg), msg))
        if ref in tips:
            stream.append(b"from %s\n" % tips[ref].encode())
        stream += changes
        stream.append(b"\n")
        result.refs.append(ref)
    if stream:
        git.run("fast-import", "--quiet", input=b"".join(stream))
    return result


def _notes_of(git: Git, tip: str) -> dict[str, tuple[str, str]]:
    """{annotated commit: (path, blob)} of a notes commit."""
    listing = git.run("ls-tree", "-r", tip).decode("utf-8", "replace")
    out = {}
    for meta, _, path in (line.partition("\t") for line in listing.splitlines()):
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            out[path.replace("/", "")] = (path, parts[2])
    return out


def _depth(notes: dict[str, tuple[str, str]], adding: int) -> int:
    """The fanout of a notes tree (directories of two hex digits), as git reads any: the existing notes', else one
    level once there are more than 256 notes."""
    for path, _blob in notes.values():
        return path.count("/")
    return 1 if adding > 256 else 0


def _path(commit: str, depth: int) -> str:
    return "".join(commit[2 * i : 2 * i + 2] + "/" for i in range(depth)) + commit[2 * depth :]
