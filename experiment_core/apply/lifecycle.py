"""Applying a decision (promote, rollback, expire) to files, index, registry, ledger and a commit — crash-safe.

Everything the apply will produce is first built as inert git objects (blobs, tree, commit) and written to a
journal in the local state; then a roll-forward of idempotent steps makes it real: ledger event, branch ref,
index entries, the filter's records, working files (written through git). A crash at any point leaves a journal;
the next command (or ``experiment-hook recover``) runs the same roll-forward to the end. Each target therefore
holds exactly the control or the treatment content, and the registry and the ledger agree.

The commit contains only the experiment's paths and the registry's status line: it is built in a temporary index
from HEAD, so the user's other staged and unstaged changes are never part of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiment_core.deploy.assign import load_assignments, save_assignments
from experiment_core.deploy.variants import filter_state, read_deployed, redeploy, write_deployed
from experiment_core.errors import UserError
from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git, GitError
from experiment_core.state import APPLY_JOURNAL, read_json, state_dir, write_json
from experiment_core.store import decisions as team
from experiment_core.store import ledger
from experiment_core.store.spec import REGISTRY_NAME, Experiment, edit_registry_text, load_registry, status_change

JOURNAL = APPLY_JOURNAL
CRASH_ENV = "EXPERIMENT_HOOK_CRASH_AT"  # fault injection for the crash tests: SIGKILL at the Nth checkpoint

FINAL_STATUS = team.FINAL_STATUS


@dataclass(frozen=True)
class Outcome:
    exp_id: str
    action: str
    status: str
    commit: str | None  # None: detached HEAD, applied to the work tree only
    paths: tuple[str, ...]
    message: str
    branch: str | None = None  # the decision branch the commit is on (decision_commits: branch)


# ---- fault injection ------------------------------------------------------------------------------------
_checkpoints = 0


def _checkpoint() -> None:
    global _checkpoints
    _checkpoints += 1
    if os.environ.get(CRASH_ENV) == str(_checkpoints):
        os.kill(os.getpid(), signal.SIGKILL)


# ---- commit messages (the seed's format) ----------------------------------------------------------------
def _fmt_pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def commit_message(
    exp: Experiment, promoted: bool, action: str, analysis: Mapping[str, Any], reasons: list[str]
) -> str:
    """The seed's promote / rollback commit message."""
    n_c = (analysis.get("control") or {}).get("n", 0)
    n_t = (analysis.get("treatment") or {}).get("n", 0)
    p = analysis.get("p_value")
    if exp.analysis == "sequential":
        p = (analysis.get("sequential") or {}).get("p_value", p)
    if promoted:
        confidence = "n/a" if p is None else f"{(1 - p) * 100:.1f}" if p >= 0.001 else "> 99.9"
        return (
            f"experiment: Promote {exp.id} to production\n\n"
            f"Experiment: {exp.name}\n"
            f"Improvement: {_fmt_pct(analysis.get('improvement_pct'))}% ({exp.metric.name})\n"
            f"Confidence: {confidence}% (p = {'n/a' if p is None else f'{p:.4g}'})\n"
            f"Trials: {n_c + n_t} ({n_c} control, {n_t} treatment)\n\n"
            f"Auto-promoted by experiment-hook\n"
        )
    imp = analysis.get("improvement_pct")
    regression = "n/a" if imp is None else f"{max(-imp, 0.0):.1f}"
    label = "Expired and rolled back" if action == "expire" else "Rolled back"
    return (
        f"experiment: Rollback {exp.id}\n\n"
        f"Reason: {reasons[0] if reasons else action}\n"
        f"Regression: {regression}% worse\n"
        f"Status: {label} to pre-experiment state\n\n"
        f"Auto-rolled back by experiment-hook\n"
    )


# ---- content of the variants ----------------------------------------------------------------------------
def backups_of(events: list[ledger.Event], exp_id: str) -> dict[str, str]:
    for event in events:
        if event["type"] == "created" and event["exp"] == exp_id:
            return dict(event["backups"])
    return {}


def _head_blob(git: Git, path: str) -> str | None:
    sha = git.out("rev-parse", "-q", "--verify", f"HEAD:{path}", check=False)
    return sha or None


def _mode(git: Git, path: str) -> str:
    line = git.out("ls-files", "-s", "--", path)
    return line.split()[0] if line else "100644"


def control_blob(git: Git, exp: Experiment, target: str, backups: Mapping[str, str]) -> str:
    """The control is what commits hold (the filter keeps the treatment out of them), so a change committed to
    the target since ``create`` is kept; the backup blob taken at ``create`` serves when HEAD lacks the file."""
    head = _head_blob(git, target)
    if head is not None:
        return head
    blob = backups.get(target)
    if blob and git.ok("cat-file", "-e", blob):
        return blob
    raise UserError(target, "no control content: not in HEAD and no backup", "run `experiment-hook sync`")


def treatment_blob(git: Git, exp: Experiment, target: str, control: str) -> str:
    """What a promotion commits: the treatment's change applied to the control (teammates' changes to the
    target since ``create`` stay), the same content the filter deploys."""
    from experiment_core.deploy.filter_driver import merge3
    from experiment_core.deploy.worktree import base_content

    path = git.root / exp.files[target]
    if not path.is_file():
        raise UserError(exp.files[target], "treatment file is missing", "restore it from git, then retry")
    treatment = path.read_bytes()
    base = base_content(git, exp, target)
    merged = treatment if base is None else merge3(git.cat_blob(control), base, treatment)
    if merged is None:
        raise UserError(exp.files[target], f"its change no longer applies to the committed {target}",
                        f"update {exp.files[target]} to the new {target}, commit it, then retry")  # fmt: skip
    return git.hash_object(merged)


# ---- planning (no visible change) -----------------------------------------------------------------------
def plan(
    git: Git,
    exp: Experiment,
    action: str,
    analysis: Mapping[str, Any],
    reasons: list[str],
    events: list[ledger.Event],
    promote: bool,
) -> dict[str, Any]:
    """Validate and build every object the apply needs; return the journal. Raises UserError, changing nothing.

    With ``decision_commits: branch`` and a remote, the commit goes on a decision branch off the remote's
    default branch (:func:`plan_branch`); else on the current branch."""
    from experiment_core.apply import decision_branch

    settings = load_registry(git.root, state_dir(git)).settings
    remote = decision_branch.target(git, settings)
    if remote is not None:
        return plan_branch(git, exp, action, analysis, reasons, events, promote, remote)
    targets = sorted(exp.files)
    _check_can_apply(git, exp, action, targets)
    files = _target_entries(git, exp, targets, backups_of(events, exp.id), promote)
    status = "promoted" if promote else FINAL_STATUS[action]  # promote_if_not_worse at expiry promotes
    work_blob, head_blob = _registry_blobs(git, exp.id, status)
    _checkpoint()
    message = commit_message(exp, promote, action, analysis, reasons)
    head = git.head()
    branch = git.out("symbolic-ref", "-q", "HEAD", check=False) or None
    new_commit = None
    if branch and head:
        entries = {**files, REGISTRY_NAME: {"blob": head_blob, "mode": "100644"}}
        new_commit = decision_branch.build_commit(git, head, entries, message)
        _checkpoint()
    event = ledger.make_event(
        "decision", exp.id, action=action, reasons=list(reasons), status=status, promoted=promote,
        commit=new_commit, by=team.clone_id(git),
        **{k: v for k, v in _analysis_numbers(analysis).items() if v is not None},
    )  # fmt: skip
    return {
        "exp": exp.id, "action": action, "status": status, "old_head": head, "branch": branch,
        "new_commit": new_commit, "files": files, "registry": {"work_blob": work_blob, "head_blob": head_blob},
        "event": event, "message": message,
    }  # fmt: skip


def plan_branch(git: Git, exp: Experiment, action: str, analysis: Mapping[str, Any], reasons: list[str],
                events: list[ledger.Event], promote: bool, remote: str) -> dict[str, Any]:  # fmt: skip
    """The journal of a decision whose commit goes on ``experiment-hook/<action>-<exp>`` off the remote's default
    branch: nothing of this work tree, index or branch goes into it, so the user's work is never in the way."""
    from experiment_core.apply import decision_branch as db

    if action not in FINAL_STATUS:
        raise ValueError(action)
    if not exp.running:
        raise UserError(exp.id, f"is already {exp.status}", "nothing to do")
    status = "promoted" if promote else FINAL_STATUS[action]
    settings = load_registry(git.root, state_dir(git)).settings
    base_name, base = db.base_commit(git, settings, remote)
    entries = db.entries_on(git, base, exp, status, promote, backups_of(events, exp.id))
    _checkpoint()
    message = commit_message(exp, promote, action, analysis, reasons)
    name = db.branch_name(action, exp.id)
    if git.ref(f"refs/heads/{name}") is not None:
        raise UserError(f"branch {name}", "exists already", f"rename or delete it (git branch -m {name} {name}-old)")
    new_commit = db.build_commit(git, base, entries, message)
    event = ledger.make_event(
        "decision", exp.id, action=action, reasons=list(reasons), status=status, promoted=promote,
        commit=new_commit, branch=name, base=base_name, by=team.clone_id(git),
        **{k: v for k, v in _analysis_numbers(analysis).items() if v is not None},
    )  # fmt: skip
    return {"mode": "branch", "exp": exp.id, "action": action, "status": status, "new_commit": new_commit,
            "decision_branch": name, "remote": remote, "files": {t: entries[t] for t in exp.files},
            "event": event, "message": message}  # fmt: skip


def _check_can_apply(git: Git, exp: Experiment, action: str, targets: list[str]) -> None:
    """Refuse (UserError) when the decision cannot be applied without touching the user's work."""
    if action not in FINAL_STATUS:
        raise ValueError(action)
    if not exp.running:
        raise UserError(exp.id, f"is already {exp.status}", "nothing to do")
    op = git.in_progress_operation()
    if op:
        raise UserError(str(git.root), f"a {op} is in progress", f"finish or abort the {op}, then retry")
    staged = git.out("diff", "--cached", "--name-only", "--", *targets, REGISTRY_NAME)
    if staged:
        first = staged.splitlines()[0]
        raise UserError(first, "has staged changes", "commit or unstage them (git restore --staged), then retry")
    from experiment_core.deploy.variants import modified

    for target in sorted(modified(git, targets)):  # git's view through the filter: a deployed variant is unchanged
        raise UserError(
            target, "holds an edit experiment-hook did not write, refusing to overwrite it",
            f"commit or save your edit (e.g. into {exp.files[target]}), then retry",
        )  # fmt: skip


def _target_entries(git: Git, exp: Experiment, targets: list[str], backups: Mapping[str, str],
                    promote: bool) -> dict[str, dict[str, str]]:  # fmt: skip
    """The index entry each target gets: the treatment merged onto the control (promote), else the control."""
    files: dict[str, dict[str, str]] = {}
    for target in targets:
        control = control_blob(git, exp, target, backups)
        blob = treatment_blob(git, exp, target, control) if promote else control
        files[target] = {"blob": blob, "mode": _mode(git, target)}
        _checkpoint()
    return files


def _registry_blobs(git: Git, exp_id: str, status: str) -> tuple[str, str]:
    """Blobs of the registry with the new status: the working file's and the committed one's."""
    registry_path = git.root / REGISTRY_NAME
    work_raw = registry_path.read_bytes() if registry_path.exists() else b""
    head_reg = _head_blob(git, REGISTRY_NAME)
    head_raw = git.cat_blob(head_reg) if head_reg else b""
    change = status_change(exp_id, status)
    new_work = edit_registry_text(git.root, work_raw, change).encode()
    try:
        new_head = edit_registry_text(git.root, head_raw, change).encode()
    except UserError:
        new_head = new_work  # the experiment is not committed yet: commit the working registry
    return git.hash_object(new_work), git.hash_object(new_head)


def _analysis_numbers(analysis: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "improvement_pct": analysis.get("improvement_pct"),
        "p_value": (analysis.get("sequential") or {}).get("p_value", analysis.get("p_value")),
        "n_control": (analysis.get("control") or {}).get("n"),
        "n_treatment": (analysis.get("treatment") or {}).get("n"),
    }


# ---- roll-forward (idempotent steps) --------------------------------------------------------------------
def _journal_path(git: Git) -> Path:
    return state_dir(git) / JOURNAL


def _record(git: Git, journal: Mapping[str, Any]) -> None:
    """The decision event into the ledger (once), remembered as this clone's until the team has it."""
    from experiment_core.apply import decision_branch
    from experiment_core.store import ledger_index

    event = journal["event"]
    if not ledger_index.read_with(git, lambda index: index.has_event(event["id"])):
        ledger.append(git, [event], commit=journal["new_commit"] or git.head())
    branch = journal.get("branch")
    decision_branch.remember(git, event, mode=journal.get("mode", "current"), old_head=journal.get("old_head"),
                             ref=branch or None)  # fmt: skip


def roll_forward_branch(git: Git, journal: Mapping[str, Any]) -> Outcome:
    """A decision branch: the event, the branch ref, then the work tree follows the team's decision (the
    treatment for a promotion, the control otherwise) through the filter: git sees nothing changed."""
    from experiment_core.apply import decision_branch
    from experiment_core.clock import format_ts, utc_now
    from experiment_core.deploy.worktree import follow_team

    _checkpoint()
    _record(git, journal)
    _checkpoint()
    decision_branch.create_branch(git, journal["decision_branch"], journal["new_commit"])
    _checkpoint()
    team.refresh(git)
    follow_team(git, load_registry(git.root, state_dir(git)), rng=None, now=format_ts(utc_now()))
    _checkpoint()
    with contextlib.suppress(FileNotFoundError):
        _journal_path(git).unlink()
    return Outcome(journal["exp"], journal["action"], journal["status"], journal["new_commit"],
                   tuple(journal["files"]), journal["message"], journal["decision_branch"])  # fmt: skip


def roll_forward(git: Git, journal: Mapping[str, Any]) -> Outcome:
    if journal.get("mode") == "branch":
        return roll_forward_branch(git, journal)
    new_commit = journal["new_commit"]
    _checkpoint()
    _record(git, journal)
    _checkpoint()
    if new_commit:
        current = git.head()
        old = journal["old_head"]
        if current == old:
            git.update_ref("HEAD", new_commit, old, message="commit: " + journal["message"].splitlines()[0])
        elif current != new_commit:
            raise UserError(str(_journal_path(git)), "HEAD moved while a decision was being applied",
                            "inspect `git log`, then delete the journal file")  # fmt: skip
        _checkpoint()
        entries = {**journal["files"], REGISTRY_NAME: {"blob": journal["registry"]["head_blob"], "mode": "100644"}}
        for path, entry in entries.items():
            git.run("update-index", "--add", "--cacheinfo", f"{entry['mode']},{entry['blob']},{path}")
            _checkpoint()
    targets = list(journal["files"])
    state = filter_state(git)
    records = read_deployed(state)
    after = {t: r for t, r in records.items() if t not in targets}  # the experiment is over here
    if new_commit:
        redeploy(git, state, records, after, targets)  # the index holds the decision: git writes it
        _checkpoint()
    else:
        write_deployed(state, after)
        for path, entry in journal["files"].items():
            atomic_write(git.root / path, git.cat_blob(entry["blob"]),
                         mode=0o755 if entry["mode"] == "100755" else 0o644)  # fmt: skip
            _checkpoint()
    atomic_write(git.root / REGISTRY_NAME, git.cat_blob(journal["registry"]["work_blob"]))
    _checkpoint()
    _forget_assignment(git, journal["exp"])
    team.refresh(git)
    _checkpoint()
    with contextlib.suppress(FileNotFoundError):
        _journal_path(git).unlink()
    return Outcome(journal["exp"], journal["action"], journal["status"], new_commit, tuple(targets),
                   journal["message"])  # fmt: skip


def _forget_assignment(git: Git, exp_id: str) -> None:
    """The experiment ended: this worktree's assignment for it no longer applies (no more trials recorded)."""
    assignments = load_assignments(git)
    if exp_id in assignments:
        del assignments[exp_id]
        save_assignments(git, assignments)


def apply(
    git: Git,
    exp: Experiment,
    action: str,
    analysis: Mapping[str, Any],
    reasons: list[str],
    events: list[ledger.Event],
    promote: bool | None = None,
) -> Outcome:
    """Apply a decision. ``promote`` says which content wins (default: promote for 'promote' only)."""
    recover(git)
    journal = plan(git, exp, action, analysis, reasons, events, action == "promote" if promote is None else promote)
    _checkpoint()
    write_json(_journal_path(git), journal)
    return roll_forward(git, journal)


def recover(git: Git) -> Outcome | None:
    """Finish an apply that a crash interrupted (no-op when there is none)."""
    path = _journal_path(git)
    if not path.exists():
        return None
    journal = read_json(path, None)
    if not isinstance(journal, dict):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a torn journal is impossible (atomic write); an empty one means nothing was applied
        return None
    try:
        return roll_forward(git, journal)
    except GitError as exc:
        raise UserError(str(path), f"could not finish an interrupted decision ({exc})", "fix it, then retry") from None
