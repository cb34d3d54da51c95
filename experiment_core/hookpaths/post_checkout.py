"""post-checkout: every branch checkout starts a new randomization unit for each running experiment.

For each running experiment: draw the arm and deploy it through git's filter driver
(:mod:`experiment_core.deploy.worktree`): the treatment is the treatment's change merged onto the committed
content, and git sees it as clean. A target holding a user's edit is left alone (a copy is kept as a blob, the
experiment pauses in this worktree, the user is told once). Experiments that ended (or that this branch does not
have) leave the files.

Skipped: file checkouts (flag 0), a rebase/merge/cherry-pick/revert/bisect in progress, unmerged paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from experiment_core import hookenv
from experiment_core.clock import format_ts, utc_now
from experiment_core.deploy.assign import load_assignments, make_rng
from experiment_core.deploy.worktree import Result, follow_team
from experiment_core.gitio import Git
from experiment_core.state import state_dir
from experiment_core.store.spec import Registry, load_registry

GIT_PATHS = (hookenv.STATE_DIR, "HEAD", *(path for paths in hookenv.IN_PROGRESS.values() for path in paths))


def current_branch(git: Git) -> str:
    """The checked-out branch from this worktree's HEAD file (no git process); empty when detached."""
    try:
        text = git.git_path("HEAD").read_text("utf-8").strip()
    except OSError:
        return ""
    prefix = "ref: refs/heads/"
    return text[len(prefix) :] if text.startswith(prefix) else ""


def conflict_line(exp_id: str, target: str) -> str:
    return (f"{target}: the treatment of {exp_id} no longer applies to the committed file (both change the same "
            f"lines); this worktree runs the control. Update .experiments/{exp_id}/{target} to the new control and "
            "commit it")  # fmt: skip


def edit_line(exp_id: str, target: str, blob: str, result: Result) -> str:
    """What happened to a file holding the user's edit: the experiment pauses over it, or it ended here and its
    variant was taken out from under the edit (the file now holds the edit on the control)."""
    if exp_id in result.ended:
        return (f"{target} holds your edit: kept, now on the control ({exp_id}'s variant taken out; copy of the "
                f"file as it was kept as blob {blob[:12]})")
    return (f"{target} holds your edit: left as it is (copy kept as blob {blob[:12]}); {exp_id} pauses in this "
            "worktree until a branch checkout finds the file unchanged (commit the edit: it is committed on top of "
            "the control, never with the treatment)")  # fmt: skip


def tell(sdir: Path, result: Result, registry_status: dict[str, str], team: dict[str, str] | None = None) -> None:
    """Say what the user must know, once per thing (hooks that pre-commit runs show it with ``verbose``).
    ``team``: for an experiment the team decided that this branch's registry does not hold yet, what was decided
    and where the decision commit is."""
    for line in result.messages:
        hookenv.warn(line)
    for exp_id, target, blob in result.edits:
        hookenv.warn_once(str(sdir), f"edit:{exp_id}:{target}:{blob}", edit_line(exp_id, target, blob, result))
    for exp_id, target in result.conflicts:
        hookenv.warn(conflict_line(exp_id, target))
    for exp_id in result.ended:
        status = registry_status.get(exp_id, "gone from the registry")
        if team and exp_id in team:  # said once per worktree: the variant stays until the decision is merged
            arm = "its treatment" if status == "promoted" else "the control"
            hookenv.warn_once(str(sdir), f"team:{exp_id}:{status}", f"{exp_id} is {status.replace('_', ' ')} for the "
                              f"team ({team[exp_id]}): this worktree now runs {arm}, no more trials")  # fmt: skip
        elif status == "promoted":
            hookenv.warn(f"{exp_id} is promoted: its treatment is what this branch commits now")
        else:
            hookenv.warn(f"{exp_id} is {status.replace('_', ' ')}: this worktree no longer runs its variant")
    for exp in result.started:  # said once per experiment and worktree, not on every checkout
        hookenv.warn_once(
            str(sdir), f"started:{exp.id}",
            f"{exp.id} deploys a variant of {', '.join(sorted(exp.files))} on each branch checkout; git sees it as "
            "unchanged, and pulls, merges and your edits go through as usual",
        )  # fmt: skip


def team_view(git: Git, registry: Registry, ended: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(status by experiment as the team sees it, where each decision this branch lacks stands)."""
    from experiment_core.store import decisions

    known = decisions.known(git)
    status = {e.id: e.status for e in decisions.overlay(registry, known).experiments}
    lagging = decisions.followed(registry, known)
    if not any(exp_id in lagging for exp_id in ended):
        return status, {}
    from experiment_core.apply.decision_branch import summary

    return status, {k: summary(git, d, False) for k, d in lagging.items() if k in ended}


def _let_measurements_finish(sdir: str, timeout: float) -> None:
    """A measurement still running from the last commit would be dropped when the variants swap. Drops hit the
    slower arm more often (its runs last longer), which would bias the comparison: wait for it instead."""
    from experiment_core.measure import jobs

    if jobs.pending(sdir):
        hookenv.warn("waiting for the last commit's measurement to finish before swapping variants")
        jobs.wait(sdir, timeout)


def follow(git: Git, *, new_units: bool, head: str | None) -> int:
    """Reconcile this worktree with the registry (new units on a branch checkout); tell the user."""
    sdir = state_dir(git)
    registry = load_registry(git.root, sdir)
    running = registry.running()
    if not running and not load_assignments(git) and not (sdir / "filter" / "deployed").exists():
        return 0
    if new_units:
        _let_measurements_finish(str(sdir), max((e.timeout for e in running), default=0.0))
    result = follow_team(git, registry, rng=make_rng() if new_units else None, now=format_ts(utc_now()),
                         branch=current_branch(git), head=head)  # fmt: skip
    if (result.migrated or result.configured) and git.remotes():
        # first run here (also under pre-commit, where `install` never ran): plain `git fetch` brings the ledger;
        # a clone of 0.1 loses the exact-name refspec that failed every fetch
        from experiment_core.store import sync

        sync.setup_remote(git, sync.default_remote(git, registry.settings.remote))
    tell(sdir, result, *team_view(git, registry, result.ended))
    if result.conflicts and head:  # the team sees it too (status, report)
        from experiment_core.store import ledger

        ledger.append(git, [ledger.make_event("alert", exp_id, kind="treatment_conflict", message=conflict_line(
            exp_id, target)) for exp_id, target in result.conflicts], commit=head)  # fmt: skip
    return 0


def run(git: Git, flag: str) -> int:
    """The whole post-checkout for a repository whose HEAD just moved."""
    if flag != "1":
        return 0  # a file checkout (`git checkout -- FILE`): not a new unit
    head = git.prime(*GIT_PATHS)
    if git.in_progress_operation() is not None:
        return 0
    if git.out("ls-files", "-u"):
        return 0  # unmerged paths (e.g. `checkout -m`): leave everything to the user
    return follow(git, new_units=True, head=head)


def main(argv: Sequence[str]) -> int:
    """Entry of ``python -m experiment_core.hooks.post_checkout``: always exit 0 (never fail a checkout)."""
    if hookenv.is_internal(os.environ):
        return 0
    try:
        _, _, flag = hookenv.checkout_args(argv, os.environ)
        if flag != "1":
            return 0
        return run(Git.for_hook(Path.cwd()), flag)
    except Exception as exc:  # never break git: one line and go on
        hookenv.warn(hookenv.failure_line("post-checkout", exc))
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
