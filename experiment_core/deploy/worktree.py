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

from experiment_core.deploy import filter_driver as fd
from experiment_core.deploy.assign import (
    TREATMENT,
    Assignment,
    draw_arm,
    load_assignments,
    new_unit_id,
    save_assignments,
)
from experiment_core.deploy.variants import (
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
from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git
from experiment_core.hookenv import RESTORE_HINT
from experiment_core.store import ledger
from experiment_core.store.spec import Experiment, Registry

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
    promoted: Iterable[Experiment] = (),
) -> Result:
    """Bring this worktree's deployed variants in line with the registry.

    ``rng`` given (a branch checkout): every running experiment starts a new unit with a freshly drawn arm.
    Without it (a pull, merge or rebase; a command): units stay; ended experiments leave the files, a changed
    treatment is deployed anew, and a treatment that no longer merges onto the control pauses its unit.
    ``pause``: experiments to stop here (restore). ``only``: leave other experiments as they are.
    ``promoted``: experiments the team promoted (the ledger says so) while this branch's registry still says
    running: their treatment runs here with no unit, until the decision commit reaches the branch.

    The steps, in this order (a crash between any two leaves nothing git would commit as the treatment):
    migrate 0.1 and configure the filter; decide the units and the records wanted; leave users' edits alone;
    rewrite the changed targets through git (records, then checkout); pause treatments that did not merge;
    note what the targets hold; save the units and record the new ones in the ledger."""
    p = _begin(git, registry, now=now, branch=branch, only=only, pause=pause, promoted=promoted)
    _choose_units(p, rng)
    _deploy_promoted(p)
    _keep_paused_treatments(p)
    changing = {t for t in set(p.records) | set(p.desired) if p.records.get(t) != p.desired.get(t)}
    edited = _leave_edits_alone(p, changing)
    rewrite = sorted(t for t in changing if t in p.entries and p.entries[t].stage == 0 and t not in edited)
    redeploy(git, p.state, p.records, p.desired, rewrite)
    had = {r.exp for r in p.records.values()} | {a.exp for a in p.assignments.values()}
    p.result.ended = sorted(e for e in had if p.mine(e) and e not in p.running)
    _pause_conflicts(p, changing, edited)
    _note_written(p)
    unracy(git, [t for e in p.running.values() for t in e.files if t in p.entries])
    _save_units(p, head)
    return p.result


def follow_team(git: Git, registry: Registry, *, rng: random.Random | None, now: str, branch: str = "",
                head: str | None = None) -> Result:  # fmt: skip
    """:func:`reconcile` with the team's decisions (the ledger's, :mod:`experiment_core.store.decisions`) over this
    branch's registry: a decided experiment draws no unit and records no trial here; a promotion this branch
    does not hold yet deploys the treatment, a rollback or expiry the control."""
    from experiment_core.store import decisions

    known = decisions.known(git)
    lagging = decisions.followed(registry, known)
    view = decisions.overlay(registry, known)
    promoted = [e for e in view.experiments if e.id in lagging and lagging[e.id].promoted]
    return reconcile(git, view, rng=rng, now=now, branch=branch, head=head, promoted=promoted)


@dataclass
class _Pass:
    """One reconcile's working state: what this worktree deploys and runs now, and what it will."""

    git: Git
    state: fd.State
    now: str
    branch: str
    records: dict[str, Deployed]  # the filter's records as found
    assignments: dict[str, Assignment]  # this worktree's units as found (after migration)
    running: dict[str, Experiment]  # running experiments not paused or frozen here
    entries: Mapping[str, IndexEntry]
    stop: set[str]  # experiments to pause here (restore)
    limit: set[str] | None  # None: every experiment
    frozen: set[str]  # 0.1 edits left hidden under pre-commit: their experiments are not touched
    result: Result
    promoted: dict[str, Experiment] = field(default_factory=dict)  # the team's promotions this branch lacks
    desired: dict[str, Deployed] = field(default_factory=dict)  # the records wanted
    units: dict[str, Assignment] = field(default_factory=dict)  # the units kept
    fresh: dict[str, Assignment] = field(default_factory=dict)  # the units drawn now

    def mine(self, exp_id: str) -> bool:
        return (self.limit is None or exp_id in self.limit) and exp_id not in self.frozen


def _begin(git: Git, registry: Registry, *, now: str, branch: str, only: Iterable[str] | None,
           pause: Iterable[str], promoted: Iterable[Experiment]) -> _Pass:  # fmt: skip
    """Read the records and units, move a 0.1 clone over and make sure the filter is configured."""
    result = Result()
    state = filter_state(git)
    records = read_deployed(state)
    assignments = load_assignments(git)
    limit = set(only) if only is not None else None
    stop = set(pause)
    running = {e.id: e for e in registry.running() if e.id not in stop}
    kept = {e.id: e for e in promoted if e.id not in stop and e.id not in running}
    targets = {t for e in [*running.values(), *kept.values()] for t in e.files} | set(records)
    targets |= {t for a in assignments.values() for t in a.written}
    entries = index_entries(git, targets)
    assignments, frozen = migrate(git, entries, assignments, result)
    running = {k: e for k, e in running.items() if k not in frozen}
    kept = {k: e for k, e in kept.items() if k not in frozen}
    if running or kept:
        wanted = {t for e in [*running.values(), *kept.values()] for t in e.files}
        result.configured = ensure_filter(git, wanted | set(records))
    p = _Pass(git, state, now, branch, records, assignments, running, entries, stop, limit, frozen, result, kept)
    p.desired = {t: r for t, r in records.items() if not p.mine(r.exp)}
    p.units = {k: v for k, v in assignments.items() if not p.mine(k)}
    return p


def _choose_units(p: _Pass, rng: random.Random | None) -> None:
    """Each running experiment of ours: a new unit with a drawn arm (``rng``), else the unit it has; the
    treatment's records are wanted where the arm is the treatment."""
    for exp in p.running.values():
        if not p.mine(exp.id):
            continue
        prev = p.assignments.get(exp.id)
        if not usable(p.git, exp, p.entries):
            continue  # this branch does not have the experiment's files: no unit here
        arm: str | None
        if rng is not None:
            arm = draw_arm(exp.split, rng)
            p.fresh[exp.id] = Assignment(exp.id, new_unit_id(), arm, p.now, {}, p.branch, exp.foreground)
        elif prev is not None:
            p.units[exp.id] = prev
            arm = prev.arm if prev.active else None
        else:
            continue
        if arm == TREATMENT:
            got = desired_records(p.git, exp, p.entries)
            if got is not None:
                p.desired.update(got)


def _deploy_promoted(p: _Pass) -> None:
    """A promotion the team decided that this branch does not hold yet: the treatment runs here, with no unit
    (no trial is recorded), through the filter like any treatment, so git sees the file as unchanged."""
    for exp in p.promoted.values():
        if p.mine(exp.id) and usable(p.git, exp, p.entries):
            got = desired_records(p.git, exp, p.entries)
            if got is not None:
                p.desired.update(got)


def _keep_paused_treatments(p: _Pass) -> None:
    """A paused unit keeps a treatment that holds a user's edit."""
    for target, record in p.records.items():
        if p.mine(record.exp) and record.exp in p.running and target not in p.desired \
                and record.exp not in p.fresh and record.exp not in p.stop:  # fmt: skip
            prev = p.assignments.get(record.exp)
            if prev is not None and not prev.active:
                p.desired[target] = record


def _leave_edits_alone(p: _Pass, changing: set[str]) -> set[str]:
    """The targets to change (or to start a unit on) that hold a user's edit: never rewritten. Returns them."""
    starting = {t for exp_id in p.fresh for t in p.running[exp_id].files}  # a new unit starts only on unedited files
    edited = modified(p.git, {t for t in changing | starting if t in p.entries})
    for target in sorted(edited):
        old = p.records.get(target)
        exp_id = old.exp if old else (p.desired[target].exp if target in p.desired else "")
        data = read_bytes(p.git.root / target)
        if exp_id in p.promoted and old is None:  # a user's edit over the control: the promotion waits for it
            p.desired.pop(target, None)
            p.result.messages.append(f"{target} holds your edit: left as it is; {exp_id} was promoted, and its "
                                     "treatment is deployed here once the file is unchanged")
        elif exp_id in p.fresh or (exp_id in p.running and exp_id not in p.stop):
            _pause_over_edit(p, target, old, exp_id, data, edited)
        elif exp_id in p.promoted and old is not None:
            p.desired[target] = old  # the promoted treatment under the user's edit: it stays as it is
        else:
            _end_over_edit(p, target, old, exp_id, data)
    return edited


def _pause_over_edit(p: _Pass, target: str, old: Deployed | None, exp_id: str, data: bytes | None,
                     edited: set[str]) -> None:  # fmt: skip
    """A new unit cannot start over a user's edit: the experiment pauses here, the file stays as it is."""
    if old is not None:
        p.desired[target] = old
    else:
        p.desired.pop(target, None)
    p.fresh.pop(exp_id, None)
    prev = p.assignments.get(exp_id)
    p.units[exp_id] = (prev or Assignment(exp_id, None, None, p.now)).paused()
    for other, rec in list(p.desired.items()):
        if rec.exp == exp_id and other not in edited and p.records.get(other) != rec:
            if other in p.records:
                p.desired[other] = p.records[other]
            else:
                p.desired.pop(other)
    if data is not None:
        p.result.edits.append((exp_id, target, keep_copy(p.git, exp_id, data)))


def _end_over_edit(p: _Pass, target: str, old: Deployed | None, exp_id: str, data: bytes | None) -> None:
    """The experiment ended here (or restore): the file gets what git would commit for it, the record goes."""
    if old is None or data is None:
        return
    commit_view = cleaned(p.state, target, data)
    if commit_view is None and exp_id in p.stop:  # restore: git sees the file as it is (edit + treatment)
        p.result.edits.append((exp_id, target, keep_copy(p.git, exp_id, data)))
        return
    if commit_view is None:
        p.desired[target] = old
        p.result.messages.append(
            f"{target}: your edit overlaps the treatment of {exp_id}, which ended here; the file stays as "
            f"it is (treatment and edit): run `experiment-hook restore {exp_id}` after saving your edit"
        )
        return
    atomic_write(p.git.root / target, commit_view)
    p.result.edits.append((exp_id, target, keep_copy(p.git, exp_id, data)))


def _pause_conflicts(p: _Pass, changing: set[str], edited: set[str]) -> None:
    """A treatment the smudge could not merge onto the committed content: its unit runs the control here."""
    for target, exp_id in take_conflicts(p.state):
        got_rec = p.desired.get(target)
        if got_rec is None or got_rec.exp != exp_id:
            continue
        for other in [t for t, r in p.desired.items() if r.exp == exp_id]:
            del p.desired[other]
        p.result.conflicts.append((exp_id, target))
        p.fresh.pop(exp_id, None)
        prev = p.units.get(exp_id) or p.assignments.get(exp_id)
        if prev is not None:
            p.units[exp_id] = prev.paused()
    if p.result.conflicts:
        before = read_deployed(p.state)
        conflicted = {t for _, t in p.result.conflicts}
        redeploy(p.git, p.state, before, p.desired, [t for t in changing | set(p.records) if t in p.entries
                 and t not in p.desired and t not in conflicted and t not in edited])  # fmt: skip


def _note_written(p: _Pass) -> None:
    """Active units note what their targets hold now; units of experiments that ended here go."""
    for exp_id in list(p.fresh):
        exp = p.running[exp_id]
        p.fresh[exp_id] = _with_written(p.git, p.fresh[exp_id], exp.files)
        p.result.started.append(exp)
    for exp_id, a in list(p.units.items()):
        if a.active and exp_id in p.running:
            p.units[exp_id] = _with_written(p.git, a, p.running[exp_id].files)
        elif exp_id not in p.running and p.mine(exp_id):
            del p.units[exp_id]


def _save_units(p: _Pass, head: str | None) -> None:
    p.units.update(p.fresh)
    if p.units != p.assignments:
        save_assignments(p.git, p.units)
    if p.fresh and head:
        events = [ledger.make_event("assign", a.exp, arm=a.arm, unit=a.unit, branch=p.branch)
                  for a in p.fresh.values()]  # fmt: skip
        ledger.append(p.git, events, commit=head)


def _with_written(git: Git, a: Assignment, files: Iterable[str]) -> Assignment:
    """The assignment with the content ids its targets hold now (a trial checks them before and after)."""
    from dataclasses import replace

    written = {}
    for target in files:
        data = read_bytes(git.root / target)
        if data is not None:
            written[target] = blob_id(data)
    return replace(a, written=written)
