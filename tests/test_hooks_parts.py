"""The hooks' parts: randomization, content classification, argument sources, install/uninstall, the import
budget of the hook paths, and "never break git"."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from experiment_core import hookenv
from experiment_core.deploy.assign import balanced_order, draw_arm
from experiment_core.deploy.filter_driver import merge3
from experiment_core.deploy.variants import blob_id, parse_ls_files
from experiment_core.hookpaths.post_commit import find_git_dir, is_new_work, last_reflog
from experiment_core.hookpaths.pre_push import parse_refs
from tests.conftest import PROJECT, SEED_TREATMENT, cli_env, git, run_cli

HEAVY = ("scipy", "numpy", "git", "click", "ruamel", "ruamel.yaml")


def test_balanced_order_pairs_each_arm_once() -> None:
    rng = random.Random(7)
    for n in (2, 10, 20, 21):
        order = balanced_order(n, rng)
        assert len(order) == n
        for i in range(0, n - 1, 2):
            assert sorted(order[i : i + 2]) == ["control", "treatment"]
    firsts = {tuple(balanced_order(4, random.Random(s))[:2]) for s in range(20)}
    assert len(firsts) == 2  # both orders of a pair occur


def test_draw_arm_follows_the_split() -> None:
    rng = random.Random(1)
    draws = [draw_arm(0.2, rng) for _ in range(2000)]
    assert 300 < draws.count("treatment") < 500


def test_blob_id_is_gits(repo: Path) -> None:
    data = b"workers = 8\n\x00binary"
    (repo / "x.bin").write_bytes(data)
    assert blob_id(data) == git(repo, "hash-object", "x.bin").strip()


MERGES = [  # (ours, base, theirs): changes apart from each other, and changes to the same lines
    ("a\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n", "A\nb\nc\nd\ne\n"),
    ("x\n1\n2\n3\n4\ny\n", "x\n1\n2\n3\n4\nY\nz\n", "X\nx\n1\n2\n3\n4\ny\n"),
    ("k=1\nv=2\nw=3\nq=4\n", "k=1\nv=9\nw=3\nq=4\n", "k=1\nv=7\nw=3\nq=4\n"),
    ("same\n", "changed\n", "changed\n"),
    ("a\n", "b\n", "c\n"),
]


@pytest.mark.parametrize(("base", "ours", "theirs"), MERGES)
def test_merge3_agrees_with_git_merge_file(tmp_path: Path, base: str, ours: str, theirs: str) -> None:
    """Where git merge-file merges (changes apart) or conflicts (same lines), the filter's merge does the same."""
    for name, text in (("o", ours), ("b", base), ("t", theirs)):
        (tmp_path / name).write_text(text)
    proc = subprocess.run(["git", "merge-file", "-p", "o", "b", "t"], cwd=tmp_path, capture_output=True)
    got = merge3(ours.encode(), base.encode(), theirs.encode())
    assert got == (proc.stdout if proc.returncode == 0 else None)


def test_merge3_merges_changes_to_neighbouring_lines() -> None:
    """git merge-file calls these a conflict; a teammate's change next to the treatment's line must flow in."""
    assert merge3(b"a=2\nmode=control\n", b"a=1\nmode=control\n", b"a=1\nmode=treatment\n") == \
        b"a=2\nmode=treatment\n"  # fmt: skip
    assert merge3(b"workers = 1\n", b"workers = 8\n", b"workers = 8\n# mine\n") == b"workers = 1\n# mine\n"
    assert merge3(b"workers = 1\n", b"workers = 8\n", b"workers = 4\n") is None


def test_parse_ls_files_reads_skip_worktree_bits(repo: Path) -> None:
    git(repo, "update-index", "--skip-worktree", "tool.cfg")
    entries = parse_ls_files(git(repo, "ls-files", "-s", "-v", "-z"))
    assert entries["tool.cfg"].skip_worktree and not entries["build.sh"].skip_worktree
    assert entries["tool.cfg"].blob == blob_id((repo / "tool.cfg").read_bytes())


def test_hook_arguments_from_git_or_pre_commit() -> None:
    assert hookenv.checkout_args(["a", "b", "1"], {}) == ("a", "b", "1")
    env = {"PRE_COMMIT_FROM_REF": "a", "PRE_COMMIT_TO_REF": "b", "PRE_COMMIT_CHECKOUT_TYPE": "0"}
    assert hookenv.checkout_args([], env) == ("a", "b", "0")
    assert hookenv.push_args(["origin", "url"], {}) == ("origin", "url")
    assert hookenv.push_args([], {"PRE_COMMIT_REMOTE_NAME": "o", "PRE_COMMIT_REMOTE_URL": "u"}) == ("o", "u")
    assert parse_refs("refs/heads/m 1111 refs/heads/m 0000\n\n")[0].remote_ref == "refs/heads/m"


def test_reflog_subject_tells_new_work_from_rewrites(repo: Path) -> None:
    assert is_new_work("commit: x") and is_new_work("commit (initial): x") and is_new_work("commit (merge): x")
    assert not is_new_work("commit (amend): x") and not is_new_work("rebase (pick): x")
    git_dir = find_git_dir(str(repo), {})
    assert git_dir is not None
    git(repo, "commit", "-q", "--allow-empty", "-m", "next")
    got = last_reflog(git_dir)
    assert got == (git(repo, "rev-parse", "HEAD").strip(), "commit: next")
    git(repo, "commit", "-q", "--amend", "--allow-empty", "-m", "again")
    assert last_reflog(git_dir)[1].startswith("commit (amend): ")  # type: ignore[index]
    wt = repo.parent / "wt"
    git(repo, "worktree", "add", "-q", str(wt))
    assert Path(find_git_dir(str(wt), {}) or "").resolve() == Path(git(wt, "rev-parse", "--absolute-git-dir").strip())


def test_install_chains_honours_hooks_path_and_uninstall_puts_back(repo: Path) -> None:
    hooks = repo / "my-hooks"
    hooks.mkdir()
    git(repo, "config", "core.hooksPath", "my-hooks")
    log = repo.parent / "theirs.log"
    (hooks / "post-commit").write_text(f"#!/bin/sh\necho theirs >> {log}\nexit 3\n")
    (hooks / "post-commit").chmod(0o755)
    out = run_cli(repo, "install").stdout
    assert "chained" in out and str(hooks / "post-commit") in out
    script = (hooks / "post-commit").read_text()
    assert sys.executable in script and "experiment-hook: managed hook" in script
    assert git(repo, "config", "--get-all", "notes.rewriteRef").split() == ["refs/notes/experiments",
                                                                           "refs/notes/experiments-*"]
    assert not (repo / ".git" / "hooks" / "post-commit").exists()
    proc = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo, env=cli_env(),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0 and log.read_text() == "theirs\n"  # the chained hook ran
    run_cli(repo, "install")  # idempotent: updates ours, keeps theirs chained
    assert (hooks / "post-commit.pre-experiment-hook").exists()
    run_cli(repo, "uninstall")
    assert (hooks / "post-commit").read_text().startswith("#!/bin/sh\necho theirs")
    assert not (hooks / "post-checkout").exists() and not (hooks / "pre-push").exists()


def test_chained_post_checkout_status_is_kept(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\nexit 5\n")
    hook.chmod(0o755)
    without = subprocess.run(["git", "checkout", "-q", "-b", "a"], cwd=repo, env=cli_env(), capture_output=True)
    run_cli(repo, "install")
    proc = subprocess.run(["git", "checkout", "-q", "-b", "b"], cwd=repo, env=cli_env(), capture_output=True)
    assert proc.returncode == without.returncode != 0  # exactly as without the tool


def _active_repo(repo: Path) -> str:
    out = run_cli(repo, "create", "--name", "t", "--file", "tool.cfg", "--command", "true", "--json").stdout
    exp = str(json.loads(out)["id"])
    (repo / ".experiments" / exp / "tool.cfg").write_text("workers = 8\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "exp")
    run_cli(repo, "install")
    return exp


PROBE = """
import os, sys
sys.argv = ["hook", "0" * 40, sys.argv[1], "1"]
from experiment_core.hookpaths.{module} import main
assert main(sys.argv[1:]) == 0
heavy = [m for m in {heavy!r} if m in sys.modules]
print(",".join(heavy))
"""


@pytest.mark.parametrize("module", ["post_checkout", "post_commit"])
def test_hook_paths_import_nothing_heavy(repo: Path, module: str) -> None:
    _active_repo(repo)
    env = cli_env({"EXPERIMENT_HOOK_SEED": SEED_TREATMENT})
    subprocess.run(["git", "checkout", "-q", "-b", "warm"], cwd=repo, env=env, check=True)  # warms the cache
    git(repo, "commit", "-q", "--allow-empty", "-m", "a trial")
    head = git(repo, "rev-parse", "HEAD").strip()
    proc = subprocess.run([sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY), head], cwd=repo,
                          env=env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"heavy modules imported by {module}: {proc.stdout}"
    run_cli(repo, "wait")


def test_a_broken_hook_warns_once_and_exits_zero(repo: Path) -> None:
    _active_repo(repo)
    (repo / "experiments.yaml").write_text("experiments: [\n")  # broken YAML: the hook cannot load the registry
    proc = subprocess.run(["git", "checkout", "-q", "-b", "b"], cwd=repo, env=cli_env(), capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("experiment-hook: post-checkout hook skipped")


def test_internal_git_processes_skip_our_hooks(repo: Path) -> None:
    _active_repo(repo)
    env = cli_env({"EXPERIMENT_HOOK_INTERNAL": "1"})
    subprocess.run(["git", "checkout", "-q", "-b", "internal"], cwd=repo, env=env, check=True)
    assert not (repo / ".git" / "experiment-hook" / "assignments.json").exists()


def test_pre_push_is_a_seam_that_lets_the_push_through(repo: Path, tmp_path: Path) -> None:
    _active_repo(repo)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    proc = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=repo, env=cli_env(), capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (PROJECT / "hooks" / "pre_push.py").exists()


def test_foreground_failure_is_recorded_and_shown(repo: Path) -> None:
    from experiment_core.gitio import Git
    from experiment_core.store import ledger
    from experiment_core.store.spec import edit_registry

    out = run_cli(repo, "create", "--name", "t", "--file", "tool.cfg", "--command", "echo boom; exit 3",
                  "--json").stdout  # fmt: skip
    exp = str(json.loads(out)["id"])
    edit_registry(repo, lambda doc: doc["experiments"][0].__setitem__("foreground", True))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "exp")
    run_cli(repo, "install")
    subprocess.run(["git", "checkout", "-q", "-b", "fg"], cwd=repo, env=cli_env(), check=True)
    proc = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "trial"], cwd=repo, env=cli_env(),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0
    assert "boom" in proc.stderr and "exited 3" in proc.stderr  # output shown only because it failed
    trials = [e for e in ledger.read(Git(repo)).events if e["type"] == "trial" and e["exp"] == exp]  # no wait
    assert {t["metric"]: t["exit_code"] for t in trials} == {"time_to_complete": 3, "time_to_commit": None}
