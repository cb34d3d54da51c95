"""``experiment-hook wait``: wait for the measurements post-commit started in the background."""

from __future__ import annotations

import click

from experiment_core.errors import UserError
from experiment_core.gitio import Git
from experiment_core.measure.jobs import wait as wait_jobs
from experiment_core.state import state_dir


@click.command("wait")
@click.option("--timeout", type=click.FloatRange(min=0), default=600.0, show_default=True, help="Seconds.")
def wait(timeout: float) -> None:
    """Wait until every background measurement of this worktree has recorded its trials."""
    git = Git.discover()
    left = wait_jobs(str(state_dir(git)), timeout)
    if left:
        raise UserError("wait", f"{len(left)} measurement(s) still running after {timeout:g} s", "wait longer")
