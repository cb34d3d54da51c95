"""Timing an experiment's command the way hyperfine does: monotonic clock, exit code kept, timeout, output captured.

A command that names a program with plain arguments (no shell syntax, no builtin) is spawned directly, without a
shell: for such a command the shell would only start up and then exec it, so this is the shell's timing minus its
start-up. Any other command runs through ``/bin/sh -c`` and the shell's own start-up, measured the same way on an
empty command (hyperfine's calibration), is subtracted. Each :class:`Measurement` says which was done
(``timing``: ``direct`` | ``shell``, and the ``startup`` subtracted); trial events carry both so ``analyze`` can
say how its numbers were taken.

The clock is read right before the spawn (``os.posix_spawnp``, as cheap as hyperfine's own) and right after the
process is seen to exit (a pidfd, no polling loop); output goes to an in-memory file rather than a pipe, so nothing
has to be drained while the clock runs.
"""

from __future__ import annotations

import math
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

TIMEOUT_EXIT = 124  # what coreutils `timeout` reports
DIRECT = "direct"
SHELL = "shell"
CALIBRATION_RUNS = 40  # empty-shell runs behind one start-up figure (after CALIBRATION_WARMUP)
CALIBRATION_WARMUP = 5
CALIBRATION_FILE = "shell-startup"
CALIBRATION_MAX_AGE = 3600.0  # seconds a cached start-up figure is reused by the post-commit job

# dash/POSIX builtins and keywords: `sh -c WORD ...` would not exec a program for these.
SHELL_WORDS = frozenset([
    ".", ":", "[", "alias", "bg", "break", "cd", "command", "continue", "echo", "eval", "exec", "exit", "export",
    "false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return", "set",
    "shift", "test", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "wait", "!", "{", "}",
    "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "then", "until", "while",
])  # fmt: skip
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:,+@%^=")


@dataclass(frozen=True)
class Measurement:
    seconds: float
    exit_code: int
    output: str
    timing: str = DIRECT  # DIRECT | SHELL
    startup: float = 0.0  # the shell start-up subtracted from ``seconds`` (SHELL only)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def direct_argv(command: str) -> list[str] | None:
    """The argv of ``command`` when it needs no shell: plain words, ``'...'`` and ``"..."`` quoting without
    ``$``, backquote or backslash, and a first word that is neither a builtin/keyword nor an assignment.
    None when the shell is needed (this errs towards the shell: it is correct for every command)."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    for ch in command:
        if quote:
            if ch == quote:
                quote = ""
            elif quote == '"' and ch in "$`\\":
                return None
            else:
                word.append(ch)
        elif ch in " \t":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif ch in "'\"":
            quote, in_word = ch, True
        elif ch in _PLAIN:
            word.append(ch)
            in_word = True
        else:
            return None
    if quote:
        return None
    if in_word:
        words.append("".join(word))
    if not words or words[0] in SHELL_WORDS or "=" in words[0]:
        return None
    return words


def _output_file() -> IO[bytes]:
    """An anonymous file for the command's output: in memory where the OS has memfd."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        try:
            return open(memfd("experiment-hook-output", os.MFD_CLOEXEC), "w+b")
        except OSError:
            pass
    import tempfile

    return tempfile.TemporaryFile()


# signals Python ignores for itself, back to their defaults in the command (as subprocess's restore_signals does)
_PYTHON_IGNORES = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))


def _spawn_and_wait(args: Any, shell: bool, cwd: Path, timeout: float, out: IO[bytes]) -> tuple[float, int | None]:
    """Seconds from spawn to exit and the exit code (None: killed at the timeout). Raises OSError when the
    program cannot be started.

    The clock brackets ``os.posix_spawnp`` (glibc: clone with CLONE_VFORK, as hyperfine's spawn) and the exit
    seen through a pidfd: ``subprocess.Popen``'s own Python work (≈ 0.4 ms) would land inside the measurement.
    posix_spawn has no working-directory action before Python 3.13, so the parent steps into ``cwd`` around the
    spawn (outside the clock)."""
    argv = ["/bin/sh", "-c", args] if shell else list(args)
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
               (os.POSIX_SPAWN_DUP2, out.fileno(), 2)]  # fmt: skip
    env = dict(os.environ)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        start = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsigdef=_PYTHON_IGNORES)
    finally:
        os.chdir(here)
    try:
        exited = _wait_exit(pid, timeout)
        elapsed = time.perf_counter() - start
        if not exited:
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    except BaseException:  # Ctrl-C: the command goes too, and no zombie is left
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    return elapsed, os.waitstatus_to_exitcode(status) if exited else None


def _wait_exit(pid: int, timeout: float) -> bool:
    """Block until ``pid`` exits (True) or ``timeout`` passes (False), without reaping it."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            fd = pidfd_open(pid)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                deadline = time.monotonic() + timeout
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    if poller.poll(min(left, 3600.0) * 1000):
                        return True
            finally:
                os.close(fd)
    deadline = time.monotonic() + timeout  # no pidfd (old kernel): poll the child's state
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.0005)
    return False


def _read(out: IO[bytes]) -> str:
    out.seek(0)
    return out.read().decode("utf-8", "replace")


def time_command(command: str, cwd: Path, timeout: float = 600.0,
                 shell_startup: Callable[[], float] | None = None) -> Measurement:  # fmt: skip
    """Run ``command`` (it comes from the repository's own experiments.yaml or the user's command line, never
    from the ledger) and time it as hyperfine would: directly when it needs no shell, else through the shell
    with the shell's start-up (``shell_startup()``, default: measured now) subtracted. Output is captured, to
    be shown only on failure."""
    argv = direct_argv(command)
    with _output_file() as out:
        if argv is not None:
            try:
                elapsed, code = _spawn_and_wait(argv, False, cwd, timeout, out)
                return _measurement(elapsed, code, _read(out), timeout, DIRECT, 0.0)
            except OSError:  # not found, not executable: the shell says so, with its exit code
                pass
        startup = (shell_startup or (lambda: measure_shell_startup(cwd)))()
        elapsed, code = _spawn_and_wait(command, True, cwd, timeout, out)
        return _measurement(elapsed, code, _read(out), timeout, SHELL, startup)


def _measurement(elapsed: float, code: int | None, output: str, timeout: float, timing: str,
                 startup: float) -> Measurement:  # fmt: skip
    seconds = max(0.0, elapsed - startup)
    if code is None:
        return Measurement(seconds, TIMEOUT_EXIT, output + f"\n[timed out after {timeout:g} s]", timing, startup)
    return Measurement(seconds, code, output, timing, startup)


def measure_shell_startup(cwd: Path, runs: int = CALIBRATION_RUNS) -> float:
    """The shell's own start-up as :func:`time_command` sees it: the median time of ``sh -c ''`` (robust to a
    preempted run on a busy machine), spawned exactly as a measured command is."""
    times = []
    with _output_file() as out:
        for i in range(CALIBRATION_WARMUP + runs):
            elapsed, _ = _spawn_and_wait("", True, cwd, 10.0, out)
            if i >= CALIBRATION_WARMUP:
                times.append(elapsed)
    times.sort()
    mid = len(times) // 2
    return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2


def cached_shell_startup(cwd: Path, cache: Path, max_age: float = CALIBRATION_MAX_AGE) -> Callable[[], float]:
    """A ``shell_startup`` for :func:`time_command` that measures at most once, reusing the figure in ``cache``
    (``SECONDS MEASURED_AT``) while it is younger than ``max_age`` and writing a fresh one otherwise. A cache
    that cannot be read or written is measured around, never an error."""
    value: list[float] = []

    def get() -> float:
        if not value:
            value.append(_cached(cwd, cache, max_age))
        return value[0]

    return get


def _cached(cwd: Path, cache: Path, max_age: float) -> float:
    try:
        seconds, at = (float(x) for x in cache.read_text("ascii").split())
        if 0.0 <= seconds < 1.0 and 0.0 <= time.time() - at < max_age:
            return seconds
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    seconds = measure_shell_startup(cwd)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{seconds!r} {time.time()!r}\n", "ascii")
        os.replace(tmp, cache)
    except OSError:
        pass
    return seconds


def timing_fields(m: Measurement) -> dict[str, Any]:
    """What a trial event records about how it was timed."""
    return {"timing": m.timing, "startup": m.startup} if m.timing == SHELL else {"timing": m.timing}


def timing_words(m: Measurement) -> str:
    """How ``m`` was taken, in words."""
    return f"shell, start-up subtracted ({1000 * m.startup:.2f} ms)" if m.timing == SHELL else "direct exec"


def describe_timing(events: Iterable[Mapping[str, Any]], metric: str) -> dict[str, Any] | None:
    """How the timed trials of ``metric`` among ``events`` were taken, for ``analyze`` (None: no timed trial):
    counts per method (``unknown``: recorded before trials said so, through the shell, nothing subtracted), the
    mean start-up subtracted, and one line of ``text``."""
    counts = {DIRECT: 0, SHELL: 0, "unknown": 0}
    startups: list[float] = []
    for ev in events:
        if ev.get("type") != "trial" or ev.get("metric") != metric:
            continue
        if ev.get("source") not in ("run", "post-commit") or ev.get("exit_code") is None:
            continue  # recorded by hand, or the time from assignment to commit: nothing was timed
        timing = ev.get("timing")
        if timing == SHELL:
            counts[SHELL] += 1
            startup = ev.get("startup")
            if isinstance(startup, (int, float)) and not isinstance(startup, bool) and 0.0 <= startup < 1.0:
                startups.append(float(startup))
        elif timing == DIRECT:
            counts[DIRECT] += 1
        else:
            counts["unknown"] += 1
    if not any(counts.values()):
        return None
    startup_ms = 1000 * math.fsum(startups) / len(startups) if startups else None
    parts = []
    if counts[DIRECT]:
        parts.append(f"direct exec ({counts[DIRECT]})")
    if counts[SHELL]:
        sub = f"{startup_ms:.2f} ms" if startup_ms is not None else "?"
        parts.append(f"shell, start-up subtracted ({sub}) ({counts[SHELL]})")
    if counts["unknown"]:
        parts.append(f"shell, start-up included (older trials) ({counts['unknown']})")
    return {"trials": counts, "shell_startup_ms": startup_ms, "text": "; ".join(parts)}
