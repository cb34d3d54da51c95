"""``experiment-hook demo``: a real end-to-end run in a scratch git repository, driven by the installed hooks."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import click

from experiment_core.deploy.assign import current_assignment
from experiment_core.gitio import Git

CONTROL_SCRIPT = """#!/bin/sh
# The team's build step: compresses the same data twice (slow).
python3 -c "import zlib; d = bytes(range(256)) * 4000; [zlib.compress(d, 9) for _ in range(2)]"
python3 -c "import zlib; d = bytes(range(256)) * 4000; [zlib.compress(d, 9) for _ in range(2)]"
"""
TREATMENT_SCRIPT = """#!/bin/sh
# Treatment: one interpreter start instead of two.
python3 -c "import zlib; d = bytes(range(256)) * 4000; [zlib.compress(d, 9) for _ in range(4)]"
"""


def _sh(cwd: Path, *args: str) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def make_scratch_repo(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _sh(path, "git", "init", "-q", "-b", "main")
    _sh(path, "git", "config", "user.email", "demo@experiment-hook.local")
    _sh(path, "git", "config", "user.name", "experiment-hook demo")
    (path / "build.sh").write_text(CONTROL_SCRIPT)
    (path / "build.sh").chmod(0o755)
    _sh(path, "git", "add", "build.sh")
    _sh(path, "git", "commit", "-q", "-m", "initial build script")


def _cli(cwd: Path, *args: str) -> str:
    import sys

    proc = subprocess.run([sys.executable, "-m", "experiment_core", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise click.ClickException(f"experiment-hook {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def _git(cwd: Path, *args: str, seed: str | None = None) -> str:
    import os

    env = dict(os.environ)
    env.pop("EXPERIMENT_HOOK_INTERNAL", None)
    if seed is not None:
        env["EXPERIMENT_HOOK_SEED"] = seed
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise click.ClickException(f"git {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stderr


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(path_type=Path), help="Where to make the scratch repository.")
@click.option("--trials", type=click.IntRange(min=3), default=6, show_default=True, help="Sample size per arm.")
@click.option("--seed", type=int, default=None, help="Seed the arms drawn (for reproducible demos).")
def demo(directory: Path | None, trials: int, seed: int | None) -> None:
    """Create a scratch repo and a bare remote, install the real hooks, let branch checkouts and commits run an
    experiment on its build script, then push: the pre-push hook promotes the faster build script."""
    root = directory or Path(tempfile.mkdtemp(prefix="experiment-hook-demo-"))
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory} is not empty: give a new or empty directory")
    work = root / "work"
    remote = root / "remote.git"
    make_scratch_repo(work)
    _git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(work, "remote", "add", "origin", str(remote))
    _git(work, "push", "-q", "-u", "origin", "main")
    click.echo(f"Scratch repository: {work} (remote: {remote})")
    exp_id = _create_experiment(work, trials)
    teammate = _teammate_on_the_treatment(root, remote, seed)
    _push_until_decided(work, exp_id, trials, seed)
    _show_the_decision(work)
    _teammate_pulls(teammate)


def _create_experiment(work: Path, trials: int) -> str:
    """Create the experiment on build.sh, write its treatment, commit, install the hooks, push; return its id."""
    import json

    created = json.loads(_cli(
        work, "create", "--name", "One interpreter start in build.sh", "--hypothesis",
        "Starting python once instead of twice makes the build faster", "--file", "build.sh",
        "--command", "sh build.sh", "--sample-size", str(trials), "--json",
    ))  # fmt: skip
    exp_id = str(created["id"])
    treatment_file = work / created["files"]["build.sh"]
    treatment_file.write_text(TREATMENT_SCRIPT)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "experiment: one interpreter start in build.sh")
    click.echo(f"Created {exp_id}; the treatment is {treatment_file.relative_to(work)}")
    click.echo(_cli(work, "install").rstrip())
    _git(work, "push", "-q", "origin", "main")
    return exp_id


def _teammate_on_the_treatment(root: Path, remote: Path, seed: int | None) -> Path:
    """A teammate's clone with the hooks, on a branch whose unit drew the treatment."""
    teammate = root / "teammate"
    _git(root, "clone", "-q", str(remote), str(teammate))
    _cli(teammate, "install")
    for draw in range(1, 13):  # the teammate works on a branch whose unit drew the treatment
        _git(teammate, "checkout", "-q", "-B", "feature", "origin/main",
             seed=f"{seed if seed is not None else 'demo'}-teammate-{draw}")  # fmt: skip
        if (teammate / "build.sh").read_text() == TREATMENT_SCRIPT:
            break
    click.echo(f"Teammate's clone: {teammate} (its unit runs {_variant(teammate)}; git status: "
               f"{'clean' if not _porcelain(teammate) else 'changes'})")  # fmt: skip
    return teammate


def _push_until_decided(work: Path, exp_id: str, trials: int, seed: int | None) -> None:
    """Units on task branches until each arm has ``trials``, then a push; again (two more each) while undecided."""
    git = Git(work)
    units = {"control": 0, "treatment": 0}
    task = 0
    target = trials
    for attempt in range(1, 6):
        while min(units.values()) < target and task < 10 * trials:
            task += 1
            _one_task(work, git, exp_id, task, units, seed)
        _git(work, "checkout", "-q", "main")
        if attempt == 1:
            click.echo("")
            click.echo(_cli(work, "status", "--markdown"))
            click.echo(_cli(work, "analyze", exp_id))
        click.echo("$ git push origin main   # the pre-push hook decides")
        for line in _git(work, "push", "origin", "main").splitlines():
            if line.startswith("experiment-hook"):
                click.echo(f"  {line}")
        if Git(work).out("for-each-ref", "refs/heads/experiment-hook"):  # the decision branch was made
            break
        target += 2  # not decided yet (a noisy machine): more work, then push again
        click.echo("  (no decision yet: two more units per arm, then push again)")


def _one_task(work: Path, git: Git, exp_id: str, task: int, units: dict[str, int], seed: int | None) -> None:
    # Each branch checkout is a new unit (the post-checkout hook draws the arm and swaps build.sh);
    # each commit is a trial (the post-commit hook times `sh build.sh` in the background).
    _git(work, "checkout", "-q", "-b", f"task-{task}", "main",
         seed=None if seed is None else f"{seed}-{task}")  # fmt: skip
    (work / "notes.txt").write_text(f"task {task}\n")
    _git(work, "add", "notes.txt")
    _git(work, "commit", "-q", "-m", f"task {task}")
    _cli(work, "wait")
    current = current_assignment(git, exp_id)
    if current and current.arm:
        units[current.arm] += 1
    variant = "the treatment" if (work / "build.sh").read_text() == TREATMENT_SCRIPT else "the control"
    click.echo(f"  task {task:>2}  {current.arm if current else 'paused':<9}  build.sh is {variant:<13}"
               f"   (units: {units['control']} control, {units['treatment']} treatment)")


def _show_the_decision(work: Path) -> None:
    """The decision commit is on a branch of its own off main, pushed by the hook: merge it as a pull request
    would (here a fast-forward), and push main."""
    branch = Git(work).out("for-each-ref", "--count=1", "--format=%(refname:short)", "refs/heads/experiment-hook")
    if branch:
        click.echo(f"$ git merge --ff-only origin/{branch} && git push origin main   # the pull request, merged")
        _git(work, "fetch", "-q", "origin")
        _git(work, "merge", "-q", "--ff-only", f"origin/{branch}")
        _git(work, "push", "-q", "origin", "main")
    click.echo("")
    click.echo(subprocess.run(["git", "log", "-1", "--format=%h %B", "origin/main"], cwd=work, capture_output=True,
                              text=True).stdout.rstrip())  # fmt: skip
    promoted = (work / "build.sh").read_text() == TREATMENT_SCRIPT
    click.echo("")
    click.echo(f"build.sh is now {'the treatment (promoted)' if promoted else 'unchanged (no decision yet)'}; "
               f"git status: {'clean' if not _porcelain(work) else 'changes'}")


def _teammate_pulls(teammate: Path) -> None:
    click.echo("")
    click.echo(f"$ cd {teammate} && git pull --no-rebase origin main   # the teammate takes the decision")
    for line in _git(teammate, "pull", "--no-rebase", "--no-edit", "origin", "main").splitlines():
        if line.startswith("experiment-hook"):
            click.echo(f"  {line}")
    click.echo(f"teammate's build.sh is {_variant(teammate)}; git status: "
               f"{'clean' if not _porcelain(teammate) else 'changes'}")  # fmt: skip


def _variant(cwd: Path) -> str:
    return "the treatment" if (cwd / "build.sh").read_text() == TREATMENT_SCRIPT else "the control"


def _porcelain(cwd: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True).stdout
