"""``experiment-hook record``: add trials measured elsewhere (one value, or many from a CSV) in one ledger write."""

from __future__ import annotations

import csv
import io
import math
import uuid
from pathlib import Path

import click

from experiment_core.clock import format_ts, parse_ts
from experiment_core.errors import UserError
from experiment_core.gitio import Git
from experiment_core.state import state_dir
from experiment_core.store import ledger
from experiment_core.store.spec import METRIC_NAME_RE, Experiment, load_registry

CSV_REQUIRED = ("arm", "value")
# `export -o FILE.csv` writes them all
CSV_OPTIONAL = ("metric", "unit", "ts", "commit", "exit_code", "pair", "machine")


def manual_unit() -> str:
    """A fresh randomization unit for a hand-recorded trial."""
    return f"manual-{uuid.uuid4().hex[:12]}"


def parse_value(text: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(where, f"{text!r} is not a number", "give a number such as 12.5") from None
    if not math.isfinite(value):
        raise UserError(where, f"{text!r} is not a finite number", "give a finite number") from None
    return value


def trial_event(
    exp: Experiment, arm: str, value: float, metric: str | None, unit: str | None, commit: str | None, where: str
) -> ledger.Event:
    name = metric or exp.metric.name
    if not METRIC_NAME_RE.match(name):
        raise UserError(where, f"{name!r} is not a metric name", "use letters, digits, _ . -")
    if arm not in ledger.ARMS:
        raise UserError(where, f"arm {arm!r} is not control or treatment", "write control or treatment")
    return ledger.make_event(
        "trial", exp.id, arm=arm, metric=name, value=value, unit=unit or manual_unit(), exit_code=None, commit=commit
    )


def _csv_extras(event: ledger.Event, row: dict[str, str | None], where: str) -> None:
    """The columns ``export`` adds, so that an exported CSV records back into the very same trials."""
    commit = (row.get("commit") or "").strip()
    if commit:
        if not (4 <= len(commit) <= 64 and all(c in "0123456789abcdef" for c in commit)):
            raise UserError(f"{where}: commit", f"{commit!r} is not a commit id", "write a hex id or leave it empty")
        event["commit"] = commit
    code = (row.get("exit_code") or "").strip()
    if code:
        try:
            event["exit_code"] = int(code)
        except ValueError:
            raise UserError(f"{where}: exit_code", f"{code!r} is not an integer", "write e.g. 0 or 1") from None
    pair = (row.get("pair") or "").strip()
    if pair:
        event["pair"] = pair
    machine = (row.get("machine") or "").strip()
    if machine:
        event["machine"] = check_machine(machine, f"{where}: machine")


def check_machine(machine: str, where: str) -> str:
    if len(machine) > 64 or not machine.isprintable():
        raise UserError(where, f"{machine!r} is not a machine id", "use a short name or id (at most 64 characters)")
    return machine


def events_from_csv(exp: Experiment, path: Path, commit: str | None) -> list[ledger.Event]:
    """Parse and validate every row first: a bad row refuses the whole file (nothing is written)."""
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(str(path), f"cannot read it ({exc})", "give a readable UTF-8 CSV file") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    missing = [c for c in CSV_REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if missing or unknown:
        what = f"missing column(s) {', '.join(missing)}" if missing else f"unknown column(s) {', '.join(unknown)}"
        fix = "columns are arm,value and optionally " + ",".join(CSV_OPTIONAL)
        raise UserError(str(path), what, fix)
    events: list[ledger.Event] = []
    for lineno, row in enumerate(reader, start=2):
        where = f"{path}:{lineno}"
        value = parse_value(row.get("value") or "", f"{where}: value")
        event = trial_event(exp, (row.get("arm") or "").strip(), value, row.get("metric") or None,
                            row.get("unit") or None, commit, where)  # fmt: skip
        ts = (row.get("ts") or "").strip()
        if ts:
            moment = parse_ts(ts)
            if moment is None:
                raise UserError(f"{where}: ts", f"{ts!r} is not an ISO-8601 time", "write e.g. 2026-11-24T10:00:00Z")
            event["ts"] = format_ts(moment)
        _csv_extras(event, row, where)
        events.append(event)
    if not events:
        raise UserError(str(path), "no rows", "add one row per trial")
    return events


@click.command("record")
@click.argument("exp_id", metavar="EXP")
@click.option("--arm", type=click.Choice(ledger.ARMS))
@click.option("--value", help="The measured value.")
@click.option("--metric", default=None, help="Metric name (default: the experiment's primary metric).")
@click.option("--unit", default=None, help="Randomization unit id (default: a new unit per trial).")
@click.option(
    "--from-csv", "csv_path", type=click.Path(path_type=Path),
    help="Import trials: columns arm,value[,metric,unit,ts,commit,exit_code,pair,machine] (as `export` writes)",
)
@click.option("--machine", default=None, help="Id of the machine the value was measured on (compared within).")
def record(
    exp_id: str, arm: str | None, value: str | None, metric: str | None, unit: str | None, csv_path: Path | None,
    machine: str | None = None,
) -> None:
    """Record one trial (or many from a CSV) for experiment EXP."""
    git = Git.discover()
    exp = load_registry(git.root, state_dir(git)).get(exp_id)
    commit = git.head()
    if csv_path is not None:
        if arm or value is not None:
            raise UserError("--from-csv", "cannot be combined with --arm/--value", "use one or the other")
        if machine is not None:
            raise UserError("--machine", "cannot be combined with --from-csv", "use the CSV's machine column")
        events = events_from_csv(exp, csv_path, commit)
    else:
        if arm is None or value is None:
            raise UserError("record", "--arm and --value are required", "e.g. --arm treatment --value 12.5")
        events = [trial_event(exp, arm, parse_value(value, "--value"), metric, unit, commit, "record")]
        if machine is not None:
            events[0]["machine"] = check_machine(machine.strip(), "--machine")
    count = ledger.append(git, events, commit)
    click.echo(f"Recorded {count} trial{'s' if count != 1 else ''} for {exp.id}.")
