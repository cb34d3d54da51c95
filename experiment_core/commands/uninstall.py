"""``experiment-hook uninstall``: leave the repository as git alone would have it.

Every worktree's experimented files get their committed content back through git (a user's edit stays, on top
of the control), then the filter driver leaves the local config and ``info/attributes``, the skip-worktree bits
0.1 set on experimented files are cleared (a bit the user set on a file of their own stays), and the hooks
``install`` wrote are removed (hooks they chained are put back).
"""

from __future__ import annotations

from pathlib import Path

import click

from experiment_core.deploy.release import restore
from experiment_core.deploy.variants import index_entries, remove_filter, show_to_git
from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git
from experiment_core.hookpaths.githooks import uninstall as uninstall_hooks


def worktrees(git: Git) -> list[Path]:
    out = git.out("worktree", "list", "--porcelain")
    return [Path(line[len("worktree ") :]) for line in out.splitlines() if line.startswith("worktree ")]


def uninstall_agent(root: Path, git: Git) -> None:
    """Claude Code's handlers out of the worktree's ``.claude/settings.local.json`` (the user's own stay)."""
    from experiment_core.agents import claude

    agent_state = git.git_path("experiment-hook") / "agent"
    action = claude.uninstall_settings(str(root), str(agent_state))
    what = {"restored": "as it was before `install --agent claude`", "removed": "written by `install --agent claude`",
            "updated": "our hooks taken out, yours and your edits kept"}.get(action)  # fmt: skip
    if what:
        click.echo(f"{action:>9}  {root / claude.SETTINGS} ({what})")
    if not any(claude.MARKER in _read(r / claude.SETTINGS) for r in worktrees(git)):
        exclude = git.common_dir / "info" / "exclude"
        text = _read(exclude)
        if claude.without_exclude(text) != text:
            atomic_write_text(exclude, claude.without_exclude(text))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@click.command("uninstall")
@click.option("--agent", type=click.Choice(["claude"]), default=None,
              help="Remove only the assistant's hooks `install --agent` added.")
def uninstall(agent: str | None = None) -> None:
    """Remove the filter driver and the git hooks written by `install` (hooks that are not ours stay)."""
    git = Git.discover()
    if agent is not None:
        uninstall_agent(git.root, git)
        return
    for root in worktrees(git):
        if not root.is_dir():
            continue
        tree = Git(root)
        uninstall_agent(root, tree)
        released = restore(tree)  # every file that is or was experimented on here, and what it holds now
        for r in released:
            if r.outcome != "already control":
                click.echo(f"{'restored':>9}  {root / r.target}: {r.outcome}")
        ours = {r.target for r in released}
        show_to_git(tree, [t for t, e in index_entries(tree, ours).items() if e.skip_worktree])
    remove_filter(git)
    click.echo(f"{'removed':>9}  filter driver (local config and info/attributes)")
    for change in uninstall_hooks(git):
        click.echo(f"{change.action:>9}  {change.path}")
