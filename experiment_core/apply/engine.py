"""The decision engine: evaluate every running experiment and apply what its settings allow.

Used by ``experiment-hook --auto`` and the pre-push hook. The statistics are imported only when something may be
due: when neither the ledger (its notes commit), the registry (its stat) nor the day changed since the last
evaluation in this worktree found nothing to do, a push costs no scipy import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from experiment_core.apply import lifecycle
from experiment_core.errors import UserError
from experiment_core.gitio import Git
from experiment_core.state import read_json, state_dir, write_json
from experiment_core.store import ledger, refs
from experiment_core.store.spec import REGISTRY_NAME, Experiment, Registry, load_registry

CACHE = "engine-cache.json"
NEAR_EXPIRY_DAYS = 1.0


@dataclass(frozen=True)
class Verdict:
    exp_id: str
    action: str
    reasons: list[str]
    automatic: bool
    analysis: dict[str, Any]


@dataclass
class EngineResult:
    verdicts: list[Verdict] = field(default_factory=list)
    applied: list[lifecycle.Outcome] = field(default_factory=list)
    alerts: list[tuple[str, str, str]] = field(default_factory=list)  # (exp, kind, message)
    announced: list[tuple[str, str, str]] = field(default_factory=list)  # the alerts that appeared now: said once
    refused: list[tuple[str, str]] = field(default_factory=list)  # (exp, why)
    skipped_evaluation: bool = False


def alert_kind(message: str) -> str:
    for prefix, kind in (("sample ratio", "srm"), ("guardrail", "guardrail"), ("(alert_below)", "alert_below"),
                         ("(alert_above)", "alert_above"), ("error rate", "error_rate"), ("outlier", "outliers"),
                         ("running for", "duration"), ("treatment is", "regression")):  # fmt: skip
        if message.lower().startswith(prefix) or prefix in message.lower():
            return kind
    return "anomaly"


def _duration_alerts(exp: Experiment, now: dt.datetime) -> list[str]:
    created = exp.created_at()
    if created is None:
        return []
    age = (now - created).total_seconds() / 86400
    if age > exp.max_duration_days:
        return [f"running for {age:.1f} days, past its maximum of {exp.max_duration_days:g} days"]
    if age > exp.max_duration_days - NEAR_EXPIRY_DAYS:
        return [f"running for {age:.1f} days, near its maximum of {exp.max_duration_days:g} days"]
    return []


def _cache_key(git: Git, registry: Registry, notes_commit: str | None, now: dt.datetime) -> list[Any]:
    st = (git.root / REGISTRY_NAME).stat()
    # The hour matters: expiry depends on time alone (checked at least hourly).
    return [notes_commit, st.st_mtime_ns, st.st_size, now.strftime("%Y-%m-%dT%H")]


def nothing_due(git: Git, registry: Registry, notes_commit: str | None, now: dt.datetime) -> bool:
    """True when the last evaluation, on the same ledger and registry this hour, found nothing to do."""
    if not registry.running():
        return True
    cached = read_json(state_dir(git) / CACHE, {})
    return isinstance(cached, dict) and cached.get("key") == _cache_key(git, registry, notes_commit, now)


def evaluate(
    git: Git,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    only: str | None = None,
    say: Callable[[str], None] = print,
) -> EngineResult:
    """Evaluate running experiments; apply automatic decisions (unless ``dry_run``); record alerts."""
    result = EngineResult()
    if not dry_run:
        done = lifecycle.recover(git)
        if done:
            say(f"experiment-hook: finished an interrupted {done.action} of {done.exp_id}")
    registry = team_registry(git)
    tips = refs.tips(git)
    if only is None and nothing_due(git, registry, refs.token(tips), now):
        result.skipped_evaluation = True  # decided from the notes refs' tips alone: the index is not even opened
        return result
    from experiment_core.evidence.analysis import AnalysisResult, analyze_data
    from experiment_core.store import ledger_index

    experiments = [registry.get(only)] if only else registry.running()

    def read(index: ledger_index.LedgerIndex) -> tuple[str | None, set[tuple[str, str]], list[AnalysisResult]]:
        seen = {(e["exp"], e["kind"]) for exp in experiments for e in index.events(exp.id, ("alert",))}
        return index.notes_commit, seen, [analyze_data(exp, index.data(exp.id), now) for exp in experiments]

    notes_commit, seen_alerts, analyses = ledger_index.read_with(git, read, head=tips)
    new_alerts: list[ledger.Event] = []
    due = False
    for exp, analysis in zip(experiments, analyses, strict=True):
        decision = analysis.decision
        verdict = Verdict(exp.id, decision.action, list(decision.reasons), decision.automatic, analysis.to_dict())
        result.verdicts.append(verdict)
        guardrail = decision.reasons[:1] if decision.action == "rollback" else []  # the regression itself
        messages = [*decision.alerts, *guardrail, *_duration_alerts(exp, now)]
        new_alerts += _note_alerts(exp.id, messages, seen_alerts, result)
        if decision.action in lifecycle.FINAL_STATUS and decision.automatic:
            due = True
            if not dry_run:
                _apply(git, exp, verdict, expired=decision.expired, result=result)
    if new_alerts and not dry_run:
        ledger.append(git, new_alerts)
    if not due and not dry_run and only is None and not new_alerts:
        registry = team_registry(git)
        write_json(state_dir(git) / CACHE, {"key": _cache_key(git, registry, notes_commit, now)})
    return result


def team_registry(git: Git) -> Registry:
    """This branch's registry with the team's decisions over it: an experiment the ledger says is decided is
    never decided again, whatever this branch's experiments.yaml still says."""
    from experiment_core.store import decisions

    return decisions.overlay(load_registry(git.root, state_dir(git)), decisions.known(git))


def _note_alerts(exp_id: str, messages: list[str], seen: set[tuple[str, str]], result: EngineResult,
                 ) -> list[ledger.Event]:  # fmt: skip
    """Each alert into ``result``; the ledger events of the kinds not yet recorded for this experiment."""
    new: list[ledger.Event] = []
    for message in messages:
        kind = alert_kind(message)
        result.alerts.append((exp_id, kind, message))
        if (exp_id, kind) not in seen:
            seen.add((exp_id, kind))
            result.announced.append((exp_id, kind, message))
            new.append(ledger.make_event("alert", exp_id, kind=kind, message=message))
    return new


def _apply(git: Git, exp: Experiment, verdict: Verdict, *, expired: bool, result: EngineResult) -> None:
    """Apply an automatic decision into ``result``; a refusal (a user's edit, staged changes...) is recorded with
    its reason, and the evaluation goes on."""
    from experiment_core.store import ledger_index

    action = "expire" if expired else verdict.action
    try:
        created = ledger_index.read_with(git, lambda index: index.events(exp.id, ("created",)))
        outcome = lifecycle.apply(git, exp, action, verdict.analysis, verdict.reasons, created,
                                  promote=verdict.action == "promote")  # fmt: skip
    except UserError as exc:
        result.refused.append((exp.id, exc.line()))
        return
    result.applied.append(outcome)


ICON = {"promote": "✅", "rollback": "❌", "expire": "⏱️", "hold": "⚠️", "continue": "📊"}


def describe(result: EngineResult, dry_run: bool) -> list[str]:
    """One line per experiment and per alert: what `--auto` and the pre-push hook print."""
    if result.skipped_evaluation:
        return ["nothing due (no new trials since the last evaluation)"]
    applied = {o.exp_id: o for o in result.applied}
    refused = dict(result.refused)
    lines = []
    for v in result.verdicts:
        why = v.reasons[0] if v.reasons else ""
        icon = ICON.get(v.action, "")
        if v.exp_id in applied:
            o = applied[v.exp_id]
            lines.append(f"{icon} {o.action} {v.exp_id}: {o.status} in {_where(o)} — {why}")
        elif v.exp_id in refused:
            lines.append(f"⚠️  {v.action} {v.exp_id} not applied: {refused[v.exp_id]}")
        elif v.action in lifecycle.FINAL_STATUS:
            verb = "would" if dry_run and v.automatic else "needs a person to"
            lines.append(f"{icon} {v.exp_id}: {verb} {v.action} — {why}")
        else:
            lines.append(f"{icon} {v.exp_id}: {v.action} — {'; '.join(v.reasons) or 'no data yet'}")
    shown = result.alerts if dry_run else result.announced  # an alert is announced once; `status` lists it
    lines += [f"⚠️  alert {exp_id} [{kind}]: {message}" for exp_id, kind, message in shown]
    return lines


def _where(o: lifecycle.Outcome) -> str:
    if o.branch and o.commit:
        return f"commit {o.commit[:10]} on branch {o.branch} (off the default branch; this branch is not touched)"
    return f"commit {o.commit[:10]}" if o.commit else "the work tree (detached HEAD: not committed)"
