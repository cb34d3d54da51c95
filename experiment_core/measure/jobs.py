"""Measurement jobs started by post-commit: spawned detached (the commit returns at once) or waited for
(``foreground: true``), and waited for by ``experiment-hook wait``.

A job is ``<state dir>/jobs/<token>.job`` (its arguments) plus ``<token>.pid`` once started; the job process
removes both when it is done. Standard library only and no ``subprocess`` import on the spawn path: post-commit
imports this module.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

JOBS_DIR = "jobs"
STALE_WITHOUT_PID = 30.0  # a job file with no pid file this old was never started


def jobs_dir(state_dir: str) -> str:
    return os.path.join(state_dir, JOBS_DIR)


def _write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def spawn(state_dir: str, args: list[str], foreground: bool) -> int:
    """Start ``python -m experiment_core.measure.commit_trials JOB ARGS...`` (JOB: this job's path, which the job
    removes when done); with ``foreground`` wait for it and return its exit code, else return 0 at once (its
    output goes to ``<token>.log``)."""
    directory = jobs_dir(state_dir)
    os.makedirs(directory, exist_ok=True)
    token = f"{int(time.time() * 1000):x}-{os.getpid()}-{os.urandom(4).hex()}"
    job_path = os.path.join(directory, token + ".job")
    _write(job_path, "\n".join(args) + "\n")
    argv = [sys.executable, "-m", "experiment_core.measure.commit_trials", job_path, *args]
    env = dict(os.environ)
    env["EXPERIMENT_HOOK_INTERNAL"] = "1"  # the measured command's git calls must not re-enter our hooks
    if foreground:
        pid = os.posix_spawn(sys.executable, argv, env)
        _record_pid(job_path, pid)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    log = os.path.join(directory, token + ".log")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        pid = os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
    except (NotImplementedError, TypeError, AttributeError):  # a platform without POSIX_SPAWN_SETSID
        import subprocess

        with open(log, "wb") as out:
            pid = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True).pid  # fmt: skip
    _record_pid(job_path, pid)
    return 0


def _record_pid(job_path: str, pid: int) -> None:
    pid_path = job_path[: -len(".job")] + ".pid"
    _write(pid_path, str(pid))
    if not os.path.exists(job_path):  # the job finished before we wrote its pid: leave nothing behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_path)


def finish(job_path: str, keep_log: bool) -> None:
    """Called by the job process itself when it is done."""
    base = job_path[: -len(".job")]
    for suffix in (".job", ".pid") + (() if keep_log else (".log",)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(base + suffix)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child of ours that nobody reaped yet is a zombie: not running
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def pending(state_dir: str) -> list[str]:
    """Job files still running (or about to start). Jobs whose process died are cleaned up and not listed."""
    directory = jobs_dir(state_dir)
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".job"))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        job_path = os.path.join(directory, name)
        pid_path = job_path[: -len(".job")] + ".pid"
        try:
            with open(pid_path, encoding="utf-8") as f:
                pid = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            try:
                age = time.time() - os.stat(job_path).st_mtime
            except FileNotFoundError:
                continue
            if age < STALE_WITHOUT_PID:
                out.append(job_path)
            else:
                finish(job_path, keep_log=True)
            continue
        if pid and _alive(pid):
            out.append(job_path)
        elif os.path.exists(job_path):
            finish(job_path, keep_log=True)
    return out


def wait(state_dir: str, timeout: float, poll: float = 0.02) -> list[str]:
    """Wait until no job is pending or ``timeout`` passes; return those still pending."""
    deadline = time.monotonic() + timeout
    while True:
        left = pending(state_dir)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(poll)
