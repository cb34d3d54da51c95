"""pre-push: the seam where the decision engine plugs in.

The hook entry parses what git or pre-commit hands it and calls :func:`run` with the repository, the remote and
the refs being pushed. Until the decisions issue lands, :func:`run` records nothing and returns 0 (the push goes
on). The decision engine replaces its body (or calls out from it); everything it needs is in the arguments.

Anything the tool pushes from inside this hook must use ``git push --no-verify`` (a push from pre-push would
re-enter pre-push), and every git process started through :class:`Git` carries the re-entry guard anyway.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from experiment_core import hookenv
from experiment_core.gitio import Git


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
    """Decide, then sync the ledger; the exit code of the hook (non-zero blocks the push).

    A decision made here is a new commit on the current branch: the push in flight carries the commits git
    already chose, so the new one is *not* part of it. The hook says so (push again to publish it), or, with
    ``settings.block_push_on_decision``, stops this push so that the next one carries it.
    """
    del remote_url, refs
    from experiment_core.apply import engine
    from experiment_core.clock import utc_now
    from experiment_core.state import state_dir
    from experiment_core.store import sync
    from experiment_core.store.spec import load_registry

    registry = load_registry(git.root, state_dir(git))
    if not registry.running():
        _say(sync.pre_push(git, remote_name))
        return 0
    result = engine.evaluate(git, utc_now(), say=_say)
    if not result.skipped_evaluation:
        for line in engine.describe(result, dry_run=False):
            _say(line)
    _say(sync.pre_push(git, remote_name))
    committed = [o for o in result.applied if o.commit]
    if committed and registry.settings.block_push_on_decision:
        hookenv.warn("push stopped (block_push_on_decision): run `git push` again to publish the decision commit")
        return 1
    if committed:
        hookenv.warn("the decision commit is not part of this push: run `git push` again to publish it")
    return 0


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
