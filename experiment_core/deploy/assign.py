"""Randomization and the local assignment state of this worktree.

An :class:`Assignment` is one randomization unit of one experiment: which arm was drawn, when, and the content
id of what the tool wrote into each target (so a later hook can tell our bytes from a user's edit). The state of
every experiment lives in one JSON file in the worktree's private state dir; it is never shared nor pushed.

Randomness is cryptographic (``secrets.SystemRandom``) unless ``EXPERIMENT_HOOK_SEED`` is set (tests, demos).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git
from experiment_core.hookenv import ACTIVE_FILE, UNITS_DIR
from experiment_core.state import read_json, state_dir, write_json

ASSIGNMENTS_FILE = "assignments.json"
UNIT_FILES_KEPT = 24 * 3600.0  # seconds a finished unit's files stay (a detached job may still read them)
SEED_ENV = "EXPERIMENT_HOOK_SEED"
CONTROL = "control"
TREATMENT = "treatment"


@dataclass(frozen=True)
class Assignment:
    """The current unit of one experiment in this worktree.

    ``arm`` is None when the experiment is paused here (a user's edit holds a target, or ``restore`` ran): no
    trial is recorded until the next branch checkout draws a new unit. ``written`` maps each target to the
    content id of the bytes the tool left there (for control: the committed content)."""

    exp: str
    unit: str | None
    arm: str | None
    assigned_at: str
    written: Mapping[str, str] = field(default_factory=dict)
    branch: str = ""
    foreground: bool = False  # copied from the experiment: post-commit reads it without the registry

    @property
    def active(self) -> bool:
        return self.arm is not None and self.unit is not None

    def paused(self) -> Assignment:
        return replace(self, arm=None, unit=None)


# ---- randomization (pure given the generator) ------------------------------------------------------------
def make_rng(seed: str | None = None) -> random.Random:
    """A seeded generator when ``seed`` (or ``EXPERIMENT_HOOK_SEED``) is given, else the OS's randomness."""
    seed = seed if seed is not None else os.environ.get(SEED_ENV)
    if seed:
        return random.Random(seed)
    return secrets.SystemRandom()


def draw_arm(split: float, rng: random.Random) -> str:
    """``treatment`` with probability ``split`` (the experiment's treatment share), else ``control``."""
    return TREATMENT if rng.random() < split else CONTROL


def balanced_order(n: int, rng: random.Random) -> list[str]:
    """``n`` arms in pairs, each pair one control and one treatment in random order (an odd ``n`` ends with a
    single random arm): the arms stay balanced and interleaved, never all of A then all of B."""
    order: list[str] = []
    for _ in range(n // 2):
        pair = [CONTROL, TREATMENT]
        rng.shuffle(pair)
        order.extend(pair)
    if n % 2:
        order.append(draw_arm(0.5, rng))
    return order


def new_unit_id() -> str:
    return uuid.uuid4().hex


# ---- local state ----------------------------------------------------------------------------------------
def assignments_path(git: Git) -> Path:
    return state_dir(git) / ASSIGNMENTS_FILE


def _from_json(exp: str, data: Any) -> Assignment | None:
    if not isinstance(data, dict):
        return None
    written = data.get("written")
    if not isinstance(written, dict):
        written = {}
    arm = data.get("arm")
    unit = data.get("unit")
    return Assignment(
        exp=exp,
        unit=unit if isinstance(unit, str) else None,
        arm=arm if arm in (CONTROL, TREATMENT) else None,
        assigned_at=str(data.get("assigned_at", "")),
        written={str(k): str(v) for k, v in written.items()},
        branch=str(data.get("branch", "")),
        foreground=data.get("foreground") is True,
    )


def load_assignments(git: Git) -> dict[str, Assignment]:
    """Every experiment's current assignment in this worktree (a damaged file reads as none)."""
    raw = read_json(assignments_path(git), {})
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Assignment] = {}
    for exp, data in raw.items():
        got = _from_json(str(exp), data)
        if got is not None:
            out[str(exp)] = got
    return out


def active_lines(assignments: Mapping[str, Assignment]) -> str:
    """The ``active`` file: what post-commit needs, parseable without json."""
    return "".join(f"{a.exp}\t{a.unit}\t{int(a.foreground)}\n" for a in assignments.values() if a.active)


def _to_json(a: Assignment) -> dict[str, Any]:
    item = asdict(a)
    item.pop("exp")
    item["written"] = dict(a.written)
    return item


def save_assignments(git: Git, assignments: Mapping[str, Assignment]) -> None:
    """Write the state, the fast-path ``active`` file and each active unit's own file; old unit files go."""
    directory = state_dir(git)
    units = directory / UNITS_DIR
    units.mkdir(exist_ok=True)
    live = {a.unit for a in assignments.values() if a.active}
    now = time.time()
    for path in units.iterdir():
        if path.name.split(".")[0] not in live:
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > UNIT_FILES_KEPT:
                    path.unlink()
    for a in assignments.values():
        unit_file = units / f"{a.unit}.json"
        if a.active and read_json(unit_file, None) != {a.exp: _to_json(a)}:  # new, or its targets moved on
            write_json(unit_file, {a.exp: _to_json(a)})
    write_json(assignments_path(git), {exp: _to_json(a) for exp, a in sorted(assignments.items())})
    atomic_write_text(directory / ACTIVE_FILE, active_lines(assignments))


def load_unit(git: Git, unit: str) -> Assignment | None:
    """The assignment of ``unit`` as it was drawn (also after the next checkout replaced it)."""
    raw = read_json(state_dir(git) / UNITS_DIR / f"{unit}.json", {})
    if not isinstance(raw, dict) or len(raw) != 1:
        return None
    exp, data = next(iter(raw.items()))
    return _from_json(str(exp), data)


def current_assignment(git: Git, exp_id: str) -> Assignment | None:
    """The active unit of ``exp_id`` in this worktree, or None (never assigned here, or paused)."""
    got = load_assignments(git).get(exp_id)
    return got if got is not None and got.active else None
