"""The ledger: events as JSON lines in git notes (``refs/notes/experiments``).

One canonical JSON object per line (sorted keys, compact), so the same event is the same bytes in every clone
and ``git notes merge -s cat_sort_uniq`` is an exact union. Every event has ``v``, ``id``, ``type``, ``exp``,
``ts`` and the fields of its type. Readers skip and count what they cannot parse or validate: nothing a remote
sends crashes analysis. Writers serialize on a lock in the git common dir, because ``git notes append`` alone
updates the notes ref without checking its old value and concurrent appends lose records.

Reading costs two git processes whatever the ledger's size: ``git notes list`` and one ``cat-file --batch``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiment_core.errors import UserError
from experiment_core.gitio import Git
from experiment_core.spec import ID_RE, METRIC_NAME_RE, format_ts, parse_ts, utc_now

NOTES_REF = "refs/notes/experiments"
SCHEMA_VERSION = 1
MAX_LINE = 64 * 1024
ARMS = ("control", "treatment")
ACTIONS = ("promote", "rollback", "expire", "hold", "continue")

Event = dict[str, Any]


@dataclass(frozen=True)
class LedgerRead:
    events: list[Event]
    skipped: int
    notes_commit: str | None


# ---- building and encoding ------------------------------------------------------------------------------
def make_event(type_: str, exp: str, **fields: Any) -> Event:
    event: Event = {"v": SCHEMA_VERSION, "id": uuid.uuid4().hex, "type": type_, "exp": exp, "ts": format_ts(utc_now())}
    event.update(fields)
    return event


def encode(event: Mapping[str, Any]) -> str:
    """The canonical line for an event (raises ValueError on NaN/inf: they never enter the ledger)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ---- validation -----------------------------------------------------------------------------------------
def _is_str(v: Any, max_len: int = 200) -> bool:
    return isinstance(v, str) and 0 < len(v) <= max_len


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt(check: Any) -> Any:
    return lambda v: v is None or check(v)


def _is_sha(v: Any) -> bool:
    return isinstance(v, str) and 4 <= len(v) <= 64 and all(c in "0123456789abcdef" for c in v)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(_is_str(k, 4096) and isinstance(x, str) for k, x in v.items())


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "created": {"files": _str_map, "backups": _str_map},
    "assign": {"arm": lambda v: v in ARMS, "unit": _is_str},
    "trial": {
        "arm": lambda v: v in ARMS,
        "metric": lambda v: isinstance(v, str) and bool(METRIC_NAME_RE.match(v)),
        "value": _is_num,
        "unit": _is_str,
        "exit_code": _opt(lambda v: isinstance(v, int) and not isinstance(v, bool)),
        "commit": _opt(_is_sha),
    },
    "decision": {"action": lambda v: v in ACTIONS, "reasons": _str_list},
    "alert": {"kind": _is_str, "message": lambda v: _is_str(v, 2000)},
    "status": {"status": _is_str},
}
_OPTIONAL = {"trial": {"exit_code", "commit"}}
EVENT_TYPES = tuple(_TYPE_FIELDS)


def validate(obj: Any) -> Event | None:
    """The event if it is well-formed, else None. Unknown fields are kept; unknown types are rejected."""
    if not isinstance(obj, dict):
        return None
    if obj.get("v") != SCHEMA_VERSION or not _is_str(obj.get("id"), 64):
        return None
    fields = _TYPE_FIELDS.get(obj.get("type"))  # type: ignore[arg-type]
    if fields is None:
        return None
    exp = obj.get("exp")
    if not isinstance(exp, str) or not ID_RE.match(exp):
        return None
    if not isinstance(obj.get("ts"), str) or parse_ts(obj["ts"]) is None:
        return None
    optional = _OPTIONAL.get(obj["type"], set())
    for name, check in fields.items():
        if name not in obj:
            if name in optional:
                continue
            return None
        if not check(obj[name]):
            return None
    return obj


def _bad_constant(name: str) -> float:
    raise ValueError(name)  # NaN, Infinity: refuse the line


def decode(blob: bytes) -> tuple[list[Event], int]:
    """Parse one note: (valid events, number of skipped non-blank lines)."""
    events: list[Event] = []
    skipped = 0
    for raw in blob.split(b"\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            skipped += 1
            continue
        try:
            obj = json.loads(line.decode("utf-8"), parse_constant=_bad_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            skipped += 1
            continue
        event = validate(obj)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    return events, skipped


# ---- locking --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def ledger_lock(git: Git, timeout: float = 30.0) -> Iterator[None]:
    """Serialize ledger writers across processes and worktrees (flock: released by the kernel on any death)."""
    lock_dir = git.common_dir / "experiment-hook"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / "ledger.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(str(lock_dir / "ledger.lock"), "ledger busy for too long", "retry") from None
                time.sleep(0.005)
        _clear_stale_ref_lock(git)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def _clear_stale_ref_lock(git: Git, max_age: float = 10.0) -> None:
    """A writer killed inside ``git notes`` can leave the ref's ``.lock`` file behind. Holding our lock, an old one
    is stale: remove it so the ledger stays writable."""
    lock = git.common_dir / (NOTES_REF + ".lock")
    with contextlib.suppress(FileNotFoundError):
        if time.time() - lock.stat().st_mtime > max_age:
            lock.unlink()


# ---- read and append ------------------------------------------------------------------------------------
def ensure_config(git: Git) -> None:
    """Make amend and rebase carry our notes to the rewritten commits."""
    if NOTES_REF not in git.config_get_all("notes.rewriteRef"):
        git.run("config", "--add", "notes.rewriteRef", NOTES_REF)


def append(git: Git, events: Iterable[Event], commit: str | None = None) -> int:
    """Append events to the note on ``commit`` (default HEAD), under the ledger lock. Returns the count."""
    lines = []
    for event in events:
        if validate(dict(event)) is None:
            raise ValueError(f"refusing to write an invalid event: {event!r}")
        lines.append(encode(event))
    if not lines:
        return 0
    target = commit or git.head()
    if target is None:
        raise UserError(str(git.root), "the repository has no commit yet", "make a first commit, then retry")
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    with ledger_lock(git):
        git.run("notes", f"--ref={NOTES_REF}", "append", "-F", "-", target, input=payload)
    return len(lines)


def read(git: Git, ref: str = NOTES_REF) -> LedgerRead:
    """All valid events of ``ref``, deduplicated by id (rewritten commits carry copies), sorted by time."""
    head = git.ref(ref)
    if head is None:
        return LedgerRead([], 0, None)
    listing = git.out("notes", f"--ref={ref}", "list")
    blobs = [line.split()[0] for line in listing.splitlines() if line.strip()]
    seen: set[str] = set()
    events: list[Event] = []
    skipped = 0
    for blob in git.cat_batch(blobs):
        if blob is None:
            continue
        got, bad = decode(blob)
        skipped += bad
        for event in got:
            if event["id"] not in seen:
                seen.add(event["id"])
                events.append(event)
    events.sort(key=lambda e: e["ts"])
    return LedgerRead(events, skipped, head)


def for_experiment(events: Iterable[Event], exp_id: str) -> list[Event]:
    return [e for e in events if e["exp"] == exp_id]


def default_lock_path(git: Git) -> Path:
    return git.common_dir / "experiment-hook" / "ledger.lock"
