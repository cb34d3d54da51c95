"""``experiment-hook create``: back up the targets, copy them to treatment paths, add the registry entry."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from experiment_core.clock import format_ts, utc_now
from experiment_core.deploy.variants import backup_targets
from experiment_core.errors import UserError
from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git
from experiment_core.store import ledger
from experiment_core.store.spec import (
    DEFAULT_METRIC,
    DIRECTIONS,
    METRIC_NAME_RE,
    Registry,
    add_experiment,
    check_repo_path,
    load_registry,
    treatment_path,
)


def new_id(existing: set[str], stamp: str) -> str:
    """``exp-YYYYMMDD-HHMMSS``, with ``-n`` appended when that id is taken."""
    base = f"exp-{stamp}"
    if base not in existing:
        return base
    n = 2
    while f"{base}-{n}" in existing:
        n += 1
    return f"{base}-{n}"


def parse_guardrail(text: str, primary: str) -> dict[str, Any]:
    """``NAME`` or ``NAME:PCT`` -> a secondary metric entry with ``guardrail: true``."""
    name, sep, pct = text.partition(":")
    name = name.strip()
    where = f"--guardrail {text}"
    if not METRIC_NAME_RE.match(name):
        raise UserError(where, f"{name!r} is not a metric name", "use letters, digits, _ . - (e.g. runtime:10)")
    if name == primary:
        raise UserError(where, "the primary metric cannot be its own guardrail", "name another metric")
    entry: dict[str, Any] = {"name": name, "direction": "lower", "guardrail": True}
    if sep:
        try:
            limit = float(pct.strip().rstrip("%"))
        except ValueError:
            limit = -1.0
        if not (limit >= 0 and limit == limit and limit != float("inf")):
            raise UserError(where, f"{pct!r} is not a percentage ≥ 0", "write e.g. runtime:10 for 10 %")
        entry["max_regression"] = limit
    return entry


@click.command("create")
@click.option("--name", required=True, help="Short name of the experiment.")
@click.option("--hypothesis", default="", help="What you expect, measurably (e.g. 'saves 15 % build time').")
@click.option("--file", "files", multiple=True, required=True, metavar="PATH", help="Target file (repeatable).")
@click.option("--command", default=None, help="Command whose run is measured (the primary metric).")
@click.option("--agent", is_flag=True, help="Trials come from the assistant's use of the file (metric.source: agent; "
              "primary metric duration_s; see docs/agents.md) instead of a command.")
@click.option("--primary-metric", default=None, help=f"[default: {DEFAULT_METRIC}; duration_s with --agent]")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="lower", show_default=True)
@click.option("--sample-size", type=click.IntRange(min=2), default=10, show_default=True, help="Units per arm.")
@click.option("--improvement-threshold", type=click.FloatRange(min=0), default=15.0, show_default=True)
@click.option("--max-regression", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--alpha", type=click.FloatRange(min=1e-9, max=0.5), default=0.05, show_default=True)
@click.option("--max-duration-days", type=click.FloatRange(min=0), default=14.0, show_default=True)
@click.option("--no-auto-promote", is_flag=True)
@click.option("--no-auto-rollback", is_flag=True)
@click.option("--guardrail", "guardrails", multiple=True, metavar="NAME[:PCT]",
              help="A guardrail metric (lower is better; with --agent completed and user_satisfaction higher; "
                   "repeatable): a regression beyond PCT % (default "
                   "--max-regression) blocks promotion and rolls back. Record its values with `record --metric`.")
@click.option("--json", "as_json", is_flag=True, help="Print {id, files} as JSON.")
def create(
    name: str,
    hypothesis: str,
    files: tuple[str, ...],
    command: str | None,
    primary_metric: str | None,
    direction: str,
    sample_size: int,
    improvement_threshold: float,
    max_regression: float,
    alpha: float,
    max_duration_days: float,
    no_auto_promote: bool,
    no_auto_rollback: bool,
    as_json: bool,
    guardrails: tuple[str, ...] = (),
    agent: bool = False,
) -> None:
    """Create an experiment on one or more files of this repository."""
    primary_metric, secondary = _metrics(command, agent, primary_metric, guardrails)
    git = Git.discover()
    registry = load_registry(git.root)  # validate the existing file before touching anything
    targets = _checked_targets(git, registry, files)
    if agent:
        _check_agent_files(git, targets)
    now = utc_now()
    exp_id = _fresh_id(git, registry, now)
    mapping = _treatment_paths(git, exp_id, targets)
    entry: dict[str, Any] = {
        "id": exp_id,
        "name": name,
        "hypothesis": hypothesis,
        "status": "running",
        "created": format_ts(now),
        "files": mapping,
        "metric": ({"name": primary_metric, "source": "agent", "direction": direction, "unit": "s"} if agent else
                   {"name": primary_metric, "command": command, "direction": direction, "unit": "s"}),
        "targets": {
            "improvement_threshold": improvement_threshold,
            "max_regression": max_regression,
            "alpha": alpha,
        },
        **({"secondary": secondary} if secondary else {}),
        "sample_size": sample_size,
        "max_duration_days": max_duration_days,
        "auto_promote": not no_auto_promote,
        "auto_rollback": not no_auto_rollback,
    }
    _add(git, exp_id, targets, mapping, entry)
    if as_json:
        click.echo(json.dumps({"schema": 1, "id": exp_id, "files": mapping}))
        return
    click.echo(f"Created {exp_id}: {name}")
    for target, treatment in mapping.items():
        click.echo(f"  {target}  ->  edit the treatment in {treatment}")
    click.echo("Next: edit the treatment, then `git add experiments.yaml .experiments && git commit`.")


AGENT_METRIC = "duration_s"
HIGHER_IS_BETTER = ("completed", "user_satisfaction")


def _metrics(command: str | None, agent: bool, primary: str | None,
             guardrails: tuple[str, ...]) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The primary metric's name and the guardrails' entries (``--agent``: the assistant's names)."""
    if (command is None) == (not agent):
        raise UserError("create", "give exactly one of --command or --agent",
                        "--command 'make test' to time a command, or --agent for an assistant's command file")
    primary = primary or (AGENT_METRIC if agent else DEFAULT_METRIC)
    secondary = _guardrail_metrics(guardrails, primary)
    for metric in secondary if agent else []:  # the assistant's metrics where more is better
        if metric["name"] in HIGHER_IS_BETTER:
            metric["direction"] = "higher"
    return primary, secondary


def _check_agent_files(git: Git, targets: list[str]) -> None:
    """Each target is a file the assistant uses: a command, a skill, or an instruction file."""
    from experiment_core.agents.claude import INSTRUCTION_FILES, Claude

    adapter = Claude(str(git.root))
    for target in targets:
        if not adapter.command_names(target) and not adapter.loads_always(target):
            raise UserError(f"--file {target}", "not a command, skill or instruction file of Claude Code",
                            "name .claude/commands/NAME.md, .claude/skills/NAME/SKILL.md, a plugin's "
                            f"commands/NAME.md, or one of {', '.join(INSTRUCTION_FILES)}")  # fmt: skip


def _guardrail_metrics(guardrails: tuple[str, ...], primary: str) -> list[dict[str, Any]]:
    secondary = [parse_guardrail(g, primary) for g in guardrails]
    if len({m["name"] for m in secondary}) < len(secondary):
        raise UserError("--guardrail", "a metric is named twice", "name each guardrail once")
    return secondary


def _checked_targets(git: Git, registry: Registry, files: tuple[str, ...]) -> list[str]:
    """The ``--file`` paths as targets: existing, tracked, named once, in no running experiment; and a HEAD."""
    targets: list[str] = []
    for raw in files:
        target = check_repo_path(git.root, raw, f"--file {raw}")
        if not (git.root / target).is_file():
            raise UserError(f"--file {raw}", "no such file", "name an existing, committed file")
        if not git.out("ls-files", "--", target):
            raise UserError(f"--file {raw}", "not tracked by git", f"git add {target} && git commit, then retry")
        if target in targets:
            raise UserError(f"--file {raw}", "named twice", "name each file once")
        targets.append(target)
    busy = {t: e.id for e in registry.running() for t in e.files}
    for target in targets:
        if target in busy:
            raise UserError(f"--file {target}", f"already in running experiment {busy[target]}", "end that one first")
    if git.head() is None:
        raise UserError(str(git.root), "the repository has no commit yet", "make a first commit, then retry")
    return targets


def _fresh_id(git: Git, registry: Registry, now: dt.datetime) -> str:
    """An id no experiment of the registry and no backup ref (an experiment created elsewhere) has."""
    backup_refs = git.out("for-each-ref", "--format=%(refname)", "refs/experiments/backups").split()
    existing = {e.id for e in registry.experiments} | {ref.rsplit("/", 2)[-2] for ref in backup_refs}
    return new_id(existing, now.strftime("%Y%m%d-%H%M%S"))


def _treatment_paths(git: Git, exp_id: str, targets: list[str]) -> dict[str, str]:
    mapping = {t: treatment_path(exp_id, t) for t in targets}
    for treatment in mapping.values():
        check_repo_path(git.root, treatment, f"treatment path {treatment}")
        if (git.root / treatment).exists():
            raise UserError(treatment, "already exists", "remove it or pick another id")
    return mapping


def _add(git: Git, exp_id: str, targets: list[str], mapping: dict[str, str], entry: dict[str, Any]) -> None:
    """Back up the targets, copy them to the treatment paths, add the registry entry and the ledger event."""
    backups = backup_targets(git, exp_id, targets)  # backup before anything is deployed
    for target, treatment in mapping.items():
        source = git.root / target
        atomic_write(git.root / treatment, source.read_bytes(), mode=source.stat().st_mode & 0o7777)
    add_experiment(git.root, entry)
    ledger.ensure_config(git)
    ledger.append(git, [ledger.make_event("created", exp_id, files=mapping, backups=backups)])
