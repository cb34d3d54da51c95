"""``experiment-hook demo``: a real end-to-end run in a scratch git repository."""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path

import click

from experiment_core import ledger
from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git
from experiment_core.measure import time_command
from experiment_core.spec import load_registry

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


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(path_type=Path), help="Where to make the scratch repository.")
@click.option("--trials", type=click.IntRange(min=4), default=12, show_default=True, help="Trials per arm.")
@click.option("--seed", type=int, default=None, help="Seed the arm order (for reproducible demos).")
def demo(directory: Path | None, trials: int, seed: int | None) -> None:
    """Create a scratch repo, run a real experiment on a build script, print status and analysis."""
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
    click.echo(f"Created {exp_id}; the treatment is {treatment_file.relative_to(root)}")
    git = Git(root)
    exp = load_registry(root).get(exp_id)
    target = root / "build.sh"
    control = target.read_bytes()
    treatment = treatment_file.read_bytes()
    rng = random.Random(seed)
    order = ["control", "treatment"] * trials
    rng.shuffle(order)
    events = []
    try:
        for i, arm in enumerate(order, start=1):
            atomic_write(target, control if arm == "control" else treatment)
            m = time_command(exp.metric.command or "true", root, exp.timeout)
            events.append(ledger.make_event(
                "trial", exp_id, arm=arm, metric=exp.metric.name, value=m.seconds, unit=f"demo-{i}",
                exit_code=m.exit_code, commit=git.head(),
            ))  # fmt: skip
            click.echo(f"  trial {i:>2}/{len(order)}  {arm:<9}  {m.seconds * 1000:7.1f} ms")
    finally:
        atomic_write(target, control)
    ledger.append(git, events)
    click.echo("")
    click.echo(_cli(root, "status"))
    click.echo(_cli(root, "analyze", exp_id))
