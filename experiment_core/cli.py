"""The click group ``experiment-hook``: thin. Each verb lives in ``experiment_core/commands/<verb>.py`` as a click
command named like its module (module ``foo_bar`` -> command ``foo-bar``,
attribute ``foo_bar``), and is imported only when invoked, so one command's imports never slow another's."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from experiment_core import __version__
from experiment_core import commands as commands_pkg
from experiment_core.errors import UserError
from experiment_core.gitio import GitError


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [n[:-3] for path in commands_pkg.__path__ for n in os.listdir(path)
                 if n.endswith(".py") and not n.startswith("_")]  # fmt: skip
        return sorted(n.replace("_", "-") for n in names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = cmd_name.replace("-", "_")
        if cmd_name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"experiment_core.commands.{module_name}")
        command: click.Command = getattr(module, module_name)
        return command


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--auto", is_flag=True, help="Evaluate every running experiment and apply what its settings allow.")
@click.option("--dry-run", is_flag=True, help="With --auto: say what would happen, change nothing.")
@click.version_option(__version__, prog_name="experiment-hook")
@click.pass_context
def cli(ctx: click.Context, auto: bool, dry_run: bool) -> None:
    """A/B-test changes to your workflow files on normal git work; keep them only when the numbers prove it.

    With no command: `status` (or, with --auto, the automatic decisions).
    """
    _finish_interrupted_decision()
    if ctx.invoked_subcommand is not None:
        return
    if auto:
        auto_command: Any = cli.get_command(ctx, "auto")
        if auto_command is None:
            raise UserError("--auto", "the decision engine is not available in this version", "use `analyze`")
        ctx.invoke(auto_command, dry_run=dry_run)
        return
    status = cli.get_command(ctx, "status")
    assert status is not None  # a command of this package
    ctx.invoke(status)


def _finish_interrupted_decision() -> None:
    """Any command first finishes a promote/rollback that a crash interrupted (a journal in the local state)."""
    from experiment_core.gitio import Git

    try:
        git = Git.discover()
    except UserError:
        return  # not in a repository (e.g. `demo`)
    from experiment_core.state import APPLY_JOURNAL, state_dir

    if not (state_dir(git) / APPLY_JOURNAL).exists():
        return  # the usual case, without importing the lifecycle
    from experiment_core.apply import lifecycle

    done = lifecycle.recover(git)
    if done:
        click.echo(f"experiment-hook: finished the interrupted {done.action} of {done.exp_id}", err=True)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="experiment-hook", standalone_mode=False)
    except UserError as exc:
        click.echo(f"experiment-hook: {exc.line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GitError as exc:
        click.echo(f"experiment-hook: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
