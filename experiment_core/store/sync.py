"""Ledger sync through an ordinary git remote: fetch to side refs, merge with ``cat_sort_uniq``, push with leases.

The ledger is one notes ref per experiment plus the legacy ``refs/notes/experiments`` (:mod:`.refs`); sync moves
only the refs that changed. Why each step:

* One ``ls-remote`` lists the remote's ledger refs; only those whose commit differs from what this clone last saw
  of them (its side ref) and from its own are fetched, in one ``git fetch``, each into its side ref
  ``refs/notes/remotes/<remote>/experiments[-<exp-id>]``, never over a local ref: a forced fetch there would drop
  the records only this clone has. A fresh clone fetches every ref once; afterwards a sync negotiates only the
  changed ones.
* ``git notes merge -s cat_sort_uniq`` joins two notes on the same commit line by line, sorted, duplicates
  dropped. Every event is one canonical JSON line with a unique id, so the merge is an exact union; readers
  dedup by id anyway, so a replay is harmless. Each changed ref is merged on its own, under the ledger lock.
* One push carries every ref that differs from the remote's, each with ``--force-with-lease=REF:<what we
  merged>``: when another clone pushed in between, that lease fails and we fetch, merge and push again. A ref
  with nothing new (an ended experiment's) is never pushed. ``--no-verify`` keeps our own pre-push hook out.
  After a push the side refs are set to what was pushed, so the next sync does not fetch it back.
* The legacy ref is synced like any other (clones before 0.3 still write it); its events are copied into the
  per-experiment refs once (:mod:`.migrate`).
* Backup refs ``refs/experiments/backups/*`` (they keep each experiment's control content alive) are pushed too,
  and the remote's are fetched into ``refs/experiments/remote-backups/<remote>/*``.

What a remote sends is data: a ledger ref that is not a commit is refused (one line, exit 2) before anything local
changes; garbage lines inside notes are skipped and counted by every reader (:mod:`experiment_core.store.ledger`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from experiment_core.errors import UserError
from experiment_core.gitio import Git, GitError
from experiment_core.store import ledger, refs

NOTES_REF = ledger.NOTES_REF
BACKUPS = "refs/experiments/backups"
REMOTE_BACKUPS = "refs/experiments/remote-backups"
MAX_ATTEMPTS = 8
_REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FALLBACK_IDENT = {"GIT_COMMITTER_NAME": "experiment-hook", "GIT_COMMITTER_EMAIL": "experiment-hook@localhost"}
_MERGES = ("none", "created", "fast-forward", "merge")  # a sync's merge: the strongest of its refs'


@dataclass
class SyncResult:
    remote: str
    fetched: bool = False  # the remote had notes we did not have
    merge: str = "none"  # none | created | fast-forward | merge
    pushed: bool = False
    attempts: int = 0
    local_before: str | None = None  # refs.token of the ledger refs' tips
    local_after: str | None = None
    remote_before: str | None = None
    rejected_backups: list[str] = field(default_factory=list)
    fetched_refs: list[str] = field(default_factory=list)  # ledger refs fetched (each once)
    pushed_refs: list[str] = field(default_factory=list)  # ledger refs pushed
    migrated: int = 0  # legacy events copied into per-experiment refs

    def summary(self) -> str:
        parts = [f"ledger synced with {self.remote}"]
        parts.append({"none": "nothing new from the remote", "created": "took the remote's ledger",
                      "fast-forward": "took the remote's new records", "merge": "merged the remote's records"
                      }[self.merge])  # fmt: skip
        parts.append("pushed" if self.pushed else "remote already up to date")
        if self.migrated:
            parts.append(f"{self.migrated} event{'s' if self.migrated != 1 else ''} of refs/notes/experiments copied "
                         "into per-experiment refs")  # fmt: skip
        if self.attempts > 1:
            parts.append(f"{self.attempts} attempts (another clone pushed meanwhile)")
        return ", ".join(parts)


def side_ref(remote: str, ref: str = NOTES_REF) -> str:
    return refs.side_ref(remote, ref)


def old_side_ref(remote: str) -> str:
    """0.1 and 0.2's side ref of the legacy ref (its glob also named per-experiment refs ``<it>-<exp-id>``)."""
    return f"{refs.OLD_SIDE_PREFIX}/{remote}"


def fetch_refspecs(remote: str, names: list[str]) -> list[str]:
    """What sync fetches: the ledger refs ``names``, each into its side ref."""
    return [f"+{ref}:{side_ref(remote, ref)}" for ref in names]


def backup_refspec(remote: str) -> str:
    return f"+{BACKUPS}/*:{REMOTE_BACKUPS}/{remote}/*"


def config_refspecs(remote: str) -> list[str]:
    """What a plain ``git fetch REMOTE`` brings: glob refspecs, which match nothing silently while the remote has
    no ledger (an exact name makes every fetch and pull fail with "couldn't find remote ref")."""
    return [refs.fetch_glob(remote), backup_refspec(remote)]


def _old_refspecs(remote: str) -> list[str]:
    """What 0.1 (exact) and 0.2 (glob) configured: the side ref names they give collide (remote ``origin``'s
    experiment ``eu`` and remote ``origin-eu``'s ledger)."""
    return [f"+{NOTES_REF}:{old_side_ref(remote)}", f"+{refs.GLOB}:{old_side_ref(remote)}*"]


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
    fetches no notes by default), and make amend/rebase carry notes. What 0.1 and 0.2 configured goes, and so do
    their side refs (a cache of the remote's: the next sync fetches what it needs). Idempotent; True when config
    changed."""
    check_remote(git, remote)
    ledger.ensure_config(git)
    have = git.config_get_all(f"remote.{remote}.fetch")
    changed = False
    for old in _old_refspecs(remote):
        if old in have:
            git.run("config", "--fixed-value", "--unset-all", f"remote.{remote}.fetch", old)
            changed = True
    if changed:
        stale = refs.list_refs(git, old_side_ref(remote), old_side_ref(remote) + "-*")
        if stale:
            git.run("update-ref", "--stdin", input="".join(f"delete {name}\n" for name in stale).encode())
    for spec in config_refspecs(remote):
        if spec not in have:
            git.run("config", "--add", f"remote.{remote}.fetch", spec)
            changed = True
    return changed


# ---- the steps ---------------------------------------------------------------------------------------------
def _ls_remote(git: Git, remote: str) -> dict[str, str]:
    """The remote's ledger refs and backup refs: {name: sha}."""
    found = refs.parse_refs(git.out("ls-remote", "--", remote, refs.GLOB, f"{BACKUPS}/*"))
    return {name: sha for name, sha in found.items() if refs.is_ledger_ref(name) or name.startswith(BACKUPS + "/")}


def _has_object(git: Git, sha: str) -> bool:
    return git.ok("cat-file", "-e", sha)


@dataclass
class _Seen:
    """This clone's ledger tips and what it last saw of the remote's (side refs), from one ``for-each-ref``."""

    local: dict[str, str]
    side: dict[str, str]  # {ledger ref: commit of its side ref}
    backups: bool = False  # this clone has backup refs (they are pushed too)

    @classmethod
    def read(cls, git: Git, remote: str) -> _Seen:
        found = refs.list_refs(git, refs.LEGACY, refs.PREFIX + "*", refs.side_prefix(remote), BACKUPS + "/")
        side = {ref: sha for name, sha in found.items() if (ref := refs.from_side(remote, name))}
        return cls(refs.ledger_tips(found), side, any(name.startswith(BACKUPS + "/") for name in found))


def _fetch(git: Git, remote: str, remote_refs: dict[str, str], seen: _Seen) -> list[str]:
    """Fetch what we lack into side refs, in one ``git fetch``. Refuses (before any local ref changes) a ledger
    ref that is not a commit. The ledger refs whose side ref moved."""
    wanted = [ref for ref, sha in refs.ledger_tips(remote_refs).items()
              if sha != seen.side.get(ref) and sha != seen.local.get(ref)]  # fmt: skip
    specs = fetch_refspecs(remote, wanted)
    if any(name.startswith(BACKUPS + "/") and not _has_object(git, sha) for name, sha in remote_refs.items()):
        specs.append(backup_refspec(remote))
    if not specs:
        return []
    git.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", remote, *specs)
    if not wanted:
        return []
    after = _Seen.read(git, remote).side
    moved = [ref for ref in wanted if after.get(ref) != seen.side.get(ref)]
    types = git.run("cat-file", "--batch-check=%(objecttype)", input="".join(f"{after[ref]}\n" for ref in moved
                                                                              if ref in after).encode())  # fmt: skip
    broken = [ref for ref, kind in zip(moved, types.decode().split(), strict=False) if kind != "commit"]
    if broken:
        restore = [f"update {side_ref(remote, ref)} {seen.side[ref]}\n" if ref in seen.side
                   else f"delete {side_ref(remote, ref)}\n" for ref in moved]  # fmt: skip
        git.run("update-ref", "-m", "experiment-hook: refuse a broken remote ledger", "--stdin",
                input="".join(restore).encode())  # fmt: skip
        raise UserError(f"{remote}: {broken[0]}", "the remote's ledger is not a notes commit",
                        "ask whoever pushed it to repair the remote's notes ref; nothing was changed here")  # fmt: skip
    return moved


def _committer_env(git: Git) -> dict[str, str] | None:
    """``git notes merge`` writes a commit: lend it an identity when the user has none configured."""
    if git.ok("var", "GIT_COMMITTER_IDENT"):
        return None
    return {k: v for k, v in _FALLBACK_IDENT.items() if not os.environ.get(k)}


def _merge(git: Git, remote: str, remote_sha: str, ref: str = NOTES_REF) -> str:
    """Merge the fetched remote ledger ref ``ref`` (``remote_sha`` or newer, in its side ref) into the local one,
    under the ledger lock."""
    with ledger.ledger_lock(git):
        local = git.ref(ref)
        if local == remote_sha:
            return "none"
        if local is None:
            git.run("update-ref", "-m", "experiment-hook sync: take the remote ledger", ref, remote_sha, "")
            return "created"
        if git.ok("merge-base", "--is-ancestor", remote_sha, local):
            return "none"
        fast_forward = git.ok("merge-base", "--is-ancestor", local, remote_sha)
        try:
            ledger.run_locked_ref_update(git, "notes", f"--ref={ref}", "merge", "--quiet", "-s", "cat_sort_uniq",
                                         side_ref(remote, ref), env=_committer_env(git), ref=ref)  # fmt: skip
        except GitError as exc:
            raise UserError("git notes merge", f"could not merge the remote ledger ({exc.stderr.strip()[:200]})",
                            "if a manual notes merge is in progress, run `git notes merge --abort`, then retry"
                            ) from None  # fmt: skip
        return "fast-forward" if fast_forward else "merge"


def _push(git: Git, remote: str, expected: Mapping[str, str | None], backups: bool) -> tuple[bool, list[str]]:
    """Push the ledger refs ``expected`` names, each under a lease (the remote's commit we merged, None: must not
    exist), and the backup refs (when there are), in one ``git push``. (every lease held, rejected backup refs)."""
    specs = [f"{ref}:{ref}" for ref in expected]
    if backups:
        specs.append(f"{BACKUPS}/*:{BACKUPS}/*")
    leases = [f"--force-with-lease={ref}:{sha or ''}" for ref, sha in expected.items()]
    args = ["push", "--porcelain", "--no-verify", *leases, "--", remote, *specs]
    proc_out = git.run(*args, check=False)
    lease_ok = True
    rejected: list[str] = []
    saw = set()
    for raw in proc_out.decode("utf-8", "replace").splitlines():
        parts = raw.split("\t")
        if len(parts) < 2 or len(parts[0]) != 1:
            continue
        flag, dst = parts[0], parts[1].rpartition(":")[2]
        if dst in expected:
            saw.add(dst)
            if flag == "!":
                lease_ok = False
        elif flag == "!":
            rejected.append(dst)
    if not saw:
        # no porcelain line for our refs: the push failed before talking refs (network, permissions)
        git.run(*args)  # raises GitError with git's message
    return lease_ok, rejected


def _pushed(git: Git, remote: str, local: Mapping[str, str], names: list[str]) -> None:
    """The remote now holds ``local``'s commits of ``names``: so do their side refs (the next sync need not
    fetch them back). Only after our leases held: nobody else moved them in between."""
    git.run("update-ref", "-m", "experiment-hook sync: pushed", "--stdin",
            input="".join(f"update {side_ref(remote, ref)} {local[ref]}\n" for ref in names).encode())  # fmt: skip


def sync(git: Git, remote: str | None = None, *, push: bool = True, attempts: int = MAX_ATTEMPTS) -> SyncResult:
    """Fetch, merge and push the ledger with ``remote`` until our push wins its leases (or ``attempts`` run out).

    The pre-push hook calls this (``settings.sync_on_push``); ``experiment-hook sync`` too.
    """
    remote = remote or default_remote(git)
    setup_remote(git, remote)
    result = SyncResult(remote=remote)
    for attempt in range(1, attempts + 1):
        result.attempts = attempt
        remote_refs = _ls_remote(git, remote)
        remote_notes = refs.ledger_tips(remote_refs)
        if attempt == 1:
            result.remote_before = refs.token(remote_notes)
        local, backups = _take_remote(git, remote, remote_refs, remote_notes, result)
        result.local_after = refs.token(local)
        todo = {ref: remote_notes.get(ref) for ref, sha in local.items() if remote_notes.get(ref) != sha}
        if not push or not todo:
            return result
        lease_ok, rejected = _push(git, remote, todo, backups)
        result.rejected_backups = rejected
        if lease_ok:
            _pushed(git, remote, local, list(todo))
            result.pushed = True
            result.pushed_refs = list(todo)
            return result
    raise UserError(f"sync with {remote}", f"other clones kept pushing; gave up after {attempts} attempts",
                    "run `experiment-hook sync` again")  # fmt: skip


def merge_fetched(git: Git, remote: str) -> str:
    """Merge what a plain ``git fetch``/``git pull`` brought into the remote's side refs (no network): the
    strongest of ``none``, ``created``, ``fast-forward`` or ``merge`` over the ledger refs that moved."""
    local = refs.tips(git)
    strongest = "none"
    for side, sha in refs.list_refs(git, refs.side_prefix(remote) + "experiments*").items():
        ref = refs.from_side(remote, side)
        if ref is None or local.get(ref) == sha:
            continue
        merged = _merge(git, remote, sha, ref)
        strongest = max(strongest, merged, key=_MERGES.index)
    return strongest


def _take_remote(git: Git, remote: str, remote_refs: dict[str, str], remote_notes: dict[str, str],
                 result: SyncResult) -> tuple[dict[str, str], bool]:  # fmt: skip
    """Fetch and merge every ledger ref the remote changed, then copy the legacy ref's new events into
    per-experiment refs (:mod:`.migrate`). This clone's ledger tips afterwards, and whether it has backup refs."""
    from experiment_core.store import migrate

    seen = _Seen.read(git, remote)
    if result.attempts == 1:
        result.local_before = refs.token(seen.local)
    changed = False
    fetched = _fetch(git, remote, remote_refs, seen)
    if fetched:
        result.fetched = True
        result.fetched_refs += [ref for ref in fetched if ref not in result.fetched_refs]
    for ref, sha in remote_notes.items():
        if sha == seen.local.get(ref):
            continue
        merged = _merge(git, remote, sha, ref)
        changed = changed or merged != "none"
        if _MERGES.index(merged) > _MERGES.index(result.merge):
            result.merge = merged
    local = refs.tips(git) if changed else seen.local
    copied = migrate.migrate(git, local.get(refs.LEGACY)).copied
    result.migrated += copied
    return (refs.tips(git) if copied else local), seen.backups


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
