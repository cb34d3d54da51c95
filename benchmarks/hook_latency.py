"""How much our post-commit hook adds to `git commit`, from one run.

1. `git commit --allow-empty` with our directly installed post-commit hook (`experiment-hook install`, an active
   unit of an experiment whose command is `true`) vs a minimal stdlib Python hook doing `git rev-parse` +
   `git notes add`. Goal: ≤ 1.3x.
2. The same through pre-commit (`experiment-record`) vs a no-op `language: python` pre-commit hook. Goal: ≤ 1.15x.
3. `git status` with the treatment deployed through the filter driver vs the same repository without experiments.
   Goal: ≤ +5 ms. Also shown: a status right after the deployed file was touched (git must start the filter).

Configurations are timed interleaved (round-robin), the detached measurement jobs are waited for outside the
timed region, and medians are reported. Usage: `python benchmarks/hook_latency.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BASELINE_HOOK = """#!{python}
import subprocess
head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
subprocess.run(["git", "notes", "--ref=bench", "add", "-f", "-m", "trial", head], capture_output=True)
"""


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("EXPERIMENT_HOOK_INTERNAL", None)
    e.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode: compiling is not the hook's cost
    e.update({"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
              "GIT_COMMITTER_EMAIL": "b@b"})  # fmt: skip
    e.update(extra or {})
    return e


def sh(cwd: Path, *args: str, extra: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env(extra))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    sh(path, "git", "init", "-q", "-b", "main")
    (path / "tool.cfg").write_text("workers = 1\n")
    sh(path, "git", "add", ".")
    sh(path, "git", "commit", "-q", "-m", "initial")
    return path


def with_experiment(repo: Path, extra: dict[str, str]) -> None:
    cli = [sys.executable, "-m", "experiment_core"]
    exp = json.loads(sh(repo, *cli, "create", "--name", "b", "--file", "tool.cfg", "--command", "true", "--json",
                        extra=extra))["id"]  # fmt: skip
    (repo / ".experiments" / exp / "tool.cfg").write_text("workers = 8\n")


def snapshot_project(dest: Path) -> str:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT, check=True,
                            capture_output=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        if (PROJECT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes((PROJECT / rel).read_bytes())
    sh(dest, "git", "init", "-q", "-b", "main")
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-q", "-m", "snapshot")
    return sh(dest, "git", "rev-parse", "HEAD").strip()


def pre_commit(repo: Path, config: str, home: Path) -> None:
    (repo / ".pre-commit-config.yaml").write_text(config)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "--no-verify", "-m", "config")
    sh(repo, sys.executable, "-m", "pre_commit", "install", "--install-hooks", extra={"PRE_COMMIT_HOME": str(home)})


def timed_commit(repo: Path, extra: dict[str, str], after: Callable[[], None] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "bench"], cwd=repo, env=env(extra),
                          capture_output=True)  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"commit failed in {repo}: {proc.stderr.decode()}")
    if after:
        after()
    return elapsed


def timed_status(repo: Path, touch: Path | None = None) -> float:
    if touch is not None:
        os.utime(touch)  # stat-dirty: git runs the clean filter (starts the filter process) to compare content
    start = time.perf_counter()
    proc = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=env(), capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or proc.stdout:
        raise SystemExit(f"git status in {repo} not clean: {proc.stdout.decode()} {proc.stderr.decode()}")
    return elapsed


def status_benchmark(base: Path, runs: int) -> None:
    src = {"PYTHONPATH": str(PROJECT)}
    plain = new_repo(base / "status-plain")
    deployed = new_repo(base / "status-deployed")
    with_experiment(deployed, src)
    sh(deployed, sys.executable, "-m", "experiment_core", "install", extra=src)
    sh(deployed, "git", "add", "-A")
    sh(deployed, "git", "commit", "-q", "-m", "experiment")
    sh(deployed, "git", "checkout", "-q", "-b", "unit", extra={**src, "EXPERIMENT_HOOK_SEED": "treat"})
    if (deployed / "tool.cfg").read_text() != "workers = 8\n":
        raise SystemExit("the treatment was not deployed")
    for repo in (plain, deployed):  # the same tracked files apart from the experiment's own
        for i in range(200):
            (repo / f"f{i}.txt").write_text(f"{i}\n")
        sh(repo, "git", "add", "-A")
        sh(repo, "git", "commit", "-q", "-m", "files")
    steady = {
        "no experiment": lambda: timed_status(plain),
        "treatment deployed (filter driver)": lambda: timed_status(deployed),
    }
    touched = {  # measured after the steady ones: a touch leaves the index racy for a second
        "no experiment, a file touched": lambda: timed_status(plain, plain / "tool.cfg"),
        "treatment deployed, its file touched": lambda: timed_status(deployed, deployed / "tool.cfg"),
    }
    times: dict[str, list[float]] = {name: [] for name in [*steady, *touched]}
    for configs in (steady, touched):
        for f in configs.values():
            f()
        for _ in range(runs):
            for name, f in configs.items():
                times[name].append(f())
    med = {name: statistics.median(v) * 1000 for name, v in times.items()}
    print(f"git status --porcelain (202 tracked files), median of {runs} runs (ms):")
    for name, value in med.items():
        print(f"  {name:<42} {value:7.1f}")
    extra = med["treatment deployed (filter driver)"] - med["no experiment"]
    after_touch = med["treatment deployed, its file touched"] - med["no experiment, a file touched"]
    print(f"deployed - no experiment:    {extra:+.1f} ms (goal ≤ +5 ms) {'OK' if extra <= 5 else 'MISSED'}")
    print(f"after a touch of the file:   {after_touch:+.1f} ms (git starts the filter once for that command)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--status-only", action="store_true", help="Only the git status comparison.")
    args = parser.parse_args()
    runs = args.runs
    base = Path(tempfile.mkdtemp(prefix="experiment-hook-bench-"))
    status_benchmark(base, runs)
    if args.status_only:
        return
    src = {"PYTHONPATH": str(PROJECT)}
    home = base / "pre-commit-home"
    print(f"setting up in {base} (the pre-commit environments take a while the first time)", file=sys.stderr)

    ours = new_repo(base / "ours")
    with_experiment(ours, src)
    sh(ours, sys.executable, "-m", "experiment_core", "install", extra=src)
    sh(ours, "git", "add", "-A")
    sh(ours, "git", "commit", "-q", "-m", "experiment")
    sh(ours, "git", "checkout", "-q", "-b", "unit", extra=src)  # an active unit: every commit is a trial

    foreground = new_repo(base / "foreground")
    with_experiment(foreground, src)
    sys.path.insert(0, str(PROJECT))
    from experiment_core.store.spec import edit_registry

    edit_registry(foreground, lambda doc: doc["experiments"][0].__setitem__("foreground", True))
    sh(foreground, sys.executable, "-m", "experiment_core", "install", extra=src)
    sh(foreground, "git", "add", "-A")
    sh(foreground, "git", "commit", "-q", "-m", "experiment")
    sh(foreground, "git", "checkout", "-q", "-b", "unit", extra=src)

    stdlib = new_repo(base / "stdlib")
    hook = stdlib / ".git" / "hooks" / "post-commit"
    hook.write_text(BASELINE_HOOK.format(python=sys.executable))
    hook.chmod(0o755)

    hook_repo = base / "hook-repo"
    hook_repo.mkdir()
    rev = snapshot_project(hook_repo)
    pc_ours = new_repo(base / "pc-ours")
    with_experiment(pc_ours, src)
    pre_commit(pc_ours, "default_install_hook_types: [post-checkout, post-commit]\n"
               f"repos:\n- repo: {hook_repo}\n  rev: {rev}\n  hooks:\n  - id: experiment-assign\n"
               "  - id: experiment-record\n", home)  # fmt: skip
    pc_env = {"PRE_COMMIT_HOME": str(home)}
    sh(pc_ours, "git", "checkout", "-q", "-b", "unit", extra=pc_env)
    pc_noop = new_repo(base / "pc-noop")
    pre_commit(pc_noop, "default_install_hook_types: [post-commit]\nrepos:\n- repo: local\n  hooks:\n"
               "  - id: noop\n    name: noop\n    entry: python -c pass\n    language: python\n"
               "    stages: [post-commit]\n    always_run: true\n    pass_filenames: false\n", home)  # fmt: skip

    def wait(repo: Path, extra: dict[str, str]) -> Callable[[], None]:
        return lambda: sh(repo, sys.executable, "-m", "experiment_core", "wait", extra=extra)

    configs: dict[str, tuple[Path, dict[str, str], Callable[[], None] | None]] = {
        "bare git (no hook)": (new_repo(base / "bare"), {}, None),
        "stdlib hook (rev-parse + notes add)": (stdlib, {}, None),
        "ours, installed (detached measurement)": (ours, {}, wait(ours, src)),
        "ours, installed, foreground: true": (foreground, {}, None),
        "pre-commit no-op python hook": (pc_noop, pc_env, None),
        "ours through pre-commit": (pc_ours, pc_env, wait(pc_ours, src)),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    for repo, extra, after in configs.values():  # warm-up
        timed_commit(repo, extra, after)
    for _ in range(runs):
        for name, (repo, extra, after) in configs.items():
            times[name].append(timed_commit(repo, extra, after))
    med = {name: statistics.median(v) * 1000 for name, v in times.items()}
    print(f"git commit --allow-empty, median of {runs} runs (ms):")
    for name, value in med.items():
        print(f"  {name:<42} {value:7.1f}")
    direct = med["ours, installed (detached measurement)"] / med["stdlib hook (rev-parse + notes add)"]
    through = med["ours through pre-commit"] / med["pre-commit no-op python hook"]
    print(f"ours / stdlib hook:          {direct:.2f}x (goal ≤ 1.30x) {'OK' if direct <= 1.3 else 'MISSED'}")
    print(f"ours / no-op pre-commit:     {through:.2f}x (goal ≤ 1.15x) {'OK' if through <= 1.15 else 'MISSED'}")


if __name__ == "__main__":
    main()
