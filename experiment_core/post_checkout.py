"""post-checkout: every branch checkout starts a new randomization unit for each running experiment.

For each running experiment: draw the arm, bring every target to that arm's content (treatment hidden from
commits by skip-worktree, set before the write; control = the committed content, bit cleared after the write),
remember what was written, and record an ``assign`` event. A target holding bytes the tool did not write (a
user's edit) is left alone: a copy is kept as a blob, the experiment pauses in this worktree, and the user is
told once which command makes git see the edit again. Experiments that ended (or that this branch does not
have) get their targets back to the committed content.

Skipped: file checkouts (flag 0), a rebase/merge/cherry-pick/revert/bisect in progress, unmerged paths.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiment_core import hookenv, ledger
from experiment_core.assign import (
    TREATMENT,
    Assignment,
    draw_arm,
    load_assignments,
    make_rng,
    new_unit_id,
    save_assignments,
)
from experiment_core.gitio import Git
from experiment_core.spec import Experiment, format_ts, load_registry, utc_now
from experiment_core.state import state_dir
from experiment_core.variants import IndexEntry, Write, apply_writes, blob_id, index_entries, keep_copy, read_bytes

GIT_PATHS = (hookenv.STATE_DIR, "HEAD", *(path for paths in hookenv.IN_PROGRESS.values() for path in paths))
CLEAN, OURS, EDITED, MISSING = "clean", "ours", "edited", "missing"


def classify(current: bytes | None, entry: IndexEntry, ours: Iterable[str]) -> str:
    """``clean``: the committed content; ``ours``: bytes the tool wrote; ``edited``: anything else (a user's
    edit); ``missing``: the file is gone (a user's deletion: never recreated behind their back)."""
    if current is None:
        return MISSING
    cid = blob_id(current, entry.blob)
    if cid == entry.blob:
        return CLEAN
    return OURS if cid in set(ours) else EDITED


def ours_for(target: str, prev: Assignment | None, treatment: bytes | None, entry: IndexEntry) -> set[str]:
    """Content ids that count as written by the tool for ``target``."""
    ids = {prev.written[target]} if prev is not None and target in prev.written else set()
    if treatment is not None and entry.skip_worktree:
        ids.add(blob_id(treatment, entry.blob))
    return ids


@dataclass
class Plan:
    writes: list[Write] = field(default_factory=list)
    assignments: dict[str, Assignment] = field(default_factory=dict)
    events: list[ledger.Event] = field(default_factory=list)
    edits: list[tuple[str, str, bytes]] = field(default_factory=list)  # (exp, target, bytes) to keep and warn
    started: list[Experiment] = field(default_factory=list)
    fetch: dict[str, str] = field(default_factory=dict)  # target -> committed blob to write back


def _release(plan: Plan, prev: Assignment, entries: Mapping[str, IndexEntry], disk: Mapping[str, bytes | None],
             treatments: Mapping[str, bytes | None]) -> None:  # fmt: skip
    """Targets of an assignment that is over go back to the committed content; a user's edit stays."""
    kept = False
    for target in prev.written:
        entry = entries.get(target)
        if entry is None or entry.stage != 0:
            continue
        state = classify(disk.get(target), entry, ours_for(target, prev, treatments.get(target), entry))
        if state == OURS:
            plan.fetch[target] = entry.blob
            plan.writes.append(Write(target, None, hide=False))
        elif state == CLEAN:
            plan.writes.append(Write(target, None, hide=False))
        else:
            kept = True
            current = disk.get(target)
            if current is not None:
                plan.edits.append((prev.exp, target, current))
    if kept:
        plan.assignments[prev.exp] = prev.paused()


def plan_checkout(
    experiments: Sequence[Experiment],
    previous: Mapping[str, Assignment],
    entries: Mapping[str, IndexEntry],
    disk: Mapping[str, bytes | None],
    treatments: Mapping[str, bytes | None],
    rng: random.Random,
    now: str,
    branch: str,
) -> Plan:
    """Decide everything a branch checkout does, from what was read; no I/O. ``treatments`` maps each target of
    a running experiment to its treatment bytes (None: the treatment file is missing on this branch)."""
    plan = Plan()
    running = {e.id: e for e in experiments if e.running}
    for exp_id, stale in previous.items():
        if exp_id not in running:
            _release(plan, stale, entries, disk, {})
    for exp in running.values():
        prev = previous.get(exp.id)
        usable = all(
            t in entries and entries[t].stage == 0 and treatments.get(t) is not None for t in exp.files
        )
        if not usable:  # this branch does not have the experiment's files: nothing to randomize here
            if prev is not None:
                _release(plan, prev, entries, disk, treatments)
            continue
        states = {
            t: classify(disk.get(t), entries[t], ours_for(t, prev, treatments[t], entries[t])) for t in exp.files
        }
        edited = [t for t, s in states.items() if s in (EDITED, MISSING)]
        if edited:
            for t in edited:
                current = disk.get(t)
                if current is not None:
                    plan.edits.append((exp.id, t, current))
            base = prev or Assignment(exp.id, None, None, now)
            plan.assignments[exp.id] = base.paused()
            continue
        arm = draw_arm(exp.split, rng)
        written: dict[str, str] = {}
        for target in exp.files:
            entry = entries[target]
            if arm == TREATMENT:
                content = treatments[target]
                assert content is not None
                plan.writes.append(Write(target, content, hide=True))
                written[target] = blob_id(content, entry.blob)
            else:
                if states[target] == OURS:
                    plan.fetch[target] = entry.blob
                plan.writes.append(Write(target, None, hide=False))
                written[target] = entry.blob
        unit = new_unit_id()
        plan.assignments[exp.id] = Assignment(exp.id, unit, arm, now, written, branch, exp.foreground)
        plan.events.append(ledger.make_event("assign", exp.id, arm=arm, unit=unit, branch=branch))
        plan.started.append(exp)
    return plan


def current_branch(git: Git) -> str:
    """The checked-out branch from this worktree's HEAD file (no git process); empty when detached."""
    try:
        text = git.git_path("HEAD").read_text("utf-8").strip()
    except OSError:
        return ""
    prefix = "ref: refs/heads/"
    return text[len(prefix) :] if text.startswith(prefix) else ""


def apply_plan(git: Git, plan: Plan, entries: Mapping[str, IndexEntry], sdir: Path, head: str | None) -> None:
    """Do what the plan says: keep copies of edits, write targets, save state, record events, tell the user."""
    for exp_id, target, data in plan.edits:
        cid = blob_id(data, entries[target].blob if target in entries else "")
        key = f"edit:{exp_id}:{target}:{cid}"
        if key in _warned(sdir):
            continue
        blob = keep_copy(git, exp_id, data)
        hookenv.warn_once(
            str(sdir), key,
            f"{target} holds an edit {exp_id} did not write: left as it is (copy kept as blob {blob[:12]}), "
            f"{exp_id} paused in this worktree. Run `{hookenv.RESTORE_HINT} {exp_id}` to hand the file back to "
            "git (your edit stays).",
        )  # fmt: skip
    blobs = dict(zip(plan.fetch, git.cat_batch(plan.fetch.values()), strict=True))
    writes = [Write(w.target, blobs.get(w.target) if w.content is None else w.content, w.hide) for w in plan.writes]
    apply_writes(git, writes, {t: e.skip_worktree for t, e in entries.items()})
    previous = load_assignments(git)
    merged = {k: v for k, v in previous.items() if k in plan.assignments}
    merged.update(plan.assignments)
    save_assignments(git, merged)
    if plan.events and head:
        ledger.append(git, plan.events, commit=head)
    for exp in plan.started:  # said once per experiment and worktree, not on every checkout
        hookenv.warn_once(
            str(sdir), f"started:{exp.id}",
            f"{exp.id} now swaps {', '.join(sorted(exp.files))} on branch checkouts (hidden from commits); if git "
            f"refuses a checkout or merge over these files, run `{hookenv.RESTORE_HINT}`",
        )  # fmt: skip


def _warned(sdir: Path) -> set[str]:
    import json

    try:
        data = json.loads((sdir / "warned.json").read_text("utf-8"))
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def _let_measurements_finish(sdir: str, timeout: float) -> None:
    """A measurement still running from the last commit would be dropped when the variants swap. Drops hit the
    slower arm more often (its runs last longer), which would bias the comparison: wait for it instead."""
    from experiment_core import jobs

    if jobs.pending(sdir):
        hookenv.warn("waiting for the last commit's measurement to finish before swapping variants")
        jobs.wait(sdir, timeout)


def run(git: Git, flag: str) -> int:
    """The whole post-checkout for a repository whose HEAD just moved."""
    if flag != "1":
        return 0  # a file checkout (`git checkout -- FILE`): not a new unit
    head = git.prime(*GIT_PATHS)
    if git.in_progress_operation() is not None:
        return 0
    if git.out("ls-files", "-u"):
        return 0  # unmerged paths (e.g. `checkout -m`): leave everything to the user
    sdir = state_dir(git)
    registry = load_registry(git.root, sdir)
    previous = load_assignments(git)
    running = registry.running()
    if not running and not previous:
        return 0
    _let_measurements_finish(str(sdir), max((e.timeout for e in running), default=0.0))
    targets = {t for e in running for t in e.files} | {t for a in previous.values() for t in a.written}
    entries = index_entries(git, targets)
    disk = {t: read_bytes(git.root / t) for t in targets}
    treatments = {t: read_bytes(git.root / tr) for e in running for t, tr in e.files.items()}
    plan = plan_checkout(running, previous, entries, disk, treatments, make_rng(), format_ts(utc_now()),
                         current_branch(git))  # fmt: skip
    apply_plan(git, plan, entries, sdir, head)
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry of ``python -m experiment_core.hooks.post_checkout``: always exit 0 (never fail a checkout)."""
    if hookenv.is_internal(os.environ):
        return 0
    try:
        _, _, flag = hookenv.checkout_args(argv, os.environ)
        if flag != "1":
            return 0
        cwd = Path.cwd()
        git = Git(cwd) if (cwd / ".git").exists() else Git.discover(cwd)
        return run(git, flag)
    except Exception as exc:  # never break git: one line and go on
        hookenv.warn(hookenv.failure_line("post-checkout", exc))
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
