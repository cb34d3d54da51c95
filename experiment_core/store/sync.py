"""Ledger sync through an ordinary git remote: fetch to a side ref, merge with ``cat_sort_uniq``, push with a lease.

Why each step:

* The remote's notes ref is fetched into ``refs/notes/experiments-remote/<remote>``, never over the local
  ``refs/notes/experiments``: a forced fetch there would drop the records only this clone has.
* ``git notes merge -s cat_sort_uniq`` joins two notes on the same commit line by line, sorted, duplicates
  dropped. Every event is one canonical JSON line with a unique id, so the merge is an exact union; readers
  dedup by id anyway, so a replay is harmless.
* The push carries ``--force-with-lease=refs/notes/experiments:<what we merged>``: when another clone pushed in
  between, the lease fails and we fetch, merge and push again. ``--no-verify`` keeps our own pre-push hook out.
* Backup refs ``refs/experiments/backups/*`` (they keep each experiment's control content alive) are pushed too,
  and the remote's are fetched into ``refs/experiments/remote-backups/<remote>/*``.

What a remote sends is data: a notes ref that is not a commit is refused (one line, exit 2) before anything local
changes; garbage lines inside notes are skipped and counted by every reader (:mod:`experiment_core.store.ledger`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from experiment_core.errors import UserError
from experiment_core.gitio import Git, GitError
from experiment_core.store import ledger

NOTES_REF = ledger.NOTES_REF
SIDE_PREFIX = "refs/notes/experiments-remote"
BACKUPS = "refs/experiments/backups"
REMOTE_BACKUPS = "refs/experiments/remote-backups"
MAX_ATTEMPTS = 8
_REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FALLBACK_IDENT = {"GIT_COMMITTER_NAME": "experiment-hook", "GIT_COMMITTER_EMAIL": "experiment-hook@localhost"}


@dataclass
class SyncResult:
    remote: str
    fetched: bool = False  # the remote had notes we did not have
    merge: str = "none"  # none | created | fast-forward | merge
    pushed: bool = False
    attempts: int = 0
    local_before: str | None = None
    local_after: str | None = None
    remote_before: str | None = None
    rejected_backups: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"ledger synced with {self.remote}"]
        parts.append({"none": "nothing new from the remote", "created": "took the remote's ledger",
                      "fast-forward": "took the remote's new records", "merge": "merged the remote's records"
                      }[self.merge])  # fmt: skip
        parts.append("pushed" if self.pushed else "remote already up to date")
        if self.attempts > 1:
            parts.append(f"{self.attempts} attempts (another clone pushed meanwhile)")
        return ", ".join(parts)


def side_ref(remote: str) -> str:
    return f"{SIDE_PREFIX}/{remote}"


def fetch_refspecs(remote: str) -> list[str]:
    """What sync fetches, after ``ls-remote`` showed the refs exist."""
    return [f"+{NOTES_REF}:{side_ref(remote)}", f"+{BACKUPS}/*:{REMOTE_BACKUPS}/{remote}/*"]


def config_refspecs(remote: str) -> list[str]:
    """What a plain ``git fetch REMOTE`` brings: glob refspecs, which match nothing silently while the remote has
    no ledger (an exact name makes every fetch and pull fail with "couldn't find remote ref")."""
    return [f"+{NOTES_REF}*:{side_ref(remote)}*", f"+{BACKUPS}/*:{REMOTE_BACKUPS}/{remote}/*"]


# ---- choosing and preparing the remote -----------------------------------------------------------------
def default_remote(git: Git, configured: str | None = None) -> str:
    """``configured`` (settings.remote), else the current branch's remote, else ``origin``, else the only one."""
    remotes = git.remotes()
    if configured:
        return configured
    branch = git.out("symbolic-ref", "-q", "--short", "HEAD", check=False)
    if branch:
        upstream = git.config_get(f"branch.{branch}.remote")
        if upstream and upstream in remotes:
            return upstream
    if "origin" in remotes:
        return "origin"
    if len(remotes) == 1:
        return remotes[0]
    if not remotes:
        raise UserError(str(git.root), "no git remote to sync with", "add one: git remote add origin URL")
    raise UserError(str(git.root), f"several remotes ({', '.join(remotes)}) and none chosen",
                    "run `experiment-hook sync REMOTE` or set settings.remote in experiments.yaml")  # fmt: skip


def check_remote(git: Git, remote: str) -> None:
    if not _REMOTE_RE.match(remote) or ".." in remote or remote.endswith(".lock"):
        raise UserError(f"remote {remote!r}", "not a usable remote name", "give the name of a configured remote")
    if remote not in git.remotes():
        raise UserError(f"remote {remote!r}", "no such remote", "see `git remote -v`, or git remote add NAME URL")


def setup_remote(git: Git, remote: str) -> bool:
    """Make plain ``git fetch REMOTE`` bring the remote's ledger and backups into side refs (a fresh clone
    fetches no notes by default), and make amend/rebase carry notes. Idempotent; True when config changed."""
    check_remote(git, remote)
    ledger.ensure_config(git)
    have = git.config_get_all(f"remote.{remote}.fetch")
    changed = False
    exact = fetch_refspecs(remote)[0]
    if exact in have:  # what 0.1 configured: fails every fetch while the remote has no ledger
        git.run("config", "--fixed-value", "--unset-all", f"remote.{remote}.fetch", exact)
        changed = True
    for spec in config_refspecs(remote):
        if spec not in have:
            git.run("config", "--add", f"remote.{remote}.fetch", spec)
            changed = True
    return changed


# ---- the steps ---------------------------------------------------------------------------------------------
def _ls_remote(git: Git, remote: str) -> dict[str, str]:
    text = git.out("ls-remote", "--", remote, NOTES_REF, f"{BACKUPS}/*")
    refs: dict[str, str] = {}
    for line in text.splitlines():
        sha, _, name = line.partition("\t")
        if sha and name:
            refs[name.strip()] = sha.strip()
    return refs


def _has_object(git: Git, sha: str) -> bool:
    return git.ok("cat-file", "-e", sha)


def _fetch(git: Git, remote: str, remote_refs: dict[str, str]) -> bool:
    """Fetch what we lack into side refs. Refuses (before any local ref changes) a notes ref that is not a
    commit. True when the notes side ref moved."""
    notes = remote_refs.get(NOTES_REF)
    specs = []
    if notes and git.ref(side_ref(remote)) != notes:
        specs.append(fetch_refspecs(remote)[0])
    if any(name.startswith(BACKUPS + "/") and not _has_object(git, sha) for name, sha in remote_refs.items()):
        specs.append(fetch_refspecs(remote)[1])
    if not specs:
        return False
    before = git.ref(side_ref(remote))
    git.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", remote, *specs)
    after = git.ref(side_ref(remote))
    if after is not None and git.out("cat-file", "-t", after) != "commit":
        if before:
            git.update_ref(side_ref(remote), before, message="experiment-hook: refuse a broken remote ledger")
        else:
            git.run("update-ref", "-d", side_ref(remote))
        raise UserError(f"{remote}: {NOTES_REF}", "the remote's ledger is not a notes commit",
                        "ask whoever pushed it to repair the remote's notes ref; nothing was changed here")  # fmt: skip
    return after != before


def _committer_env(git: Git) -> dict[str, str] | None:
    """``git notes merge`` writes a commit: lend it an identity when the user has none configured."""
    if git.ok("var", "GIT_COMMITTER_IDENT"):
        return None
    return {k: v for k, v in _FALLBACK_IDENT.items() if not os.environ.get(k)}


def _merge(git: Git, remote: str, remote_sha: str) -> str:
    """Merge the fetched remote ledger (``remote_sha`` or newer, in the side ref) into the local notes ref,
    under the ledger lock."""
    with ledger.ledger_lock(git):
        local = git.ref(NOTES_REF)
        if local == remote_sha:
            return "none"
        if local is None:
            git.run("update-ref", "-m", "experiment-hook sync: take the remote ledger", NOTES_REF, remote_sha, "")
            ledger.ensure_config(git)
            return "created"
        if git.ok("merge-base", "--is-ancestor", remote_sha, local):
            return "none"
        fast_forward = git.ok("merge-base", "--is-ancestor", local, remote_sha)
        try:
            ledger.run_locked_ref_update(git, "notes", f"--ref={NOTES_REF}", "merge", "--quiet", "-s",
                                         "cat_sort_uniq", side_ref(remote), env=_committer_env(git))  # fmt: skip
        except GitError as exc:
            raise UserError("git notes merge", f"could not merge the remote ledger ({exc.stderr.strip()[:200]})",
                            "if a manual notes merge is in progress, run `git notes merge --abort`, then retry"
                            ) from None  # fmt: skip
        return "fast-forward" if fast_forward else "merge"


def _push(git: Git, remote: str, expected: str | None) -> tuple[bool, list[str]]:
    """Push the notes ref under a lease and the backup refs. (lease held, rejected backup refs)."""
    specs = [f"{NOTES_REF}:{NOTES_REF}"]
    if git.out("for-each-ref", "--count=1", "--format=%(refname)", BACKUPS):
        specs.append(f"{BACKUPS}/*:{BACKUPS}/*")
    args = ["push", "--porcelain", "--no-verify", f"--force-with-lease={NOTES_REF}:{expected or ''}", "--",
            remote, *specs]  # fmt: skip
    proc_out = git.run(*args, check=False)
    lease_ok = True
    rejected: list[str] = []
    saw_notes = False
    for raw in proc_out.decode("utf-8", "replace").splitlines():
        parts = raw.split("\t")
        if len(parts) < 2 or len(parts[0]) != 1:
            continue
        flag, refs = parts[0], parts[1]
        dst = refs.rpartition(":")[2]
        if dst == NOTES_REF:
            saw_notes = True
            if flag == "!":
                lease_ok = False
        elif flag == "!":
            rejected.append(dst)
    if not saw_notes:
        # no porcelain line for our ref: the push failed before talking refs (network, permissions)
        git.run(*args)  # raises GitError with git's message
    return lease_ok, rejected


def sync(git: Git, remote: str | None = None, *, push: bool = True, attempts: int = MAX_ATTEMPTS) -> SyncResult:
    """Fetch, merge and push the ledger with ``remote`` until our push wins the lease (or ``attempts`` run out).

    The pre-push hook calls this (``settings.sync_on_push``); ``experiment-hook sync`` too.
    """
    remote = remote or default_remote(git)
    setup_remote(git, remote)
    result = SyncResult(remote=remote, local_before=git.ref(NOTES_REF))
    for attempt in range(1, attempts + 1):
        result.attempts = attempt
        remote_refs = _ls_remote(git, remote)
        remote_sha = remote_refs.get(NOTES_REF)
        if attempt == 1:
            result.remote_before = remote_sha
        if _fetch(git, remote, remote_refs):
            result.fetched = True
        if remote_sha is not None:
            merged = _merge(git, remote, remote_sha)
            if merged != "none":
                result.merge = merged
        local = git.ref(NOTES_REF)
        result.local_after = local
        if not push or local is None or local == remote_sha:
            return result
        lease_ok, rejected = _push(git, remote, remote_sha)
        result.rejected_backups = rejected
        if lease_ok:
            result.pushed = True
            return result
    raise UserError(f"sync with {remote}", f"other clones kept pushing; gave up after {attempts} attempts",
                    "run `experiment-hook sync` again")  # fmt: skip


def merge_fetched(git: Git, remote: str) -> str:
    """Merge what a plain ``git fetch``/``git pull`` brought into the remote's side ref (no network): ``none``,
    ``created``, ``fast-forward`` or ``merge``."""
    sha = git.ref(side_ref(remote))
    return "none" if sha is None else _merge(git, remote, sha)


def pre_push(git: Git, remote: str) -> str | None:
    """What the pre-push hook calls with git's first argument (the remote's name, or a URL). Honors
    ``settings.sync_on_push``; never raises: a ledger that could not be synced must not block the user's push.
    Returns one line for the user, or None when syncing on push is turned off."""
    from experiment_core.state import state_dir
    from experiment_core.store.spec import load_registry

    try:
        settings = load_registry(git.root, state_dir(git)).settings
        if not settings.sync_on_push:
            return None
        if remote not in git.remotes():
            return f"experiment-hook: ledger not synced (pushing to {remote!r}, not a named remote): " \
                   "run `experiment-hook sync REMOTE`"  # fmt: skip
        return "experiment-hook: " + sync(git, remote).summary()
    except UserError as exc:
        return f"experiment-hook: ledger not synced: {exc.line()}"
    except GitError as exc:
        detail = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)
        return f"experiment-hook: ledger not synced ({detail}) — run `experiment-hook sync` later"
