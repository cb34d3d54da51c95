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
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
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


def deploy_units(repo: Path, seed: str) -> None:
    """What a branch checkout's hook does, in-process: a new unit of every running experiment, the arms drawn
    from ``seed``, deployed through the filter driver (for tests that need a deployed variant without hooks)."""
    import random

    from experiment_core.clock import format_ts, utc_now
    from experiment_core.deploy.worktree import reconcile
    from experiment_core.gitio import Git
    from experiment_core.store.spec import load_registry

    reconcile(Git(repo), load_registry(repo), rng=random.Random(seed), now=format_ts(utc_now()))


# ---- hooks: a pre-commit environment built once per test session (shared by the xdist workers) ------------
SEED_TREATMENT = "treat"  # random.Random("treat").random() < 0.5: the first draw is treatment
SEED_CONTROL = "b"  # random.Random("b").random() >= 0.5: the first draw is control


def _project_snapshot(dest: Path) -> str:
    """Commit the project's current files (tracked and new, not ignored) into a fresh repo: pre-commit installs
    the hooks from there, so what is tested is this work tree, committed or not. Returns the commit."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT, check=True,
                            capture_output=True).stdout.decode().split("\0")  # fmt: skip
    dest.mkdir(parents=True, exist_ok=True)
    for rel in filter(None, listed):
        src = PROJECT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "-m", "snapshot")
    return git(dest, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="session")
def pre_commit_hooks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(hook repository, its commit, PRE_COMMIT_HOME) with the hook environment already installed.

    Built once per session: the first xdist worker builds it under a file lock, the others reuse it."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    # xdist workers' basetemps share this session's dir; without xdist the parent is shared by *every* session
    # (a stale snapshot of older code would be tested), so then the session's own basetemp
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(shared / "pre-commit.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        hook_repo, home, done = shared / "hook-repo", shared / "pre-commit-home", shared / "pre-commit.ready"
        if not done.exists():
            rev = _project_snapshot(hook_repo)
            probe = init_repo(shared / "pre-commit-probe")
            (probe / ".pre-commit-config.yaml").write_text(pre_commit_config(hook_repo, rev))
            subprocess.run([sys.executable, "-m", "pre_commit", "install-hooks"], cwd=probe, check=True,
                           capture_output=True, env=cli_env({"PRE_COMMIT_HOME": str(home)}))  # fmt: skip
            done.write_text(rev)
        return hook_repo, done.read_text(), home


def pre_commit_config(hook_repo: Path, rev: str) -> str:
    return (
        "default_install_hook_types: [post-checkout, post-commit, pre-push, post-merge, post-rewrite]\n"
        f"repos:\n- repo: {hook_repo}\n  rev: {rev}\n  hooks:\n"
        "  - id: experiment-assign\n  - id: experiment-record\n  - id: experiment-decide\n"
        "  - id: experiment-follow\n"
    )
