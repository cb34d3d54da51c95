"""``experiment-hook demo``: a real end-to-end run in a scratch git repository, driven by the installed hooks."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import click

from experiment_core.assign import current_assignment
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


def _git(cwd: Path, *args: str, seed: str | None = None) -> None:
    import os

    env = dict(os.environ)
    env.pop("EXPERIMENT_HOOK_INTERNAL", None)
    if seed is not None:
        env["EXPERIMENT_HOOK_SEED"] = seed
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(path_type=Path), help="Where to make the scratch repository.")
@click.option("--trials", type=click.IntRange(min=4), default=12, show_default=True, help="Trials per arm (about).")
@click.option("--seed", type=int, default=None, help="Seed the arms drawn (for reproducible demos).")
def demo(directory: Path | None, trials: int, seed: int | None) -> None:
    """Create a scratch repo, install the real hooks, and let branch checkouts and commits run an experiment on
    its build script; then print status and analysis."""
    root = directory or Path(tempfile.mkdtemp(prefix="experiment-hook-demo-"))
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory} is not empty: give a new or empty directory")
    make_scratch_repo(root)
    click.echo(f"Scratch repository: {root}")
    import json

    created = json.loads(_cli(
        root, "create", "--name", "One interpreter start in build.sh", "--hypothesis",
        "Starting python once instead of twice makes the build faster", "--file", "build.sh",
        "--command", "sh build.sh", "--sample-size", str(trials), "--json",
    ))  # fmt: skip
    exp_id = created["id"]
    treatment_file = root / created["files"]["build.sh"]
    treatment_file.write_text(TREATMENT_SCRIPT)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "experiment: one interpreter start in build.sh")
    click.echo(f"Created {exp_id}; the treatment is {treatment_file.relative_to(root)}")
    click.echo(_cli(root, "install").rstrip())
    git = Git(root)
    for i in range(2 * trials):
        # Each branch checkout is a new unit (the post-checkout hook draws the arm and swaps build.sh);
        # each commit is a trial (the post-commit hook times `sh build.sh` in the background).
        _git(root, "checkout", "-q", "-b", f"task-{i + 1}", "main", seed=None if seed is None else f"{seed}-{i}")
        (root / "notes.txt").write_text(f"task {i + 1}\n")
        _git(root, "add", "notes.txt")
        _git(root, "commit", "-q", "-m", f"task {i + 1}")
        _cli(root, "wait")
        current = current_assignment(git, exp_id)
        click.echo(f"  task {i + 1:>2}/{2 * trials}  {current.arm if current else 'paused':<9}  build.sh is "
                   f"{'the treatment' if (root / 'build.sh').read_text() == TREATMENT_SCRIPT else 'the control'}")
    _git(root, "checkout", "-q", "main")
    _cli(root, "restore")
    click.echo("")
    click.echo(_cli(root, "status"))
    click.echo(_cli(root, "analyze", exp_id))
