"""post-commit: hand the commit's trials to a measurement job.

This is the latency-critical path (every commit), so it spawns no git process and imports only ``os``, ``sys``,
``json``: it finds the git dir as git does (``GIT_DIR``, or ``.git`` as a directory or a ``gitdir:`` file), reads
the newest line of the HEAD reflog to tell a new commit from an amend or a rebase pick, reads the local assignment
state, and starts ``experiment_core.trials`` (detached by default; waited for when an experiment says
``foreground: true``). Everything that needs the registry, the ledger or git runs in that job.
"""

from __future__ import annotations

import json
import os
import sys
import time

from experiment_core import hookenv, jobs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

STATE_DIR = "experiment-hook"
ASSIGNMENTS_FILE = "assignments.json"
NEW_WORK_SUBJECTS = ("commit: ", "commit (initial): ", "commit (merge): ")
IN_PROGRESS = ("rebase-merge", "rebase-apply", "CHERRY_PICK_HEAD", "REVERT_HEAD", "BISECT_LOG")


def find_git_dir(cwd: str, env: Mapping[str, str]) -> str | None:
    """This worktree's git dir without a git process (hooks run at the top of the work tree)."""
    if env.get("GIT_DIR"):
        return os.path.join(cwd, env["GIT_DIR"])
    dot_git = os.path.join(cwd, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    try:
        with open(dot_git, encoding="utf-8") as f:
            line = f.readline().strip()
    except OSError:
        return None
    if line.startswith("gitdir:"):
        return os.path.join(cwd, line[len("gitdir:") :].strip())
    return None


def last_reflog(git_dir: str) -> tuple[str, str] | None:
    """(new sha, subject) of the newest HEAD reflog entry, read from the file's tail."""
    try:
        with open(os.path.join(git_dir, "logs", "HEAD"), "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            tail = f.read()
    except OSError:
        return None
    lines = [line for line in tail.split(b"\n") if line.strip()]
    if not lines:
        return None
    meta, _, subject = lines[-1].decode("utf-8", "replace").partition("\t")
    fields = meta.split(" ")
    if len(fields) < 2:
        return None
    return fields[1], subject


def is_new_work(subject: str) -> bool:
    """A commit a person made now: not an amend, a rebase pick, a cherry-pick, a revert."""
    return subject.startswith(NEW_WORK_SUBJECTS)


def active_assignments(raw: object) -> dict[str, dict[str, object]]:
    if not isinstance(raw, dict):
        return {}
    return {
        str(exp): a
        for exp, a in raw.items()
        if isinstance(a, dict) and a.get("arm") in ("control", "treatment") and isinstance(a.get("unit"), str)
    }


def _write_json(path: str, data: object) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def run(cwd: str, env: Mapping[str, str]) -> int:
    git_dir = find_git_dir(cwd, env)
    if git_dir is None:
        return 0
    if any(os.path.exists(os.path.join(git_dir, name)) for name in IN_PROGRESS):
        return 0  # a rebase/cherry-pick/revert/bisect commits for the user: never a trial, never run the command
    state_dir = os.path.join(git_dir, STATE_DIR)
    state_path = os.path.join(state_dir, ASSIGNMENTS_FILE)
    try:
        with open(state_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return 0  # no experiment assigned in this worktree
    active = active_assignments(raw)
    if not active:
        return 0
    entry = last_reflog(git_dir)
    if entry is None or not is_new_work(entry[1]):
        return 0
    commit, _ = entry
    committed_at = time.time()
    job = {"v": 1, "root": cwd, "commit": commit, "committed_at": committed_at, "assignments": active}
    for a in active.values():  # the unit's first commit also records the time from assignment to commit
        commits = a.get("commits", 0)
        a["commits"] = (commits if isinstance(commits, int) else 0) + 1
    assert isinstance(raw, dict)
    raw.update(active)
    _write_json(state_path, raw)
    foreground = any(a.get("foreground") is True for a in active.values())
    code = jobs.spawn(state_dir, job, cwd, foreground)
    if code != 0:
        hookenv.warn(f"measurement job exited {code}; the commit is fine (see `experiment-hook status`)")
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry of ``python -m experiment_core.hooks.post_commit``: always exit 0 (post-commit never fails git)."""
    if hookenv.is_internal(os.environ):
        return 0
    try:
        return run(os.getcwd(), os.environ)
    except Exception as exc:  # never break git: one line and go on
        hookenv.warn(hookenv.failure_line("post-commit", exc))
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
