"""``experiment-hook install``: write the git hooks, configure the filter driver, make fetch bring the ledger."""

from __future__ import annotations

import click

from experiment_core.gitio import Git
from experiment_core.hookpaths.githooks import install as install_hooks
from experiment_core.store import ledger


@click.command("install")
@click.option("--agent", type=click.Choice(["claude"]), default=None,
              help="Add the assistant's hooks instead (Claude Code: .claude/settings.local.json), so its uses of an "
                   "experimented command, skill or instruction file are trials.")  # fmt: skip
def install(agent: str | None = None) -> None:
    """Install the git hooks (for repositories without pre-commit), chaining any hook already there."""
    git = Git.discover()
    if agent is not None:
        install_agent(git)
        return
    for change in install_hooks(git):
        chained = change.action == "chained"
        note = f" (the previous hook runs first: {change.path.name}.pre-experiment-hook)" if chained else ""
        click.echo(f"{change.action:>9}  {change.path}{note}")
    ledger.ensure_config(git)
    if git.remotes():  # a clone: make plain `git fetch` bring the team's ledger (notes are not fetched by default)
        from experiment_core.store import sync

        remote = sync.default_remote(git)
        sync.setup_remote(git, remote)
        click.echo(f"{'fetch':>9}  {remote} now brings the team's ledger; run `experiment-hook sync` to merge it")
    from experiment_core.hookpaths.post_checkout import follow

    follow(git, new_units=False, head=git.head())  # filter driver set up; a clone of 0.1 moves over
    click.echo("Every branch checkout now starts a unit of each running experiment; commits record trials;")
    click.echo("pulls, merges and rebases bring teammates' decisions into this work tree.")


def agent_command() -> str:
    """The shell command an assistant runs: the absolute interpreter on the installed entry file (never a file a
    branch can change), as for the git hooks. ``-S`` skips the site-packages scan (most of a bare interpreter's
    start-up in a venv with editable installs); the package's own directory is put on the path instead, and the
    handler turns the site on itself in the rare event that needs a third-party module (parsing the registry)."""
    import shlex
    import sys

    from experiment_core.hookpaths.githooks import entry_dir, package_parent

    path = shlex.quote(str(package_parent()))
    entry = shlex.quote(str(entry_dir() / "agent_claude.py"))
    # `|| true`: an interpreter or package removed since (a deleted venv) must not become Claude Code's exit 2,
    # which blocks a prompt; the handler itself always exits 0
    return f"PYTHONPATH={path} {shlex.quote(sys.executable)} -S {entry} 2>/dev/null || true"


def install_agent(git: Git) -> None:
    from experiment_core.agents import claude
    from experiment_core.fsutil import atomic_write_text
    from experiment_core.state import state_dir

    agent_state = state_dir(git) / "agent"
    agent_state.mkdir(parents=True, exist_ok=True)
    action = claude.install_settings(str(git.root), str(agent_state), agent_command())
    if not git.ok("check-ignore", "-q", "--", claude.SETTINGS) and not git.ok("ls-files", "--error-unmatch", "--",
                                                                               claude.SETTINGS):  # fmt: skip
        exclude = git.common_dir / "info" / "exclude"
        old = exclude.read_text() if exclude.is_file() else ""
        exclude.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(exclude, claude.with_exclude(old))  # an untracked file of ours never shows in git status
    where = git.root / claude.SETTINGS
    click.echo(f"{action:>9}  {where} (Claude Code's hooks; `experiment-hook uninstall` removes them)")
    click.echo("Each use of an experimented command, skill or instruction file is now a trial of this worktree's arm;")
    click.echo("`/rate N` (1-5) inside Claude Code scores the last one.")
