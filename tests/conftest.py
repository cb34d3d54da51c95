"""Fixtures: real temporary git repositories and the real CLI in a subprocess (no mocks)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("EXPERIMENT_HOOK_INTERNAL", None)
    env.setdefault("GIT_AUTHOR_NAME", "Test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "Test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@example.com")
    if extra:
        env.update(extra)
    return env


def git(repo: Path, *args: str, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=cli_env(), input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def run_cli(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "experiment_core", *args], cwd=repo, capture_output=True, text=True,
        env=cli_env(env), input=input,
    )  # fmt: skip
    if check and proc.returncode != 0:
        what = f"experiment-hook {' '.join(args)} exited {proc.returncode}"
        raise AssertionError(f"{what}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    git(path, "config", "commit.gpgsign", "false")
    (path / "tool.cfg").write_text("workers = 1\n")
    (path / "build.sh").write_text("#!/bin/sh\necho building\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


def snapshot(repo: Path) -> dict[str, str]:
    """Every work-tree file's hash plus every ref (notes and backups included): 'nothing changed' is equality."""
    state: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts and rel.parts[0] == ".git":
            continue
        if path.is_file() and not path.is_symlink():
            state[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    state["<refs>"] = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return state


@pytest.fixture
def create_exp(repo: Path) -> Callable[..., str]:
    import json

    def make(*extra: str, file: str = "tool.cfg", command: str = "true") -> str:
        out = run_cli(repo, "create", "--name", "t", "--hypothesis", "h", "--file", file, "--command", command,
                      "--json", *extra).stdout  # fmt: skip
        return str(json.loads(out)["id"])

    return make


def make_clones(base: Path, n: int, *, seed_commit: bool = True) -> tuple[Path, list[Path]]:
    """A real bare remote and ``n`` clones of it (with a shared first commit when ``seed_commit``)."""
    remote = base / "remote.git"
    git(base, "init", "-q", "--bare", "-b", "main", str(remote))
    clones: list[Path] = []
    for i in range(n):
        path = base / f"clone{i}"
        git(base, "clone", "-q", str(remote), str(path))
        git(path, "config", "user.email", f"c{i}@example.com")
        git(path, "config", "user.name", f"Clone {i}")
        git(path, "config", "commit.gpgsign", "false")
        if i == 0 and seed_commit:
            (path / "tool.cfg").write_text("workers = 1\n")
            (path / "build.sh").write_text("#!/bin/sh\necho building\n")
            git(path, "add", ".")
            git(path, "commit", "-q", "-m", "initial")
            git(path, "push", "-q", "origin", "main")
        elif seed_commit:
            git(path, "pull", "-q", "origin", "main")
        clones.append(path)
    return remote, clones


@pytest.fixture
def clones(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A bare remote and three clones sharing a first commit."""
    return make_clones(tmp_path, 3)
