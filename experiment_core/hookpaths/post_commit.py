"""post-commit: hand the commit's trials to a measurement job.

This is the latency-critical path (every commit): it spawns no git process and imports only ``os``, ``sys`` and
``time`` (not even ``json``: 5 ms). It finds the git dir as git does (``GIT_DIR``, or ``.git`` as a directory or
a ``gitdir:`` file), reads the newest line of the HEAD reflog to tell a new commit from an amend or a rebase pick,
reads the plain-text list of active units, and starts ``experiment_core.measure.commit_trials`` (detached by
default; waited for when an experiment says ``foreground: true``). Everything that needs the registry, the
ledger or git runs there.
"""

from __future__ import annotations

import os
import sys
import time

from experiment_core import hookenv
from experiment_core.measure import jobs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

NEW_WORK_SUBJECTS = ("commit: ", "commit (initial): ", "commit (merge): ")
# A merge commit is the user's new work; the other operations commit for the user (never a trial).
NOT_NEW_WORK = tuple(path for op, paths in hookenv.IN_PROGRESS.items() if op != "merge" for path in paths)


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


def parse_active(text: str) -> list[tuple[str, str, bool]]:
    """(experiment, unit, foreground) of each active unit."""
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] and parts[1]:
            out.append((parts[0], parts[1], parts[2] == "1"))
    return out


def first_commit_of(state_dir: str, unit: str) -> bool:
    """True exactly once per unit (an O_EXCL marker): its first commit also records assignment -> commit."""
    directory = os.path.join(state_dir, hookenv.UNITS_DIR)
    os.makedirs(directory, exist_ok=True)
    try:
        os.close(os.open(os.path.join(directory, unit + ".committed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def run(cwd: str, env: Mapping[str, str]) -> int:
    git_dir = find_git_dir(cwd, env)
    if git_dir is None:
        return 0
    if any(os.path.exists(os.path.join(git_dir, name)) for name in NOT_NEW_WORK):
        return 0  # a rebase/cherry-pick/revert/bisect commits for the user: never a trial, never run the command
    state_dir = os.path.join(git_dir, hookenv.STATE_DIR)
    try:
        with open(os.path.join(state_dir, hookenv.ACTIVE_FILE), encoding="utf-8") as f:
            active = parse_active(f.read())
    except OSError:
        return 0  # no experiment assigned in this worktree
    if not active:
        return 0
    entry = last_reflog(git_dir)
    if entry is None or not is_new_work(entry[1]):
        return 0
    commit, _ = entry
    units = [f"{exp}:{unit}:{int(first_commit_of(state_dir, unit))}" for exp, unit, _ in active]
    args = [cwd, commit, repr(time.time()), *units]
    foreground = any(fg for _, _, fg in active)
    code = jobs.spawn(state_dir, args, foreground)
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
