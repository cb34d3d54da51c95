"""What a hook is handed, whoever runs it: git (arguments, stdin) or pre-commit (``PRE_COMMIT_*`` variables only),
the re-entry guard, and the one-line warnings. Standard library ``os``/``sys`` only: every hook imports this.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # no runtime import of typing/collections.abc: this is on every hook's path
    from collections.abc import Mapping, Sequence

STATE_DIR = "experiment-hook"  # $(git rev-parse --git-path experiment-hook): this worktree's local state
ACTIVE_FILE = "active"  # "exp<TAB>unit<TAB>foreground" per active unit, for post-commit's json-free fast path
UNITS_DIR = "units"  # <unit>.json: each unit's assignment; <unit>.committed: its first commit happened
IN_PROGRESS = {  # operation -> git-dir paths that exist while it runs
    "rebase": ("rebase-merge", "rebase-apply"),
    "merge": ("MERGE_HEAD",),
    "cherry-pick": ("CHERRY_PICK_HEAD",),
    "revert": ("REVERT_HEAD",),
    "bisect": ("BISECT_LOG",),
}
INTERNAL_ENV = "EXPERIMENT_HOOK_INTERNAL"  # same name as gitio.INTERNAL_ENV (not imported: keep this module light)
RESTORE_HINT = "experiment-hook restore"


def is_internal(env: Mapping[str, str]) -> bool:
    """True inside a git process the tool started itself: our hooks must return at once."""
    return bool(env.get(INTERNAL_ENV))


def checkout_args(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, str, str]:
    """(previous HEAD, new HEAD, flag) of post-checkout; flag ``1`` is a branch checkout."""
    if "PRE_COMMIT_CHECKOUT_TYPE" in env:
        return env.get("PRE_COMMIT_FROM_REF", ""), env.get("PRE_COMMIT_TO_REF", ""), env["PRE_COMMIT_CHECKOUT_TYPE"]
    padded = [*argv, "", "", ""]
    return padded[0], padded[1], padded[2]


def push_args(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, str]:
    """(remote name, remote URL) of pre-push."""
    if "PRE_COMMIT_REMOTE_NAME" in env:
        return env["PRE_COMMIT_REMOTE_NAME"], env.get("PRE_COMMIT_REMOTE_URL", "")
    padded = [*argv, "", ""]
    return padded[0], padded[1]


def warn(message: str) -> None:
    """One line on stderr, prefixed; never raises (a closed stderr must not break git)."""
    try:
        sys.stderr.write("experiment-hook: " + " ".join(message.split("\n")) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def warn_once(state_dir: str, key: str, message: str) -> bool:
    """Warn unless ``key`` was warned about before in this worktree; True if it printed."""
    import json

    path = os.path.join(state_dir, "warned.json")
    try:
        with open(path, encoding="utf-8") as f:
            seen = json.load(f)
        if not isinstance(seen, dict):
            seen = {}
    except (OSError, ValueError):
        seen = {}
    if key in seen:
        return False
    warn(message)
    seen[key] = True
    try:
        os.makedirs(state_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(seen, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return True


def failure_line(stage: str, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return f"{stage} hook skipped ({detail[:300]}); git went on as usual"
