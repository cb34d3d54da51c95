"""The team's decisions as the ledger holds them: a ``decision`` event is final for every clone that knows it.

The rule (pure, the same in every clone for the same events): an experiment's decision is its earliest
``decision`` event (time, then id) that no ``status`` event of status ``superseded`` retracts. A clone retracts its
own decision when, syncing before the decision ever reached the remote, it finds the team already has another
one (:mod:`experiment_core.apply.decision_branch` does it): the decision that reached the remote's ledger first
stands, whichever clone syncs next.

What a hook needs (which experiments are decided, how) is a small JSON file beside the ledger index, written by
whatever changed the notes (a sync, a decision) and read without a git process; it is derived data: rebuilt from
the index whenever a command has the index open anyway. This clone's anonymous id (who made a decision, shown by
``status``) lives beside it: a random id, never a person's name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git
from experiment_core.hookenv import STATE_DIR
from experiment_core.state import read_json, write_json
from experiment_core.store.spec import Registry

FINAL_STATUS = {"promote": "promoted", "rollback": "rolled_back", "expire": "expired"}
SUPERSEDED = "superseded"
DECISIONS_FILE = "decisions.json"
CLONE_FILE = "clone-id"


@dataclass(frozen=True)
class Decision:
    """One experiment's final decision for the team."""

    exp: str
    action: str  # promote | rollback | expire
    status: str  # promoted | rolled_back | expired
    promoted: bool  # the treatment won (also an expiry under promote_if_not_worse)
    ts: str
    id: str
    commit: str | None = None  # the decision commit, when one was made
    branch: str | None = None  # the decision branch it is on (decision_commits: branch)
    by: str | None = None  # the deciding clone's anonymous id


def _decision(event: Mapping[str, Any]) -> Decision | None:
    action = event.get("action")
    if action not in FINAL_STATUS:
        return None  # hold / continue are not decisions that end an experiment
    promoted = event.get("promoted")
    status = event.get("status")
    commit, branch, by = event.get("commit"), event.get("branch"), event.get("by")
    return Decision(
        exp=str(event["exp"]), action=str(action),
        status=str(status) if status in FINAL_STATUS.values() else FINAL_STATUS[str(action)],
        promoted=promoted if isinstance(promoted, bool) else action == "promote",
        ts=str(event["ts"]), id=str(event["id"]),
        commit=commit if isinstance(commit, str) else None, branch=branch if isinstance(branch, str) else None,
        by=by if isinstance(by, str) else None,
    )  # fmt: skip


def retracted(events: Iterable[Mapping[str, Any]]) -> set[str]:
    """Ids of decisions their own clone retracted (another decision reached the team first)."""
    return {str(e["decision"]) for e in events
            if e.get("type") == "status" and e.get("status") == SUPERSEDED and isinstance(e.get("decision"), str)}


def candidates(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Decision]]:
    """Every decision not retracted, by experiment, earliest first."""
    events = list(events)
    gone = retracted(events)
    out: dict[str, list[Decision]] = {}
    for event in events:
        if event.get("type") == "decision" and event.get("id") not in gone:
            got = _decision(event)
            if got is not None:
                out.setdefault(got.exp, []).append(got)
    for found in out.values():
        found.sort(key=lambda d: (d.ts, d.id))
    return out


def final(events: Iterable[Mapping[str, Any]]) -> dict[str, Decision]:
    """The one decision per experiment every clone agrees on, given the same events."""
    return {exp: found[0] for exp, found in candidates(events).items()}


def retraction(decision: Decision, winner: Decision | None) -> dict[str, Any]:
    """The fields of the ``status`` event that retracts ``decision`` (``ledger.make_event("status", ...)``)."""
    fields: dict[str, Any] = {"status": SUPERSEDED, "decision": decision.id}
    if winner is not None:
        fields["by_decision"] = winner.id
    return fields


# ---- what a clone knows (derived, cached beside the index) -----------------------------------------------------
def _dir(git: Git) -> Path:
    path = git.common_dir / STATE_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def known(git: Git) -> dict[str, Decision]:
    """The decisions this clone knows, from the cache (no git process); empty before the first refresh."""
    raw = read_json(_dir(git) / DECISIONS_FILE, {})
    found = raw.get("decisions") if isinstance(raw, dict) else None
    out: dict[str, Decision] = {}
    for exp, item in (found or {}).items():
        try:
            out[str(exp)] = Decision(**item)
        except TypeError:
            return {}  # a file of another version: the next refresh rewrites it
    return out


def refresh(git: Git, events: Iterable[Mapping[str, Any]] | None = None,
            notes_commit: str | None = None) -> dict[str, Decision]:  # fmt: skip
    """Recompute the decisions from ``events`` (the ledger's ``decision`` and ``status`` events; default: read
    from the index) and store them for the hooks."""
    if events is None:
        from experiment_core.store import ledger_index

        def read(index: ledger_index.LedgerIndex) -> tuple[list[dict[str, Any]], str | None]:
            return index.events(None, ("decision", "status")), index.notes_commit

        events, notes_commit = ledger_index.read_with(git, read)
    found = final(events)
    write_json(_dir(git) / DECISIONS_FILE, {"notes": notes_commit,
                                            "decisions": {k: asdict(v) for k, v in sorted(found.items())}})
    return found


def clone_id(git: Git) -> str:
    """This clone's anonymous id (random, made once, never pushed by itself): who made a decision."""
    path = _dir(git) / CLONE_FILE
    try:
        got = path.read_text("utf-8").strip()
    except FileNotFoundError:
        got = ""
    if len(got) == 12 and got.isalnum():
        return got
    got = uuid.uuid4().hex[:12]
    atomic_write_text(path, got + "\n")
    return got


# ---- the registry as the team's decisions make it ----------------------------------------------------------------
def overlay(registry: Registry, decisions: Mapping[str, Decision]) -> Registry:
    """The registry with each experiment the team decided given its decided status (whatever this branch's
    ``experiments.yaml`` still says): no unit of it is drawn, no trial recorded, it is never decided again."""
    if not any(e.running and e.id in decisions for e in registry.experiments):
        return registry
    exps = tuple(replace(e, status=decisions[e.id].status) if e.running and e.id in decisions else e
                 for e in registry.experiments)  # fmt: skip
    return replace(registry, experiments=exps)


def followed(registry: Registry, decisions: Mapping[str, Decision]) -> dict[str, Decision]:
    """Decisions this branch's registry does not hold yet (it still says ``running``): the work tree follows them
    until the decision commit reaches the branch."""
    return {e.id: decisions[e.id] for e in registry.experiments if e.running and e.id in decisions}
