"""``experiment-hook analyze EXP``: the seed's statistical analysis report, or ``--json``."""

from __future__ import annotations

import json

import click

from experiment_core import ledger
from experiment_core.gitio import Git
from experiment_core.report import analysis_markdown
from experiment_core.spec import load_registry, utc_now
from experiment_core.state import state_dir


@click.command("analyze")
@click.argument("exp_id", metavar="EXP")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys documented in the README).")
def analyze(exp_id: str, as_json: bool) -> None:
    """Statistical analysis of experiment EXP and the decision it supports."""
    git = Git.discover()
    exp = load_registry(git.root, state_dir(git)).get(exp_id)
    from experiment_core.analysis import analyze_experiment

    read = ledger.read(git)
    result = analyze_experiment(exp, ledger.for_experiment(read.events, exp.id), utc_now()).to_dict()
    result["skipped_events"] = read.skipped
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
    else:
        click.echo(analysis_markdown(exp.id, result, exp.metric.unit))
