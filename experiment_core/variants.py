"""Control and treatment content of an experiment's files: backups as git blobs, the variant bytes, and putting a
variant into the work tree (and back) without git ever seeing the swap (skip-worktree set before the write).

Control in the work tree is the *committed* content (the index blob), so that restoring it leaves ``git status``
clean even when the file changed since the experiment was created; the backup blob is the content at creation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git

BACKUP_REFS = "refs/experiments/backups"
KEPT_REFS = "refs/experiments/kept"


def backup_ref(exp_id: str, index: int) -> str:
    return f"{BACKUP_REFS}/{exp_id}/{index}"


def backup_targets(git: Git, exp_id: str, targets: list[str]) -> dict[str, str]:
    """Store each target's current content as a blob, kept alive by a ref; return target -> blob id."""
    backups: dict[str, str] = {}
    for index, target in enumerate(targets):
        blob = git.hash_object((git.root / target).read_bytes())
        git.update_ref(backup_ref(exp_id, index), blob, message=f"experiment-hook: backup of {target}")
        backups[target] = blob
    return backups


# ---- content ids ---------------------------------------------------------------------------------------
def blob_id(data: bytes, like: str = "") -> str:
    """git's blob id of ``data`` computed in-process (no git process): SHA-1, or SHA-256 when ``like`` is a
    64-character id from a SHA-256 repository. Equal to ``git hash-object`` for the same object format."""
    header = b"blob %d\0" % len(data)
    h = hashlib.sha256() if len(like) == 64 else hashlib.sha1()
    h.update(header)
    h.update(data)
    return h.hexdigest()


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


# ---- the index: blob ids and skip-worktree bits ---------------------------------------------------------
@dataclass(frozen=True)
class IndexEntry:
    path: str
    blob: str
    mode: str
    skip_worktree: bool
    stage: int


def parse_ls_files(text: str) -> dict[str, IndexEntry]:
    """Parse ``git ls-files -s -v -z`` output: ``TAG MODE BLOB STAGE\\tPATH``; tag ``S`` = skip-worktree."""
    entries: dict[str, IndexEntry] = {}
    for record in text.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        parts = meta.split()
        if len(parts) != 4:
            continue
        tag, mode, blob, stage = parts
        entry = IndexEntry(path, blob, mode, tag.upper() == "S", int(stage))
        if path not in entries or entry.stage == 0:
            entries[path] = entry
    return entries


def index_entries(git: Git, paths: Iterable[str]) -> dict[str, IndexEntry]:
    """The index entries of ``paths`` (one git process); an untracked path is absent from the result."""
    names = sorted(set(paths))
    if not names:
        return {}
    out = git.run("ls-files", "-s", "-v", "-z", "--", *names).decode("utf-8", "surrogateescape")
    return parse_ls_files(out)


def set_skip_worktree(git: Git, paths: Iterable[str], on: bool) -> None:
    names = sorted(set(paths))
    if names:
        git.run("update-index", "--skip-worktree" if on else "--no-skip-worktree", "--", *names)


def keep_copy(git: Git, exp_id: str, data: bytes) -> str:
    """Store ``data`` as a blob kept alive by ``refs/experiments/kept/<exp>/<blob>``; return the blob id."""
    blob = git.hash_object(data)
    git.update_ref(f"{KEPT_REFS}/{exp_id}/{blob}", blob, message="experiment-hook: copy of a user's edit")
    return blob


# ---- materialize and restore ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Write:
    """One target to bring to ``content``; ``hide`` says whether it ends with skip-worktree set."""

    target: str
    content: bytes | None  # None: leave the bytes as they are (only the bit changes)
    hide: bool


def apply_writes(git: Git, writes: Iterable[Write], skip_now: Mapping[str, bool]) -> None:
    """Bring targets to their content with the swap never visible to git: bits that must be set are set
    *before* any write (pre-commit then neither reports nor stashes the swap), bits to clear are cleared
    *after* the committed content is back. ``skip_now`` is each target's current bit."""
    items = list(writes)
    set_skip_worktree(git, [w.target for w in items if w.hide and not skip_now.get(w.target, False)], True)
    for w in items:
        if w.content is not None:
            path = git.root / w.target
            if read_bytes(path) != w.content:
                atomic_write(path, w.content)
    set_skip_worktree(git, [w.target for w in items if not w.hide and skip_now.get(w.target, False)], False)


def materialize(git: Git, target: str, content: bytes) -> str:
    """Write a variant into ``target`` hidden from commits (skip-worktree set before the atomic write).
    Returns the content id of what was written."""
    entry = index_entries(git, [target]).get(target)
    apply_writes(git, [Write(target, content, hide=True)], {target: bool(entry and entry.skip_worktree)})
    return blob_id(content, entry.blob if entry else "")


def committed_content(git: Git, entry: IndexEntry) -> bytes:
    """The content git has for a target (its index blob: the committed content, whatever is on disk)."""
    return git.cat_blob(entry.blob)
