"""pre-push: the ledger synced (the team's decisions learned first), the decisions that are due made and published,
the work tree following the team's decisions.

The hook entry parses what git or pre-commit hands it and calls :func:`run` with the repository, the remote and
the refs being pushed. The push in flight is never touched.

Anything the tool pushes from inside this hook must use ``git push --no-verify`` (a push from pre-push would
re-enter pre-push), and every git process started through :class:`Git` carries the re-entry guard anyway.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from experiment_core import hookenv
from experiment_core.errors import UserError
from experiment_core.gitio import Git, GitError

if TYPE_CHECKING:
    from experiment_core.apply import lifecycle
    from experiment_core.store.spec import Settings


@dataclass(frozen=True)
class PushedRef:
    """One line of pre-push's stdin: ``<local ref> <local sha> <remote ref> <remote sha>``."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_refs(text: str) -> list[PushedRef]:
    refs = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            refs.append(PushedRef(*parts))
    return refs


def refs_from_env(env: Mapping[str, str]) -> list[PushedRef]:
    """pre-commit passes only the first pushed ref with new commits, through ``PRE_COMMIT_*`` variables."""
    if "PRE_COMMIT_TO_REF" not in env:
        return []
    return [PushedRef(env.get("PRE_COMMIT_LOCAL_BRANCH", ""), env.get("PRE_COMMIT_TO_REF", ""),
                      env.get("PRE_COMMIT_REMOTE_BRANCH", ""), env.get("PRE_COMMIT_FROM_REF", ""))]  # fmt: skip


def _say(line: str | None) -> None:
    if line:
        hookenv.warn(line.removeprefix("experiment-hook: "))


def run(git: Git, remote_name: str, remote_url: str, refs: Sequence[PushedRef]) -> int:
    """Learn the team's decisions (ledger sync), decide what is due, publish it, follow it; the exit code of the
    hook (non-zero blocks the push).

    ``decision_commits: branch`` (the default): a decision's commit goes on a branch of its own off the remote's
    default branch, pushed with ``--no-verify`` after the ledger sync: the push in flight carries the commits git
    already chose, untouched, and nothing more is asked of the user. ``current``: the commit is made on the
    current branch and is *not* part of this push; the hook says so (push again), or, with
    ``settings.block_push_on_decision``, stops this push so that the next one carries it.
    """
    del remote_url, refs
    from experiment_core.apply import engine
    from experiment_core.clock import utc_now
    from experiment_core.state import state_dir
    from experiment_core.store.spec import load_registry

    settings = load_registry(git.root, state_dir(git)).settings
    remote = _remote(git, remote_name, settings.sync_on_push)
    changed = remote is not None and team_sync(git, remote, settings, _say)  # first learn what the team decided
    registry = engine.team_registry(git)
    applied: list[lifecycle.Outcome] = []
    if registry.running():
        result = engine.evaluate(git, utc_now(), say=_say)
        if not result.skipped_evaluation:
            for line in engine.describe(result, dry_run=False):
                _say(line)
        applied = result.applied
        if remote is not None and applied:
            team_sync(git, remote, settings, _say, announce=False, failed=WAITS)  # the team's now; its branch pushed
    if changed:
        follow_now(git)
    committed = [o for o in applied if o.commit and not o.branch]
    if committed and settings.block_push_on_decision:
        hookenv.warn("push stopped (block_push_on_decision): run `git push` again to publish the decision commit")
        return 1
    if committed:
        hookenv.warn("the decision commit is not part of this push: run `git push` again to publish it")
    return 0


WAITS = "decision kept in this clone, not published yet"


def follow_now(git: Git) -> None:
    """The work tree follows the team's decisions now (no new unit), unless a rebase, merge or the like is under
    way or paths are unmerged: then the hook that ends it does."""
    if git.in_progress_operation() is not None or git.out("ls-files", "-u"):
        return
    from experiment_core.hookpaths.post_checkout import follow

    follow(git, new_units=False, head=None)


def _remote(git: Git, remote: str, sync_on_push: bool) -> str | None:
    """The named remote to sync the ledger with, or None (syncing off, or a push to a URL: said once here)."""
    if not sync_on_push:
        return None
    if remote not in git.remotes():
        _say(f"ledger not synced (pushing to {remote!r}, not a named remote): run `experiment-hook sync REMOTE`")
        return None
    return remote


def team_sync(git: Git, remote: str, settings: Settings, say: Callable[[str], None], announce: bool = True,
              failed: str = "ledger not synced") -> bool:  # fmt: skip
    """The ledger synced and the team's decisions settled (:func:`decision_branch.sync_team`); never raises: a
    ledger that could not be synced must not block the user's push. True when the decisions followed changed."""
    from experiment_core.apply import decision_branch

    try:
        return decision_branch.sync_team(git, remote, settings, say, announce=announce)[1]
    except UserError as exc:
        say(f"{failed}: {exc.line()}")
    except GitError as exc:
        lines = exc.stderr.strip().splitlines() or [str(exc)]
        detail = next((line for line in lines if line.startswith("fatal:")), lines[-1]).removeprefix("fatal: ")
        say(f"{failed} ({detail}) — run `experiment-hook sync` later")
    return False


def main(argv: Sequence[str]) -> int:
    """Entry of ``python -m experiment_core.hooks.pre_push``."""
    if hookenv.is_internal(os.environ):
        return 0
    remote_name, remote_url = hookenv.push_args(argv, os.environ)
    if "PRE_COMMIT_REMOTE_NAME" in os.environ:
        refs = refs_from_env(os.environ)
    else:
        refs = parse_refs(sys.stdin.read() if not sys.stdin.isatty() else "")
    try:
        return run(Git.for_hook(Path.cwd()), remote_name, remote_url, refs)
    except Exception as exc:  # a failure of ours never blocks a push
        hookenv.warn(hookenv.failure_line("pre-push", exc))
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
