"""Writing and removing the git hooks for repositories without pre-commit.

Each hook is a small ``sh`` script that runs a hook that was already there (moved aside to
``<name>.pre-experiment-hook``, with its exit status kept), then ours through the absolute interpreter
``install`` ran with. The re-entry guard is checked in the script, so the tool's own git processes do not even
start Python. ``core.hooksPath`` is honoured (``git rev-parse --git-path hooks`` resolves it).
"""

from __future__ import annotations

import shlex
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from experiment_core.errors import UserError
from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git

MARKER = "# experiment-hook: managed hook"
CHAINED_SUFFIX = ".pre-experiment-hook"
HOOKS = {"post-checkout": "post_checkout.py", "post-commit": "post_commit.py", "pre-push": "pre_push.py",
         "post-merge": "post_merge.py", "post-rewrite": "post_rewrite.py"}


@dataclass(frozen=True)
class HookChange:
    name: str
    path: Path
    action: str  # installed, updated, chained, removed, restored, left (not ours), absent


def hooks_dir(git: Git) -> Path:
    return Path(git.out("rev-parse", "--path-format=absolute", "--git-path", "hooks"))


def package_parent() -> Path:
    import experiment_core

    return Path(experiment_core.__file__).resolve().parent.parent


def entry_dir() -> Path:
    """Where the hook entry files are: the installed ``experiment_core.hooks`` package, or ``hooks/`` of the
    source checkout this package runs from (there ``experiment_core.hooks`` exists only once installed)."""
    import importlib.util

    spec = importlib.util.find_spec("experiment_core.hooks")
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parent
    return package_parent() / "hooks"


def needs_pythonpath(parent: Path) -> bool:
    """True when ``experiment_core`` is not installed in the interpreter's site-packages (a source checkout):
    the hook must then put its parent directory on PYTHONPATH."""
    sites = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    return parent not in sites


def hook_script(name: str, python: str, entry: Path, pythonpath: str | None) -> str:
    """The text of one managed hook: runs ``entry`` (a file of ``hooks/``) with ``python``."""
    env = f'PYTHONPATH={shlex.quote(pythonpath)}"${{PYTHONPATH:+:$PYTHONPATH}}" ' if pythonpath else ""
    ours = f"{env}{shlex.quote(python)} {shlex.quote(str(entry))} \"$@\""
    lines = [
        "#!/bin/sh",
        MARKER,
        f"# Written by `experiment-hook install`; `experiment-hook uninstall` removes it and puts back any {name}",
        f"# hook that was here before (kept as {name}{CHAINED_SUFFIX} and run first).",
        f'chained="$0{CHAINED_SUFFIX}"',
    ]
    if name == "pre-push":  # git hands the pushed refs on stdin: both hooks must see them
        lines += [
            'refs=$(cat)',
            'if [ -x "$chained" ]; then printf "%s\\n" "$refs" | "$chained" "$@" || exit $?; fi',
            '[ -n "$EXPERIMENT_HOOK_INTERNAL" ] && exit 0',
            f'printf "%s\\n" "$refs" | {ours}',
        ]
    else:  # post-*: the chained hook's status is git's; ours never fails git
        lines += [
            "status=0",
            'if [ -x "$chained" ]; then "$chained" "$@"; status=$?; fi',
            f'[ -z "$EXPERIMENT_HOOK_INTERNAL" ] && {{ {ours} || true; }}',
            "exit $status",
        ]
    return "\n".join(lines) + "\n"


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text("utf-8", "replace")[:500]
    except OSError:
        return False


def install(git: Git, python: str | None = None) -> list[HookChange]:
    python = python or sys.executable
    parent = package_parent()
    pythonpath = str(parent) if needs_pythonpath(parent) else None
    directory = hooks_dir(git)
    directory.mkdir(parents=True, exist_ok=True)
    changes = []
    for name in HOOKS:
        path = directory / name
        chained = directory / (name + CHAINED_SUFFIX)
        action = "installed"
        if path.exists() or path.is_symlink():
            if is_ours(path):
                action = "updated"
            elif chained.exists():
                raise UserError(str(path), f"not ours, and {chained.name} exists too", "move one away, then retry")
            else:
                path.rename(chained)
                action = "chained"
        script = hook_script(name, python, entry_dir() / HOOKS[name], pythonpath)
        atomic_write(path, script.encode(), mode=0o755)
        changes.append(HookChange(name, path, action))
    return changes


def uninstall(git: Git) -> list[HookChange]:
    directory = hooks_dir(git)
    changes = []
    for name in HOOKS:
        path = directory / name
        chained = directory / (name + CHAINED_SUFFIX)
        if not path.exists():
            changes.append(HookChange(name, path, "absent"))
        elif not is_ours(path):
            changes.append(HookChange(name, path, "left (not ours)"))
        elif chained.exists():
            chained.replace(path)
            changes.append(HookChange(name, path, "restored"))
        else:
            path.unlink()
            changes.append(HookChange(name, path, "removed"))
    return changes
