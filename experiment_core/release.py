"""Handing experimented files back to git: ``experiment-hook restore`` and the end of an experiment.

For every target: bytes the tool wrote go back to the committed content, and the skip-worktree bit is cleared,
so git sees the file as it really is. A user's edit is never overwritten: a copy is kept as a blob and the file
is left as it is, now visible to ``git status``. The experiment pauses in this worktree until the next branch
checkout draws a new unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from experiment_core.assign import load_assignments, save_assignments
from experiment_core.gitio import Git
from experiment_core.post_checkout import CLEAN, OURS, classify, ours_for
from experiment_core.spec import load_registry
from experiment_core.state import state_dir
from experiment_core.variants import Write, apply_writes, index_entries, keep_copy, read_bytes


@dataclass(frozen=True)
class Released:
    exp: str
    target: str
    outcome: str  # "control restored", "already control", "your edit kept (blob X)", "not tracked here"


def restore(git: Git, exp_ids: Iterable[str] | None = None) -> list[Released]:
    """Put control back into the targets of ``exp_ids`` (default: every experiment of the registry or of the
    local state) and clear their skip-worktree bits. Returns what happened to each target."""
    registry = load_registry(git.root, state_dir(git))
    assignments = load_assignments(git)
    wanted = set(exp_ids) if exp_ids is not None else {e.id for e in registry.experiments} | set(assignments)
    for exp_id in wanted:
        if exp_id not in assignments:
            registry.get(exp_id)  # an unknown id is an error (names the known ones)
    files: dict[str, dict[str, str | None]] = {}  # exp -> target -> treatment path
    for exp in registry.experiments:
        if exp.id in wanted:
            files.setdefault(exp.id, {}).update(dict(exp.files))
    for exp_id, a in assignments.items():
        if exp_id in wanted:
            for target in a.written:
                files.setdefault(exp_id, {}).setdefault(target, None)
    entries = index_entries(git, {t for m in files.values() for t in m})
    results: list[Released] = []
    writes: list[Write] = []
    fetch: dict[str, str] = {}
    for exp_id, targets in sorted(files.items()):
        prev = assignments.get(exp_id)
        for target, treatment_path in sorted(targets.items()):
            entry = entries.get(target)
            if entry is None or entry.stage != 0:
                results.append(Released(exp_id, target, "not tracked here"))
                continue
            current = read_bytes(git.root / target)
            treatment = read_bytes(git.root / treatment_path) if treatment_path else None
            state = classify(current, entry, ours_for(target, prev, treatment, entry))
            if state == OURS:
                fetch[target] = entry.blob
                writes.append(Write(target, None, hide=False))
                results.append(Released(exp_id, target, "control restored"))
            elif state == CLEAN:
                writes.append(Write(target, None, hide=False))
                results.append(Released(exp_id, target, "already control"))
            else:
                writes.append(Write(target, None, hide=False))  # unhide: git shows the user's edit again
                blob = keep_copy(git, exp_id, current) if current is not None else "-"
                results.append(Released(exp_id, target, f"your edit kept (copy: blob {blob[:12]})"))
    blobs = dict(zip(fetch, git.cat_batch(fetch.values()), strict=True))
    writes = [Write(w.target, blobs.get(w.target), w.hide) for w in writes]
    apply_writes(git, writes, {t: e.skip_worktree for t, e in entries.items()})
    for exp_id in files:
        if exp_id in assignments:
            assignments[exp_id] = assignments[exp_id].paused()
    save_assignments(git, assignments)
    return results
