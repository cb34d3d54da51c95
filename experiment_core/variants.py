"""Control and treatment content of an experiment's files: backups as git blobs, and the variant bytes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from experiment_core.gitio import Git

BACKUP_REFS = "refs/experiments/backups"


def backup_ref(exp_id: str, index: int) -> str:
    return f"{BACKUP_REFS}/{exp_id}/{index}"


def backup_targets(git: Git, exp_id: str, targets: list[str]) -> dict[str, str]:
    """Store each target's current content as a blob, kept alive by a ref; return target -> blob id."""
    backups: dict[str, str] = {}
    for index, target in enumerate(targets):
        blob = git.hash_object((git.root / target).read_bytes())
        git.update_ref(backup_ref(exp_id, index), blob, message=f"experiment-hook: backup of {target}")
        backups[target] = blob
    return backups


def control_content(git: Git, backups: Mapping[str, str], target: str) -> bytes:
    """The control (pre-experiment) content of ``target``, from its backup blob."""
    return git.cat_blob(backups[target])


def treatment_content(root: Path, treatment: str) -> bytes:
    return (root / treatment).read_bytes()
