"""Local state of this worktree: ``$(git rev-parse --git-path experiment-hook)/``. Never shared, never pushed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git
from experiment_core.hookenv import STATE_DIR

APPLY_JOURNAL = "apply-journal.json"  # a promote/rollback being applied (apply/lifecycle), finished by any command


def state_dir(git: Git) -> Path:
    path = git.git_path(STATE_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return default


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
