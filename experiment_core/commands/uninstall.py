"""``experiment-hook uninstall``: leave the repository as git alone would have it.

Every worktree's experimented files get their committed content back through git (a user's edit stays, on top
of the control), then the filter driver leaves the local config and ``info/attributes``, any skip-worktree bit of
0.1 is cleared, and the hooks ``install`` wrote are removed (hooks they chained are put back).
"""

from __future__ import annotations

from pathlib import Path

import click

from experiment_core.githooks import uninstall as uninstall_hooks
from experiment_core.gitio import Git
from experiment_core.release import restore
from experiment_core.variants import remove_filter


def worktrees(git: Git) -> list[Path]:
    out = git.out("worktree", "list", "--porcelain")
    return [Path(line[len("worktree ") :]) for line in out.splitlines() if line.startswith("worktree ")]


@click.command("uninstall")
def uninstall() -> None:
    """Remove the filter driver and the git hooks written by `install` (hooks that are not ours stay)."""
    git = Git.discover()
    for root in worktrees(git):
        if not root.is_dir():
            continue
        tree = Git(root)
        for r in restore(tree):
            if r.outcome != "already control":
                click.echo(f"{'restored':>9}  {root / r.target}: {r.outcome}")
        hidden = [line[2:] for line in tree.out("ls-files", "-v").splitlines() if line.startswith("S ")]
        if hidden:
            tree.run("update-index", "--no-skip-worktree", "--", *hidden)
    remove_filter(git)
    click.echo(f"{'removed':>9}  filter driver (local config and info/attributes)")
    for change in uninstall_hooks(git):
        click.echo(f"{change.action:>9}  {change.path}")
