"""post-merge and post-rewrite: after a pull, merge or rebase, the work tree follows the registry (and the team's
decisions, from the ledger the pull fetched) before the command returns. A promotion, rollback or expiry a teammate
made takes the variant out of this worktree; a changed treatment is deployed anew; a treatment that no longer merges
onto the new control pauses the unit (said once). No new unit starts (that is a branch checkout's job). ``git commit
--amend`` (post-rewrite ``amend``) does nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from experiment_core import hookenv


def run(git_cwd: Path) -> int:
    from experiment_core.gitio import Git
    from experiment_core.hookpaths.post_checkout import GIT_PATHS, follow

    git = Git.for_hook(git_cwd)
    head = git.prime(*GIT_PATHS)  # MERGE_HEAD still exists while post-merge runs: the merge is done, though
    if git.out("ls-files", "-u"):
        return 0
    from experiment_core.apply import decision_branch

    # a pull fetched the team's ledger (side refs): merged now, so a decision the team made is followed at once
    decision_branch.safe(lambda: decision_branch.absorb_fetched(git, hookenv.warn), hookenv.warn,
                         "ledger not merged")  # fmt: skip
    return follow(git, new_units=False, head=head)


def main(stage: str, argv: Sequence[str]) -> int:
    """Entry of the post-merge / post-rewrite hooks: always exit 0 (never fail git)."""
    if hookenv.is_internal(os.environ):
        return 0
    if "PRE_COMMIT_REWRITE_COMMAND" in os.environ:  # one pre-commit id serves both stages
        stage = "post-rewrite"
    if stage == "post-rewrite":
        kind = os.environ.get("PRE_COMMIT_REWRITE_COMMAND") or (argv[0] if argv else "")
        if kind != "rebase":
            return 0  # an amend changes no file of ours
    try:
        return run(Path.cwd())
    except Exception as exc:  # never break git: one line and go on
        hookenv.warn(hookenv.failure_line(stage, exc))
        return 0


if __name__ == "__main__":
    sys.exit(main("post-merge", sys.argv[1:]))
