"""The one place that talks to git: plain ``git`` processes (fast to start, nothing heavy to import).

Every git process we start carries ``EXPERIMENT_HOOK_INTERNAL=1`` so that our own hooks, if a command we run
triggers them (a commit the lifecycle makes, a push from pre-push), return at once instead of re-entering.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiment_core.errors import UserError

INTERNAL_ENV = "EXPERIMENT_HOOK_INTERNAL"


class GitError(Exception):
    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.args_ = list(args)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {stderr.strip()}")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env[INTERNAL_ENV] = "1"
    # Hooks run with GIT_DIR/GIT_INDEX_FILE set by the calling git; keep them (they point at the right repo).
    if extra:
        env.update(extra)
    return env


_DISCOVERED: dict[Path, Git] = {}


def _git(args: Sequence[str], cwd: Path, input: bytes | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """``subprocess.run`` of git, except on an interrupt of ours (Ctrl-C, or SIGTERM raised as an exception):
    git is let finish, not killed — a killed git leaves its lock files (``index.lock``) behind, and the next git
    command, ours included, fails. A Ctrl-C from a terminal reaches git too, which then cleans up and stops."""
    with subprocess.Popen(["git", *args], cwd=cwd, stdin=subprocess.PIPE if input is not None else None,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(env)) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(input)
        except BaseException:
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _config_key(key: str) -> str:
    """A config key as git compares them: section and variable names case-insensitive, the subsection exact."""
    section, dot, rest = key.partition(".")
    sub, dot2, var = rest.rpartition(".")
    return f"{section.lower()}{dot}{sub}{dot2}{var.lower()}" if dot2 else f"{section.lower()}{dot}{rest.lower()}"


@dataclass
class Git:
    """A repository seen through git plumbing. ``root`` is the top of the work tree."""

    root: Path
    _cache: dict[str, str] = field(default_factory=dict, repr=False)
    _config_cache: dict[str, list[str]] | None = field(default=None, repr=False)

    @classmethod
    def for_hook(cls, cwd: Path) -> Git:
        """The repository a hook runs in: git starts hooks at the top of the work tree, where a ``.git``
        directory is the common dir and holds the state dir (no ``rev-parse`` process); anywhere else (a linked
        worktree's ``.git`` file, a subdirectory), :meth:`discover`."""
        from experiment_core.hookenv import STATE_DIR

        dot_git = cwd / ".git"
        if not dot_git.is_dir():
            return cls.discover(cwd)
        git = cls(cwd)
        git._cache["--git-common-dir\0"] = str(dot_git)
        git._cache["--git-path\0" + STATE_DIR] = str(dot_git / STATE_DIR)
        return git

    @classmethod
    def discover(cls, cwd: Path | None = None) -> Git:
        """The repository around ``cwd``, found once per process and directory: one ``git rev-parse`` gives the
        work tree, the common dir and this worktree's state dir (every command asks for them)."""
        from experiment_core.hookenv import STATE_DIR

        cwd = cwd or Path.cwd()
        if cwd in _DISCOVERED:
            return _DISCOVERED[cwd]
        args = ["rev-parse", "--show-toplevel", "--git-common-dir", "--git-path", STATE_DIR]
        proc = _git(args, cwd)
        lines = proc.stdout.decode("utf-8", "replace").splitlines()
        if proc.returncode != 0 or len(lines) != 3 or not lines[0].strip():
            raise UserError(str(cwd), "not inside a git work tree", "run this from a git repository (git init)")
        git = cls(Path(lines[0].strip()))
        git._cache["--git-common-dir\0"] = os.path.normpath(cwd / lines[1])  # relative to cwd, or absolute
        git._cache["--git-path\0" + STATE_DIR] = os.path.normpath(cwd / lines[2])
        _DISCOVERED[cwd] = git
        return git

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> bytes:
        if args and args[0] == "config" and args[1:2] != ("-z",):
            self._config_cache = None  # a write (or a read of our own): the snapshot is read again when needed
        proc = _git(args, self.root, input, env)
        if check and proc.returncode != 0:
            raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc.stdout

    def out(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        return self.run(*args, check=check, env=env).decode("utf-8", "replace").strip()

    def call(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """A git process whose exit status the caller reads (no exception)."""
        return _git(args, self.root)

    def ok(self, *args: str) -> bool:
        return _git(args, self.root).returncode == 0

    # ---- paths -------------------------------------------------------------------------------------
    def _rev_parse_path(self, flag: str, *extra: str) -> Path:
        key = flag + "\0" + "\0".join(extra)
        if key not in self._cache:
            self._cache[key] = self.out("rev-parse", flag, *extra)
        p = Path(self._cache[key])
        return p if p.is_absolute() else (self.root / p)

    @property
    def common_dir(self) -> Path:
        """The git dir shared by all worktrees (the ledger lock lives here)."""
        return self._rev_parse_path("--git-common-dir")

    def git_path(self, name: str) -> Path:
        """A path in this worktree's private git dir (local state lives here)."""
        return self._rev_parse_path("--git-path", name)

    # ---- objects and refs --------------------------------------------------------------------------
    def head(self) -> str | None:
        sha = self.out("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
        return sha or None

    def ref(self, name: str) -> str | None:
        sha = self.out("rev-parse", "-q", "--verify", name, check=False)
        return sha or None

    def hash_object(self, data: bytes, write: bool = True) -> str:
        args = ["hash-object", "--stdin"] + (["-w"] if write else [])
        return self.run(*args, input=data).decode().strip()

    def cat_blob(self, sha: str) -> bytes:
        return self.run("cat-file", "blob", sha)

    def cat_batch(self, shas: Iterable[str]) -> list[bytes | None]:
        """Read many objects with one ``git cat-file --batch`` process."""
        ids = list(shas)
        if not ids:
            return []
        raw = self.run("cat-file", "--batch", input=("\n".join(ids) + "\n").encode())
        out: list[bytes | None] = []
        pos = 0
        for _ in ids:
            nl = raw.index(b"\n", pos)
            header = raw[pos:nl].split()
            pos = nl + 1
            if len(header) == 2 and header[1] == b"missing":
                out.append(None)
                continue
            size = int(header[2])
            out.append(raw[pos : pos + size])
            pos += size + 1
        return out

    def update_ref(self, ref: str, new: str, old: str | None = None, message: str = "experiment-hook") -> None:
        args = ["update-ref", "-m", message, ref, new]
        if old is not None:
            args.append(old)
        self.run(*args)

    def config_get_all(self, key: str) -> list[str]:
        """Every value of ``key``, from one ``git config --list`` read per process (a write through :meth:`run`
        reads it again)."""
        return list(self._config().get(_config_key(key), ()))

    def config_get(self, key: str) -> str | None:
        values = self.config_get_all(key)
        return values[-1] if values else None

    def remotes(self) -> list[str]:
        """The configured remotes' names, as ``git remote`` lists them (from the same config read)."""
        keys = (key for key in self._config() if key.startswith("remote.") and key.count(".") >= 2)
        return sorted({key[7 : key.rindex(".")] for key in keys})

    def _config(self) -> dict[str, list[str]]:
        if self._config_cache is None:
            raw = self.run("config", "-z", "--list", check=False).decode("utf-8", "replace")
            found: dict[str, list[str]] = {}
            for entry in raw.split("\0"):
                if entry:
                    key, _, value = entry.partition("\n")
                    found.setdefault(_config_key(key), []).append(value)
            self._config_cache = found
        return self._config_cache

    def in_progress_operation(self) -> str | None:
        """The name of a rebase/merge/cherry-pick/revert/bisect in progress, if any."""
        from experiment_core.hookenv import IN_PROGRESS

        for name, paths in IN_PROGRESS.items():
            for p in paths:
                if self.git_path(p).exists():
                    return name
        return None

    def prime(self, *git_paths: str) -> str | None:
        """One ``git rev-parse`` that fills the path cache (common dir, and ``--git-path`` for each name) and
        returns HEAD (None on an unborn branch). Hooks call it first so later lookups spawn no process."""
        args = ["rev-parse", "--git-common-dir"]
        for name in git_paths:
            args += ["--git-path", name]
        proc = _git([*args, "HEAD"], self.root)
        lines = proc.stdout.decode("utf-8", "replace").splitlines()
        if len(lines) < 1 + len(git_paths):
            return None
        self._cache["--git-common-dir\0"] = lines[0]
        for name, line in zip(git_paths, lines[1:], strict=False):
            self._cache["--git-path\0" + name] = line
        head = lines[1 + len(git_paths)].strip() if len(lines) > 1 + len(git_paths) else ""
        return head if proc.returncode == 0 and len(head) >= 40 else None
