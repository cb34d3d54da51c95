"""What this worktree runs, kept in step with the registry: the one mechanism behind every hook and command that
deploys or removes a variant (post-checkout, post-merge, post-rewrite, restore, uninstall, the lifecycle, run).

:func:`reconcile` reads the registry, this worktree's units and the filter's ``deployed`` records, works out which
targets must hold which variant, and changes them *through git* (records, then ``git checkout -- TARGET``). A
target git sees as modified (a user's edit) is never rewritten: on a new unit the experiment pauses here; when its
experiment ended, the file gets what git would commit for it (the edit on top of the control) and the record
goes. Clones of the skip-worktree design (0.1) are moved over first (:func:`migrate`), losing nothing.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from experiment_core import ledger
from experiment_core.assign import TREATMENT, Assignment, draw_arm, load_assignments, new_unit_id, save_assignments
from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git
from experiment_core.hookenv import RESTORE_HINT
from experiment_core.spec import Experiment, Registry
from experiment_core.variants import (
    BACKUP_REFS,
    Deployed,
    IndexEntry,
    blob_id,
    cleaned,
    ensure_filter,
    filter_state,
    index_entries,
    keep_copy,
    modified,
    read_bytes,
    read_deployed,
    record_for,
    redeploy,
    show_to_git,
    take_conflicts,
    unracy,
)

REMOTE_BACKUPS = "refs/experiments/remote-backups"


@dataclass
class Result:
    """What a reconcile did, for the caller to tell the user."""

    messages: list[str] = field(default_factory=list)  # one line each, for the user
    started: list[Experiment] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)  # experiments whose variant left this worktree
    edits: list[tuple[str, str, str]] = field(default_factory=list)  # (exp, target, kept blob)
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (exp, target)
    migrated: bool = False  # skip-worktree bits of 0.1 were found and cleared
    configured: bool = False  # the filter driver was set up (or repaired) now


# ---- the content of the variants --------------------------------------------------------------------------
def base_content(git: Git, exp: Experiment, target: str) -> bytes | None:
    """The base of the treatment's change: the backup blob ``create`` took (this clone's backup ref, or one
    fetched from a remote), else the target as committed where the treatment file was added."""
    index = list(exp.files).index(target)
    patterns = [f"{BACKUP_REFS}/{exp.id}/{index}", f"{REMOTE_BACKUPS}/*/{exp.id}/{index}"]
    for sha in git.out("for-each-ref", "--format=%(objectname)", *patterns, check=False).split():
        data = git.run("cat-file", "blob", sha, check=False)
        if data or git.ok("cat-file", "-e", sha):
            return data
    added = git.out("log", "-1", "--diff-filter=A", "--format=%H", "--", exp.files[target], check=False)
    if added:
        proc = git.call("cat-file", "blob", f"{added}:{target}")
        if proc.returncode == 0:
            return proc.stdout
    return None


def desired_records(git: Git, exp: Experiment, entries: Mapping[str, IndexEntry]) -> dict[str, Deployed] | None:
    """The ``deployed`` records of ``exp``'s treatment here, or None when this branch lacks its files."""
    state = filter_state(git)
    records: dict[str, Deployed] = {}
    for target, treatment_path in exp.files.items():
        entry = entries.get(target)
        treatment = read_bytes(git.root / treatment_path)
        if entry is None or entry.stage != 0 or treatment is None:
            return None
        base = base_content(git, exp, target)
        if base is None:
            base = git.cat_blob(entry.blob)  # no base at all: the treatment file as it is
        records[target] = record_for(state, exp.id, base, treatment)
    return records


def usable(git: Git, exp: Experiment, entries: Mapping[str, IndexEntry]) -> bool:
    return all(
        t in entries and entries[t].stage == 0 and (git.root / tr).is_file() for t, tr in exp.files.items()
    )


def experimented_files(registry: Registry, assignments: Mapping[str, Assignment],
                       records: Mapping[str, Deployed]) -> dict[str, set[str]]:  # fmt: skip
    """Every target that is or was experimented on here, by experiment: the files of the registry's experiments
    (any status), the targets this worktree's units wrote (0.1 kept its deploy records there too) and the
    filter's ``deployed`` records. Nothing else in the work tree is the tool's to change."""
    files: dict[str, set[str]] = {}
    for exp in registry.experiments:
        files.setdefault(exp.id, set()).update(exp.files)
    for exp_id, a in assignments.items():
        files.setdefault(exp_id, set()).update(a.written)
    for target, record in records.items():
        files.setdefault(record.exp, set()).add(target)
    return files


# ---- moving clones of the skip-worktree design over ----------------------------------------------------
def migrate(git: Git, entries: Mapping[str, IndexEntry], assignments: Mapping[str, Assignment],
            result: Result) -> tuple[dict[str, Assignment], set[str]]:  # fmt: skip
    """Clear the skip-worktree bits 0.1 set. A target holding what the tool wrote gets the committed content
    back (reconcile then deploys the unit's variant through the filter); a user's edit stays, visible to git,
    with a copy kept as a blob, and its experiment pauses here. Under pre-commit (which fails a hook that makes a
    change visible) an edited target stays hidden and its experiment frozen, with the hint to run `restore`.
    Returns the assignments to keep and the experiments frozen."""
    hidden = sorted(t for t, e in entries.items() if e.skip_worktree)
    if not hidden:
        return dict(assignments), set()
    out = dict(assignments)
    owner = {t: a for a in assignments.values() for t in a.written}
    blobs = dict(zip(hidden, git.cat_batch(entries[t].blob for t in hidden), strict=True))
    under_pre_commit = os.environ.get("PRE_COMMIT") == "1"
    unhide: list[str] = []
    frozen: set[str] = set()
    for target in hidden:
        current, committed = read_bytes(git.root / target), blobs[target]
        prev = owner.get(target)
        exp = prev.exp if prev else "experiment-hook"
        ours = prev is not None and current is not None and blob_id(current) == prev.written.get(target)
        if ours and committed is not None:
            atomic_write(git.root / target, committed)
        elif current is not None and current != committed:
            if under_pre_commit:
                frozen.add(exp)
                result.messages.append(
                    f"{target} holds an edit that experiment-hook 0.1 hid from git (skip-worktree): left as it is; "
                    f"run `{RESTORE_HINT}` to let git see it (your edit stays)"
                )
                if prev is not None:
                    out[prev.exp] = prev.paused()
                continue
            result.edits.append((exp, target, keep_copy(git, exp, current)))
            if prev is not None:
                out[prev.exp] = prev.paused()
        unhide.append(target)
    if unhide:
        result.migrated = True
        show_to_git(git, unhide)
        git.call("update-index", "-q", "--refresh")
        result.messages.append(
            f"moved {', '.join(unhide)} from skip-worktree to the filter driver (git now sees variants as clean)"
        )
    return out, frozen


# ---- reconcile -----------------------------------------------------------------------------------------
def reconcile(
    git: Git,
    registry: Registry,
    *,
    rng: random.Random | None,
    now: str,
    branch: str = "",
    head: str | None = None,
    only: Iterable[str] | None = None,
    pause: Iterable[str] = (),
) -> Result:
    """Bring this worktree's deployed variants in line with the registry.

    ``rng`` given (a branch checkout): every running experiment starts a new unit with a freshly drawn arm.
    Without it (a pull, merge or rebase; a command): units stay; ended experiments leave the files, a changed
    treatment is deployed anew, and a treatment that no longer merges onto the control pauses its unit.
    ``pause``: experiments to stop here (restore). ``only``: leave other experiments as they are."""
    result = Result()
    state = filter_state(git)
    records = read_deployed(state)
    assignments = load_assignments(git)
    limit = set(only) if only is not None else None
    stop = set(pause)
    running = {e.id: e for e in registry.running() if e.id not in stop}
    targets = {t for e in running.values() for t in e.files} | set(records)
    targets |= {t for a in assignments.values() for t in a.written}
    entries = index_entries(git, targets)
    assignments, frozen = migrate(git, entries, assignments, result)
    running = {k: e for k, e in running.items() if k not in frozen}
    if running:
        result.configured = ensure_filter(git, {t for e in running.values() for t in e.files} | set(records))

    def mine(exp_id: str) -> bool:
        return (limit is None or exp_id in limit) and exp_id not in frozen

    desired: dict[str, Deployed] = {t: r for t, r in records.items() if not mine(r.exp)}
    new_assignments = {k: v for k, v in assignments.items() if not mine(k)}
    fresh: dict[str, Assignment] = {}
    for exp in running.values():
        if not mine(exp.id):
            continue
        prev = assignments.get(exp.id)
        if not usable(git, exp, entries):
            continue  # this branch does not have the experiment's files: no unit here
        arm: str | None
        if rng is not None:
            arm = draw_arm(exp.split, rng)
            fresh[exp.id] = Assignment(exp.id, new_unit_id(), arm, now, {}, branch, exp.foreground)
        elif prev is not None:
            new_assignments[exp.id] = prev
            arm = prev.arm if prev.active else None
        else:
            continue
        if arm == TREATMENT:
            got = desired_records(git, exp, entries)
            if got is not None:
                desired.update(got)
    for target, record in records.items():  # a paused unit keeps a treatment that holds a user's edit
        if mine(record.exp) and record.exp in running and target not in desired \
                and record.exp not in fresh and record.exp not in stop:  # fmt: skip
            prev = assignments.get(record.exp)
            if prev is not None and not prev.active:
                desired[target] = record
    changing = {t for t in set(records) | set(desired) if records.get(t) != desired.get(t)}
    starting = {t for exp_id in fresh for t in running[exp_id].files}  # a new unit starts only on unedited files
    edited = modified(git, {t for t in changing | starting if t in entries})
    for target in sorted(edited):
        old = records.get(target)
        exp_id = old.exp if old else (desired[target].exp if target in desired else "")
        data = read_bytes(git.root / target)
        if exp_id in fresh or (exp_id in running and exp_id not in stop):
            # a new unit cannot start over a user's edit: the experiment pauses here, the file stays as it is
            if old is not None:
                desired[target] = old
            else:
                desired.pop(target, None)
            fresh.pop(exp_id, None)
            prev = assignments.get(exp_id)
            new_assignments[exp_id] = (prev or Assignment(exp_id, None, None, now)).paused()
            for other, rec in list(desired.items()):
                if rec.exp == exp_id and other not in edited and records.get(other) != rec:
                    if other in records:
                        desired[other] = records[other]
                    else:
                        desired.pop(other)
            if data is not None:
                result.edits.append((exp_id, target, keep_copy(git, exp_id, data)))
            continue
        # the experiment ended here (or restore): the file gets what git would commit for it, the record goes
        if old is not None and data is not None:
            commit_view = cleaned(state, target, data)
            if commit_view is None and exp_id in stop:  # restore: git sees the file as it is (edit + treatment)
                result.edits.append((exp_id, target, keep_copy(git, exp_id, data)))
                continue
            if commit_view is None:
                desired[target] = old
                result.messages.append(
                    f"{target}: your edit overlaps the treatment of {exp_id}, which ended here; the file stays as "
                    f"it is (treatment and edit): run `experiment-hook restore {exp_id}` after saving your edit"
                )
                continue
            atomic_write(git.root / target, commit_view)
            if data is not None:
                result.edits.append((exp_id, target, keep_copy(git, exp_id, data)))
    rewrite = sorted(t for t in changing if t in entries and entries[t].stage == 0 and t not in edited)
    redeploy(git, state, records, desired, rewrite)
    had = {r.exp for r in records.values()} | {a.exp for a in assignments.values()}
    result.ended = sorted(e for e in had if mine(e) and e not in running)
    for target, exp_id in take_conflicts(state):
        got_rec = desired.get(target)
        if got_rec is None or got_rec.exp != exp_id:
            continue
        for other in [t for t, r in desired.items() if r.exp == exp_id]:
            del desired[other]
        result.conflicts.append((exp_id, target))
        fresh.pop(exp_id, None)
        prev = new_assignments.get(exp_id) or assignments.get(exp_id)
        if prev is not None:
            new_assignments[exp_id] = prev.paused()
    if result.conflicts:
        before = read_deployed(state)
        conflicted = {t for _, t in result.conflicts}
        redeploy(git, state, before, desired, [t for t in changing | set(records) if t in entries
                                               and t not in desired and t not in conflicted and t not in edited])
    for exp_id in list(fresh):
        exp = running[exp_id]
        fresh[exp_id] = _with_written(git, fresh[exp_id], exp.files)
        result.started.append(exp)
    for exp_id, a in list(new_assignments.items()):
        if a.active and exp_id in running:
            new_assignments[exp_id] = _with_written(git, a, running[exp_id].files)
        elif exp_id not in running and mine(exp_id):
            del new_assignments[exp_id]
    unracy(git, [t for e in running.values() for t in e.files if t in entries])
    new_assignments.update(fresh)
    if new_assignments != assignments:
        save_assignments(git, new_assignments)
    if fresh and head:
        events = [ledger.make_event("assign", a.exp, arm=a.arm, unit=a.unit, branch=branch)
                  for a in fresh.values()]  # fmt: skip
        ledger.append(git, events, commit=head)
    return result


def _with_written(git: Git, a: Assignment, files: Iterable[str]) -> Assignment:
    """The assignment with the content ids its targets hold now (a trial checks them before and after)."""
    from dataclasses import replace

    written = {}
    for target in files:
        data = read_bytes(git.root / target)
        if data is not None:
            written[target] = blob_id(data)
    return replace(a, written=written)
