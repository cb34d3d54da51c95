"""Decision commits where the team's code goes: a branch of its own off the remote's default branch, pushed.

``settings.decision_commits: branch`` (the default): a decision's commit (the experiment's files and its registry
status, the seed's message) is built with plumbing — a temporary index on the base commit, ``git commit-tree`` —
on ``<remote>/HEAD`` (or ``settings.base_branch``), never by checking anything out, and lands on
``experiment-hook/<action>-<exp-id>``: a pull request away from main. The branch is pushed with ``--no-verify``
(and ``-o`` for each of ``settings.push_options``) once the decision is the team's: after the ledger sync that
published it. A remote that cannot be reached leaves it waiting locally; the next sync or push sends it.
``current`` (and a clone without a remote) commits on the current branch as before.

One decision per experiment, team-wide (:mod:`experiment_core.store.decisions` holds the rule): this clone's
decisions are remembered until they are settled. Syncing, a decision of ours that never reached the remote and
meets another one the team already has is retracted (a ``status`` event of status ``superseded``) and its local
effects undone — its branch moved to ``refs/experiment-hook/superseded/<exp>/<event-id>`` (nothing is lost), a
``current`` commit still at the tip of its branch taken back — and the work tree follows the team's decision.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from experiment_core.errors import UserError
from experiment_core.gitio import Git, GitError
from experiment_core.hookenv import STATE_DIR
from experiment_core.state import read_json, write_json
from experiment_core.store import decisions as team
from experiment_core.store import ledger, refs
from experiment_core.store.spec import REGISTRY_NAME, Experiment, Settings, edit_registry_text, status_change
from experiment_core.store.sync import SyncResult

PREFIX = "experiment-hook"
SUPERSEDED_REFS = "refs/experiment-hook/superseded"
OWN_FILE = "own-decisions.json"  # in the common dir: this clone's decisions until they are settled and pushed


def branch_name(action: str, exp_id: str) -> str:
    return f"{PREFIX}/{action}-{exp_id}"


# ---- where the decision commit goes ----------------------------------------------------------------------------
def target(git: Git, settings: Settings) -> str | None:
    """The remote whose default branch receives decision branches, or None: commit on the current branch
    (``decision_commits: current``, or a clone without a remote)."""
    if settings.decision_commits == "current":
        return None
    remotes = git.remotes()
    if settings.remote in remotes:
        return settings.remote
    if "origin" in remotes:
        return "origin"
    return remotes[0] if len(remotes) == 1 else None


def base_commit(git: Git, settings: Settings, remote: str) -> tuple[str, str]:
    """(name, commit) of what a decision branch is built on: ``settings.base_branch`` (as the remote has it,
    else the local branch), else ``<remote>/HEAD`` (asked from the remote once when the clone does not know it)."""
    names = [settings.base_branch] if settings.base_branch else []
    if not names:
        head = git.out("symbolic-ref", "-q", f"refs/remotes/{remote}/HEAD", check=False)
        names = [head.removeprefix(f"refs/remotes/{remote}/")] if head else _remote_default(git, remote)
    for name in names:
        for ref in (f"refs/remotes/{remote}/{name}", f"refs/heads/{name}"):
            sha = git.ref(ref + "^{commit}")
            if sha:
                return (f"{remote}/{name}" if ref.startswith("refs/remotes/") else name), sha
    raise UserError(f"{remote}/HEAD", "no default branch known to build the decision commit on",
                    f"run `git remote set-head {remote} --auto`, or set settings.base_branch")  # fmt: skip


def _remote_default(git: Git, remote: str) -> list[str]:
    """The remote's default branch, asked once (``ls-remote --symref``) and remembered as ``<remote>/HEAD``;
    a clone of an empty repository, or a CI checkout, often lacks it."""
    proc = git.call("ls-remote", "--symref", "--", remote, "HEAD")
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            name = line[len("ref: refs/heads/") : -len("\tHEAD")]
            tracking = f"refs/remotes/{remote}/{name}"
            if not git.ref(tracking):
                git.call("fetch", "--quiet", "--no-tags", "--", remote, f"+refs/heads/{name}:{tracking}")
            if git.ref(tracking):
                git.call("symbolic-ref", f"refs/remotes/{remote}/HEAD", tracking)
            return [name]
    return ["main", "master"]


# ---- the commit, built on the base with plumbing ---------------------------------------------------------------
def _blob_at(git: Git, commit: str, path: str) -> tuple[str, str] | None:
    """(mode, blob) of ``path`` in ``commit``, or None."""
    line = git.out("ls-tree", commit, "--", path, check=False)
    parts = line.split()
    return (parts[0], parts[2]) if len(parts) >= 3 and parts[1] == "blob" else None


def entries_on(git: Git, base: str, exp: Experiment, status: str, promote: bool,
               backups: Mapping[str, str]) -> dict[str, dict[str, str]]:  # fmt: skip
    """The index entries the decision commit changes on ``base``: each target (the treatment's change merged onto
    the base's content for a promotion, the base's content otherwise) and the registry with the new status."""
    from experiment_core.deploy.filter_driver import merge3
    from experiment_core.deploy.worktree import base_content

    files: dict[str, dict[str, str]] = {}
    for target_path, treatment_path in sorted(exp.files.items()):
        found = _blob_at(git, base, target_path)
        if found is None:
            blob = backups.get(target_path)
            if not blob or not git.ok("cat-file", "-e", blob):
                raise UserError(target_path, f"not on {base[:10]} and no backup", "run `experiment-hook sync`")
            found = ("100644", blob)
        mode, control = found
        if promote:
            treatment = _blob_at(git, base, treatment_path)
            data = git.cat_blob(treatment[1]) if treatment else (git.root / treatment_path).read_bytes()
            old = base_content(git, exp, target_path)
            merged = data if old is None else merge3(git.cat_blob(control), old, data)
            if merged is None:
                raise UserError(treatment_path, "its change no longer applies to the default branch's file",
                                f"update {treatment_path} to the new {target_path}, commit it, then retry")  # fmt: skip
            control = git.hash_object(merged)
        files[target_path] = {"blob": control, "mode": mode}
    registry = _blob_at(git, base, REGISTRY_NAME)
    raw = git.cat_blob(registry[1]) if registry else b""
    try:
        text = edit_registry_text(git.root, raw, status_change(exp.id, status))
    except UserError:
        raise UserError(exp.id, "is not in the default branch's experiments.yaml yet",
                        "merge the experiment into the default branch; the decision stands meanwhile") from None
    files[REGISTRY_NAME] = {"blob": git.hash_object(text.encode("utf-8")), "mode": "100644"}
    return files


def build_commit(git: Git, base: str, entries: Mapping[str, Mapping[str, str]], message: str) -> str:
    """A commit of ``entries`` on top of ``base``: a temporary index, ``write-tree``, ``commit-tree``. The user's
    index, work tree and branches are not touched."""
    with tempfile.TemporaryDirectory(prefix="experiment-hook-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git.run("read-tree", base, env=env)
        for path, entry in entries.items():
            git.run("update-index", "--add", "--cacheinfo", f"{entry['mode']},{entry['blob']},{path}", env=env)
        tree = git.out("write-tree", env=env)
    return git.run("commit-tree", tree, "-p", base, "-F", "-", input=message.encode()).decode().strip()


def create_branch(git: Git, name: str, commit: str) -> None:
    """The local decision branch (idempotent: a crash's roll-forward finds it made)."""
    have = git.ref(f"refs/heads/{name}")
    if have == commit:
        return
    if have is not None:
        raise UserError(f"branch {name}", "exists already and holds another commit",
                        f"rename or delete it (git branch -m {name} {name}-old), then retry")  # fmt: skip
    git.update_ref(f"refs/heads/{name}", commit, "", message="experiment-hook: decision commit")


# ---- this clone's own decisions until settled ----------------------------------------------------------------
def _own_path(git: Git) -> Path:
    path = git.common_dir / STATE_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path / OWN_FILE


def own(git: Git) -> dict[str, dict[str, Any]]:
    raw = read_json(_own_path(git), {})
    return {str(k): v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}


def remember(git: Git, event: Mapping[str, Any], *, mode: str, old_head: str | None, ref: str | None) -> None:
    """Note a decision this clone just made: settled by the next sync, its branch pushed after that."""
    mine = own(git)
    mine[str(event["exp"])] = {"id": event["id"], "commit": event.get("commit"), "branch": event.get("branch"),
                               "mode": mode, "old_head": old_head, "ref": ref, "published": False,
                               "pushed": event.get("branch") is None}  # fmt: skip
    write_json(_own_path(git), mine)


def _save_own(git: Git, mine: Mapping[str, Any]) -> None:
    write_json(_own_path(git), dict(mine))


def mark_published(git: Git) -> None:
    """The ledger push succeeded: every decision of ours is now on the remote (the team's to see)."""
    mine = own(git)
    if any(not o.get("published") for o in mine.values()):
        _save_own(git, {k: {**o, "published": True} for k, o in mine.items()})


# ---- settling a race: the decision that reached the team first stands ----------------------------------------
def settle(git: Git, remote: str | None, say: Callable[[str], None]) -> bool:
    """After the ledger was merged with the remote's: retract and undo each decision of ours that lost; refresh
    the decisions the hooks follow. True when something of ours was undone."""
    from experiment_core.store import ledger_index

    def read(index: ledger_index.LedgerIndex) -> tuple[list[ledger.Event], str | None]:
        return index.events(None, ("decision", "status")), index.notes_commit

    events, notes_commit = ledger_index.read_with(git, read)
    mine = own(git)
    found = team.candidates(events)
    retract: list[ledger.Event] = []
    undone = forget = False
    for exp_id, entry in sorted(mine.items()):
        rivals = [d for d in found.get(exp_id, []) if d.id != entry["id"]]
        ours = next((d for d in found.get(exp_id, []) if d.id == entry["id"]), None)
        if ours is not None and not rivals and entry.get("published") and entry.get("pushed"):
            del mine[exp_id]  # settled: the team has it, its branch is on the remote
            forget = True
        if ours is None or not rivals:
            continue
        winner = found[exp_id][0]
        if not entry.get("published"):
            retract.append(ledger.make_event("status", exp_id, **team.retraction(ours, rivals[0])))
            winner = rivals[0]
        elif winner.id == ours.id:
            continue
        took_back = _undo(git, remote, exp_id, entry)
        del mine[exp_id]
        undone = True
        say(f"{exp_id}: the team decided first ({winner.action}, clone {winner.by or '?'}); this clone's "
            f"{ours.action} is withdrawn, its commit kept as {SUPERSEDED_REFS}/{exp_id}/{ours.id[:12]}"
            + (f"; {str(entry['ref']).removeprefix('refs/heads/')} is back at {str(entry['old_head'])[:10]}"
               if took_back else ""))  # fmt: skip
    if retract:
        ledger.append(git, retract)
        events = ledger_index.read_with(git, lambda index: index.events(None, ("decision", "status")))
        notes_commit = refs.token(refs.tips(git))
    if undone or forget:
        _save_own(git, mine)
    team.refresh(git, events, notes_commit)
    return undone


def _undo(git: Git, remote: str | None, exp_id: str, entry: Mapping[str, Any]) -> bool:
    """Take back a lost decision's local effects, keeping its commit under a ref of its own. True when a
    ``current`` commit was taken off the tip of its branch."""
    commit = entry.get("commit")
    if not commit:
        return False
    git.update_ref(f"{SUPERSEDED_REFS}/{exp_id}/{entry['id'][:12]}", commit,
                   message="experiment-hook: superseded decision")  # fmt: skip
    branch = entry.get("branch")
    if branch and git.ref(f"refs/heads/{branch}") == commit:
        git.run("update-ref", "-d", f"refs/heads/{branch}", commit)
    if branch and remote and git.ref(f"refs/remotes/{remote}/{branch}") == commit:
        git.call("push", "--quiet", "--no-verify", f"--force-with-lease=refs/heads/{branch}:{commit}", "--",
                 remote, f":refs/heads/{branch}")  # fmt: skip
    ref, old_head = entry.get("ref"), entry.get("old_head")
    if entry.get("mode") == "current" and ref and old_head and git.ref(ref) == commit:
        _take_back(git, ref, commit, old_head)
        return True
    return False


def _take_back(git: Git, ref: str, commit: str, old_head: str) -> None:
    """A ``current`` decision commit still at the tip of its branch: the branch goes back one commit, and the
    index entries and the registry it changed get their previous content (the work tree then follows)."""
    from experiment_core.fsutil import atomic_write

    paths = git.out("diff-tree", "--no-commit-id", "--name-only", "-r", old_head, commit).splitlines()
    git.update_ref(ref, old_head, commit, message="experiment-hook: withdraw a superseded decision")
    for path in paths:
        found, written = _blob_at(git, old_head, path), _blob_at(git, commit, path)
        if found is None:
            continue
        git.run("update-index", "--add", "--cacheinfo", f"{found[0]},{found[1]},{path}")
        try:
            data = (git.root / path).read_bytes()
        except OSError:
            continue
        if written is not None and git.hash_object(data, write=False) == written[1]:  # ours: never a user's edit
            atomic_write(git.root / path, git.cat_blob(found[1]))


# ---- pushing the branch once the decision is the team's -------------------------------------------------------
def push_waiting(git: Git, remote: str, settings: Settings, say: Callable[[str], None]) -> None:
    """Push each decision branch of ours whose decision the remote's ledger holds and the team follows."""
    mine = own(git)
    known = team.known(git)
    changed = False
    for exp_id, entry in sorted(mine.items()):
        branch = entry.get("branch")
        if entry.get("pushed") or not branch or not entry.get("published"):
            continue
        if exp_id not in known or known[exp_id].id != entry["id"]:
            continue
        ok, why = _push_branch(git, remote, branch, str(entry["commit"]), settings.push_options)
        if ok:
            mine[exp_id] = {**entry, "pushed": True}
            changed = True
            say(f"decision branch {branch} pushed to {remote}: open a pull request to merge it")
        else:
            say(f"decision branch {branch} waits in this clone ({why}): the next sync or push sends it")
    if changed:
        _save_own(git, mine)


def _push_branch(git: Git, remote: str, branch: str, commit: str, options: tuple[str, ...]) -> tuple[bool, str]:
    args = ["push", "--porcelain", "--no-verify", *(f"--push-option={o}" for o in options), "--", remote,
            f"{commit}:refs/heads/{branch}"]  # fmt: skip
    proc = git.call(*args)
    text = proc.stdout.decode("utf-8", "replace")
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1].endswith(f"refs/heads/{branch}"):
            if parts[0] in ("!",):
                return False, f"{remote} refused it: {parts[2] if len(parts) > 2 else 'rejected'}"
            git.call("update-ref", f"refs/remotes/{remote}/{branch}", commit)
            return True, ""
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return False, f"{remote} not reachable: {err[-1] if err else 'push failed'}"


# ---- where a decision commit is, for status and the hooks -----------------------------------------------------
def where(git: Git, decision: team.Decision, registry_holds_it: bool) -> str:
    """Where the decision commit is, seen from this branch."""
    if decision.commit is None:
        return "no decision commit (decided in a detached work tree)" if not registry_holds_it \
            else "merged into this branch"  # fmt: skip
    if registry_holds_it or git.ok("merge-base", "--is-ancestor", decision.commit, "HEAD"):
        return f"decision commit {decision.commit[:10]}, merged into this branch"
    if decision.branch:
        return f"decision commit on `{decision.branch}`, not yet merged into this branch"
    return f"decision commit {decision.commit[:10]}, not yet merged into this branch"


def summary(git: Git, decision: team.Decision, registry_holds_it: bool) -> str:
    """'promoted 2026-12-04 by clone 3f9a… — decision commit on `experiment-hook/promote-exp-…`, not yet merged'."""
    status = decision.status.replace("_", " ")
    by = f" by clone {decision.by}" if decision.by else ""
    return f"{status} {decision.ts[:10]}{by} — {where(git, decision, registry_holds_it)}"


def sync_team(git: Git, remote: str, settings: Settings, say: Callable[[str], None], *,
              push: bool = True, announce: bool = True) -> tuple[SyncResult, bool]:  # fmt: skip
    """Sync the ledger with ``remote`` so that a decision is the team's: learn first when a decision of ours has
    not travelled yet (it is withdrawn if the team already has another), publish, settle, push the decision
    branches that wait; ``announce``: say the sync's summary first. Returns the sync's result and whether the
    decisions this clone follows changed (then the work tree must follow)."""
    from experiment_core.store import sync

    before = team.known(git)
    mine = own(git)
    if push and any(not o.get("published") for o in mine.values()):
        sync.sync(git, remote, push=False)
        settle(git, remote, say)
    result = sync.sync(git, remote, push=push)
    if announce:
        say(result.summary())
    if push:
        mark_published(git)
    if mine or result.merge != "none" or not (git.common_dir / STATE_DIR / team.DECISIONS_FILE).exists():
        settle(git, remote, say)
    if push:
        push_waiting(git, remote, settings, say)
    return result, team.known(git) != before


def absorb_fetched(git: Git, say: Callable[[str], None]) -> bool:
    """After a pull: the ledger a plain fetch brought (side refs) merged in, no network; the decisions settled.
    True when the decisions this clone follows changed."""
    from experiment_core.store import sync

    before = team.known(git)
    merged = [sync.merge_fetched(git, remote) for remote in git.remotes()]
    if any(m != "none" for m in merged):
        settle(git, None, say)
    return team.known(git) != before


def safe(fn: Callable[[], object], say: Callable[[str], None], what: str) -> None:
    """Run a step that must never break the user's git operation: a failure is one line."""
    try:
        fn()
    except UserError as exc:
        say(f"{what}: {exc.line()}")
    except GitError as exc:
        detail = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)
        say(f"{what}: {detail}")
