"""Handing experimented files back to git: ``experiment-hook restore``.

For every target of the experiments named (default: all): the variant leaves the file through git (the filter's
record goes, ``git checkout -- TARGET`` writes the committed content). A user's edit is never overwritten: the
file gets what git would commit for it (the edit on top of the control), a copy of what it held is kept as a
blob. The experiment pauses in this worktree until the next branch checkout draws a new unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from experiment_core.clock import format_ts, utc_now
from experiment_core.deploy.assign import load_assignments
from experiment_core.deploy.variants import filter_state, index_entries, read_deployed
from experiment_core.deploy.worktree import experimented_files, reconcile
from experiment_core.gitio import Git
from experiment_core.state import state_dir
from experiment_core.store.spec import load_registry


@dataclass(frozen=True)
class Released:
    exp: str
    target: str
    outcome: str  # "control restored", "already control", "your edit kept (copy: blob X)", "not tracked here"


def restore(git: Git, exp_ids: Iterable[str] | None = None) -> list[Released]:
    """Take the variants of ``exp_ids`` (default: every experiment of the registry or of the local state) out of
    the work tree and pause them here. Returns what happened to each target."""
    registry = load_registry(git.root, state_dir(git))
    assignments = load_assignments(git)
    records = read_deployed(filter_state(git))
    everything = experimented_files(registry, assignments, records)
    known = set(everything)
    wanted = set(exp_ids) if exp_ids is not None else known
    for exp_id in wanted:
        if exp_id not in known:
            registry.get(exp_id)  # an unknown id is an error (names the known ones)
    files = {k: v for k, v in everything.items() if k in wanted}
    entries = index_entries(git, {t for ts in files.values() for t in ts})
    result = reconcile(git, registry, rng=None, now=format_ts(utc_now()), only=wanted, pause=wanted)
    kept = {(exp, target): blob for exp, target, blob in result.edits}
    out = []
    for exp_id, targets in sorted(files.items()):
        for target in sorted(targets):
            if target not in entries or entries[target].stage != 0:
                outcome = "not tracked here"
            elif (exp_id, target) in kept:
                outcome = f"your edit kept (copy: blob {kept[exp_id, target][:12]})"
            elif target in records and records[target].exp == exp_id:
                outcome = "control restored"
            else:
                outcome = "already control"
            out.append(Released(exp_id, target, outcome))
    return out
