"""The local index of the ledger: one SQLite file per clone, derived from the notes, rebuilt whenever in doubt.

The notes (every ledger ref, :mod:`experiment_core.store.refs`) stay the one source of truth and the only thing
that travels. This file, ``$GIT_COMMON_DIR/experiment-hook/ledger-index.sqlite3``, holds what reads need, so that
a command costs what it reads, not what the ledger holds:

* ``events``: every valid event's id once (dedup by id: amend and rebase copy notes), with the number of note
  lines that carry it and its segment;
* ``segments``: the events' lines as the notes hold them, one blob per (experiment, type) per chunk read
  (indexed on both), so one experiment's events are read without the others';
* ``units``: per (experiment, metric, arm, unit) the count and the *exact* sum of the successful values, trial and
  error counts, the unit's first successful trial (time, id: the unit order) and its ``machine``, the time span;
* ``pairs``: per (experiment, metric, pair, arm) count, exact sum and first trial;
* ``cells``: per (experiment, metric, arm, block) the exact sums of its units' means (:mod:`evidence.sums`: n,
  Σx, Σx², and the same of the logs of the positive ones, the count of the others) and its trial and error counts,
  the block being the unit's machine — what the tests on means and the decisions read, O(blocks) rows whatever
  the number of units; ``pair_sums``: per (experiment, metric) the sums of the complete pairs' log ratios. Both
  move with every unit that changes (its old mean out, its new one in), exactly;
* ``orders``: a cache of each metric's order statistics (min, median, max, outliers, Mann-Whitney) per analysis
  setting, written by the readers that computed them while the index stayed at the notes commits they read, and
  dropped for an experiment whenever its units change;
* ``arm_units``: the distinct units of each arm (assign or trial), for the sample-ratio test;
* ``experiments``: the number of events of each experiment named in the ledger;
* ``meta``: the notes commit of each ledger ref the index reflects (``tips``, and their :func:`refs.token`),
  this clone's common dir, the skipped-line count.

Sums are exact integers in units of 2^-1074 (every finite double is a whole multiple of it), stored as blobs: a
unit's mean is then bit for bit ``math.fsum(values) / n`` whatever the order in which values came and went, so
the index equals a full re-read of the notes exactly (tests check it) and removals need no re-scan.

Bringing it forward: each ledger ref whose commit changed is diffed against the commit indexed for it (``git
diff-tree``; a new ref against the empty tree), and only the notes that changed are read (``cat-file --batch``);
a note's lines go out by count and in by count, so a note that grew by one line adds one event. An event whose
last copy goes makes its experiment's aggregates be recomputed from its stored events. One writer at a time (an
flock beside the file), WAL so readers never wait, a busy timeout, and every update is one transaction: a writer
killed half-way leaves the previous state.

Never trusted when it looks wrong: a file that is not SQLite, has another schema (``application_id``,
``user_version``), names another repository, or whose notes commits git does not know (or whose ref is gone) is
rebuilt
from the notes, silently. A rebuild writes a fresh file beside it and renames it into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from experiment_core.clock import epoch_seconds
from experiment_core.evidence.sums import SCALE, Cell, MetricSums, PairSums, Sums, exact
from experiment_core.gitio import Git, GitError
from experiment_core.hookenv import STATE_DIR
from experiment_core.store import ledger, refs

INDEX_NAME = "ledger-index.sqlite3"
APPLICATION_ID = 0x45484C49  # "EHLI"
USER_VERSION = 3  # bump when validation, the aggregates or the layout change: old files are rebuilt
BUSY_MS = 30_000

Progress = Callable[[int, int], None]  # (notes read, notes in total)
Tips = dict[str, str]  # {ledger ref: notes commit}
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events(id TEXT NOT NULL, seg INTEGER NOT NULL, copies INTEGER NOT NULL);
CREATE TABLE segments(seg INTEGER PRIMARY KEY, exp TEXT NOT NULL, type TEXT NOT NULL, lines BLOB NOT NULL);
CREATE TABLE units(exp TEXT, metric TEXT, arm TEXT, unit TEXT, n INTEGER, total BLOB, trials INTEGER,
                   errors INTEGER, first_ts TEXT, first_id TEXT, machine TEXT, min_t REAL, max_t REAL,
                   PRIMARY KEY(exp, metric, arm, unit)) WITHOUT ROWID;
CREATE TABLE pairs(exp TEXT, metric TEXT, pair TEXT, arm TEXT, n INTEGER, total BLOB, first_ts TEXT,
                   first_id TEXT, PRIMARY KEY(exp, metric, pair, arm)) WITHOUT ROWID;
CREATE TABLE arm_units(exp TEXT, arm TEXT, unit TEXT, PRIMARY KEY(exp, arm, unit)) WITHOUT ROWID;
CREATE TABLE cells(exp TEXT, metric TEXT, arm TEXT, block TEXT, n INTEGER, s1 BLOB, s2 BLOB, log_n INTEGER,
                   log_s1 BLOB, log_s2 BLOB, nonpositive INTEGER, trials INTEGER, errors INTEGER,
                   PRIMARY KEY(exp, metric, arm, block)) WITHOUT ROWID;
CREATE TABLE pair_sums(exp TEXT, metric TEXT, n INTEGER, s1 BLOB, s2 BLOB, nonpositive INTEGER,
                       PRIMARY KEY(exp, metric)) WITHOUT ROWID;
CREATE TABLE orders(exp TEXT, metric TEXT, setting TEXT, doc TEXT, PRIMARY KEY(exp, metric, setting)) WITHOUT ROWID;
CREATE TABLE experiments(exp TEXT PRIMARY KEY, events INTEGER NOT NULL) WITHOUT ROWID;
"""
_INDEXES = """
CREATE UNIQUE INDEX events_id ON events(id);
CREATE INDEX segments_exp ON segments(exp, type);
CREATE INDEX units_order ON units(exp, metric, arm, first_ts, first_id);
"""


# ---- exact sums (:mod:`evidence.sums`), as blobs ---------------------------------------------------------------
def to_blob(total: int) -> bytes:
    return total.to_bytes(total.bit_length() // 8 + 1, "big", signed=True)


def from_blob(blob: bytes) -> int:
    return int.from_bytes(blob, "big", signed=True)


def mean(total: int, n: int) -> float:
    """``math.fsum(values) / n`` for the values whose exact sum is ``total`` (int / int rounds correctly)."""
    return (total / (1 << SCALE)) / n


# ---- aggregates of a batch of events (a rebuild, or what one update adds) -------------------------------------
@dataclass(slots=True)
class _Unit:
    n: int = 0
    total: int = 0
    trials: int = 0
    errors: int = 0
    first: tuple[Any, Any] | None = None  # (ts, id) of the first successful trial
    machine: Any = ""
    min_t: float | None = None
    max_t: float | None = None

    def merge(self, other: _Unit) -> None:
        self.n += other.n
        self.total += other.total
        self.trials += other.trials
        self.errors += other.errors
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first, self.machine = other.first, other.machine
        for t in (other.min_t, other.max_t):
            if t is not None:
                self.min_t = t if self.min_t is None else min(self.min_t, t)
                self.max_t = t if self.max_t is None else max(self.max_t, t)


@dataclass(slots=True)
class _Pair:
    n: int = 0
    total: int = 0
    first: tuple[Any, Any] = ("\U0010ffff", "")

    def merge(self, other: _Pair) -> None:
        self.n += other.n
        self.total += other.total
        self.first = min(self.first, other.first)


@dataclass
class _Aggregates:
    """Aggregates keyed by (exp, metric, arm, unit) and (exp, metric, pair, arm): text, or, on a cold build's bulk
    path, the ASCII bytes of canonical lines (same order; decoded once at the end, :meth:`decoded`)."""

    units: dict[tuple[Any, ...], _Unit] = field(default_factory=dict)
    pairs: dict[tuple[Any, ...], _Pair] = field(default_factory=dict)
    arm_units: set[tuple[Any, ...]] = field(default_factory=set)
    events: dict[Any, int] = field(default_factory=dict)  # per experiment
    _moment: tuple[Any, float | None] = ("", None)  # the last time parsed (a note's events share theirs)

    def moment(self, ts: str) -> float | None:
        """Epoch seconds of a valid time."""
        if self._moment[0] != ts:
            self._moment = (ts, epoch_seconds(ts))
        return self._moment[1]

    def add(self, ev: ledger.Event) -> None:
        """One valid event (a dict, as :func:`ledger.validate` passed it)."""
        type_ = ev["type"]
        events = self.events
        events[ev["exp"]] = events.get(ev["exp"], 0) + 1
        if type_ == "trial":
            code = ev.get("exit_code")
            machine = ev.get("machine")
            pair = ev.get("pair")
            self.trial(ev["exp"], ev["metric"], ev["arm"], ev["unit"], ev["ts"], ev["id"],
                       exact(ev["value"]) if code is None or code == 0 else None,
                       machine if type(machine) is str else "", pair if pair and type(pair) is str else "",
                       self.moment(ev["ts"]))  # fmt: skip
        elif type_ == "assign":
            self.arm_units.add((ev["exp"], ev["arm"], ev["unit"]))

    def trial(self, exp: Any, metric: Any, arm: Any, unit: Any, ts: Any, id_: Any, whole: int | None,
              machine: Any, pair: Any, t: float | None) -> None:  # fmt: skip
        """One valid trial: ``whole`` its value (:func:`exact`), None when it failed (an exit code but 0);
        ``pair`` empty when it has none; ``t`` its time in epoch seconds. (Its experiment's event count is the
        caller's.)"""
        key = (exp, metric, arm, unit)  # its (exp, arm, unit) joins arm_units in :func:`_store`
        agg = self.units.get(key)
        if agg is None:
            agg = self.units[key] = _Unit()
        agg.trials += 1
        if t is not None:
            if agg.min_t is None or t < agg.min_t:
                agg.min_t = t
            if agg.max_t is None or t > agg.max_t:
                agg.max_t = t
        if whole is None:
            agg.errors += 1
            return
        agg.n += 1
        agg.total += whole
        first = (ts, id_)
        if agg.first is None or first < agg.first:
            agg.first = first
            agg.machine = machine
        if pair:
            _add_to_pair(self.pairs, (exp, metric, pair, arm), whole, first)

    def merge_decoded(self, raw: _Aggregates) -> None:
        """Add ``raw``, keyed by bytes, to these text-keyed aggregates."""
        for key, u in raw.units.items():
            if u.first is not None:
                u.first = (u.first[0].decode(), u.first[1].decode())
                u.machine = u.machine.decode()
            self.units.setdefault(tuple(k.decode() for k in key), _Unit()).merge(u)
        for key, p in raw.pairs.items():
            p.first = (p.first[0].decode(), p.first[1].decode())
            self.pairs.setdefault(tuple(k.decode() for k in key), _Pair()).merge(p)
        self.arm_units.update(tuple(k.decode() for k in key) for key in raw.arm_units)
        for exp, n in raw.events.items():
            self.events[exp.decode()] = self.events.get(exp.decode(), 0) + n


def _add_to_pair(pairs: dict[tuple[Any, ...], _Pair], key: tuple[Any, ...], whole: int, first: tuple[Any, Any]) -> None:
    """One successful trial of pair ``key`` (exp, metric, pair, arm): its exact value, its (ts, id)."""
    p = pairs.get(key)
    if p is None:
        p = pairs[key] = _Pair(first=first)
    p.n += 1
    p.total += whole
    if first < p.first:
        p.first = first


def _unit_row(key: tuple[str, str, str, str], u: _Unit) -> tuple[Any, ...]:
    first = u.first or ("", "")
    return (*key, u.n, to_blob(u.total), u.trials, u.errors, first[0], first[1], u.machine, u.min_t, u.max_t)


# ---- the file -------------------------------------------------------------------------------------------------
def index_path(git: Git) -> Path:
    return git.common_dir / STATE_DIR / INDEX_NAME


def _repo_id(git: Git) -> str:
    return str(git.common_dir.resolve())


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(f"{path}{suffix}")


def _connect(path: Path, create: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode={'rwc' if create else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    # WAL with NORMAL: a commit no longer waits for the disk (no fsync); still never corrupt, at worst the last
    # updates are lost on a power cut — of derived data that the next read brings forward again
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def _trusted(conn: sqlite3.Connection, repo_id: str) -> dict[str, str] | None:
    """The index's meta if the file is ours (schema, repository), else None."""
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            return None
        if conn.execute("PRAGMA user_version").fetchone()[0] != USER_VERSION:
            return None
        meta = _meta(conn)
    except sqlite3.Error:
        return None
    if meta.get("repo") != repo_id or "commit" not in meta or not meta.get("skipped", "").lstrip("-").isdigit():
        return None
    return meta


@contextlib.contextmanager
def _writer_lock(path: Path) -> Iterator[None]:
    """One writer of the index at a time (flock: released by the kernel on any death)."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ---- building from scratch -------------------------------------------------------------------------------------
def _count_notes(git: Git, tips: Tips) -> int:
    try:
        return sum(git.run("ls-tree", "-r", "--object-only", commit).count(b"\n") for commit in tips.values())
    except GitError:
        return 0


def _rebuild(git: Git, path: Path, head: Tips, progress: Progress | None,
             conn: sqlite3.Connection | None = None) -> None:  # fmt: skip
    """Index the notes commits ``head`` from scratch (caller holds the writer lock). With ``conn`` (an open index of
    ours), in place, in one transaction: a reader keeps its snapshot, a killed writer leaves the old index.
    Without, in a fresh file beside ``path`` renamed into place at the end. Memory: one chunk of notes, the ids
    seen and the aggregates; the events go to disk."""
    if conn is not None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for type_, name in conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') "
                                            "AND name NOT LIKE 'sqlite_%'").fetchall():  # fmt: skip
                if type_ == "table":
                    conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            _fill(git, conn, head, progress)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a build killed half-way (we hold the lock)
        _remove(stale)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    new = sqlite3.connect(tmp, isolation_level=None, check_same_thread=False)  # the build writes on a thread
    try:
        new.execute("PRAGMA journal_mode=OFF")
        new.execute("PRAGMA synchronous=OFF")
        new.execute("BEGIN")
        _fill(git, new, head, progress)
        new.execute("COMMIT")
        new.execute("PRAGMA journal_mode=WAL")
    finally:
        new.close()
    _remove(path)
    os.replace(tmp, path)


def _fill(git: Git, conn: sqlite3.Connection, head: Tips, progress: Progress | None) -> None:
    """Create the tables and index every event of the notes commits ``head`` (inside the caller's transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    build = _Builder(conn)
    try:
        _read_chunks(git, head, progress, build.add_chunk)
    except BaseException:
        build.writer.close(check=False)  # no write after the caller's rollback; the first error is the one raised
        raise
    build.finish()
    _store(conn, build.agg)
    for statement in _INDEXES.split(";"):
        if statement.strip():
            conn.execute(statement)
    _set_meta(conn, _repo_id(git), head, build.skipped)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={USER_VERSION}")


CHUNK_BYTES = 1 << 20


def _read_chunks(git: Git, head: Tips, progress: Progress | None, add: Callable[[bytes], None]) -> None:
    """The notes of the commits ``head``, joined in chunks of about :data:`CHUNK_BYTES`, to ``add``."""
    if not head:
        return
    total = _count_notes(git, head) if progress else 0
    pending: list[bytes] = []
    pending_bytes = done = 0
    for blobs in ledger._iter_note_blob_lists(git, list(head.values())):
        for blob in blobs:
            pending.append(blob)
            pending_bytes += len(blob)
            if pending_bytes >= CHUNK_BYTES:
                add(b"\n".join(pending))
                done += len(pending)
                pending, pending_bytes = [], 0
                if progress:
                    progress(done, total)
    add(b"\n".join(pending))


_EXACT_FLOAT = 2.0**53  # every whole number below this is a float exactly: int or float, the same exact sum


def _text(s: str | bytes) -> str:
    return s.decode() if isinstance(s, bytes) else s


class _Builder:
    """A build from scratch: the events of a chunk of note lines go to the aggregates, their lines to one segment
    per (experiment, type) of the chunk, their ids to ``events``; a copy of an id seen before only counts. Memory:
    one chunk, the aggregates and the ids seen, by hash (half the memory of the strings; a hash seen before is
    checked against the id stored under its rowid, and true collisions are kept by id).

    Canonical trials (almost every line of a big ledger) are found by one ``finditer`` over the whole chunk and
    aggregated in one loop (:meth:`_scan`); the lines between them go line by line through :meth:`_others`:
    canonical assignments, and :func:`ledger._decode_line` for any other line (a padded trial too). The inserts
    run on a thread of their own (:class:`_Writer`): ``conn`` must allow it (``check_same_thread=False``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.agg = _Aggregates()
        self.skipped = 0
        self.seen: dict[int, int] = {}  # hash(the id's UTF-8) -> rowid of its first copy
        self.collided: dict[bytes, int] = {}
        self.extra: dict[int, int] = {}  # rowid -> copies beyond the first
        self.flushed = 0  # rowids up to this one are in the table, the others' ids in ``ids``
        self.ids: list[bytes | str] = []  # by rowid: the bulk path's as bytes, the others' as text
        self.runs: list[tuple[int, int | None]] = []  # (first rowid, its segment; None: one row of text)
        self.rows: list[tuple[int, str, int]] = []  # (rowid, id, segment) of the rows of text
        self.groups: dict[tuple[Any, Any], tuple[int, list[bytes]]] = {}  # this chunk's segments (text or bytes)
        self.segments = 0
        self.raw = _Aggregates()  # the bulk path's, keyed by bytes
        self.ts = b""  # the last canonical time seen
        self.t: float | None = None  # its moment
        self.writer = _Writer(conn)

    def add_chunk(self, chunk: bytes) -> None:
        """Note lines (``\\n``-separated, as the notes hold them: blank and padded lines allowed), in note order
        (the first copy of an id is the one kept, as a full read keeps it)."""
        self._scan(chunk)
        self.flush()

    def _scan(self, text: bytes) -> None:
        """Every canonical trial line of ``text``; the lines between them, in order, to :meth:`_others`. (One loop,
        the per-trial steps inlined: :meth:`_keep`, :meth:`_Aggregates.trial`.)"""
        seen, ids, runs, max_line, big, shift = self.seen, self.ids, self.runs, ledger.MAX_LINE, _EXACT_FLOAT, SCALE + 1
        pos, base, new_run, last_ts, t = 0, self.flushed + 1, True, self.ts, self.t
        c_exp = c_metric = c_arm = c_unit = b""  # never a canonical line's: the first trial sets them
        seg, u = 0, _Unit()
        lines: list[bytes] = []
        for m in ledger.canonical_trial_lines()(text):
            start, end = m.span()
            if start != pos and not text[pos:start].isspace():  # blank lines (between notes, appends) are none
                self._others(text[pos:start])
                last_ts, t, new_run = self.ts, self.t, True  # ``others`` may have seen a new time, kept rows
            pos = end + 1
            arm, code, exp, id_, machine, metric, pair, ts, unit, value = m.groups()
            number: Any = float(value)
            if not -big < number < big:  # also inf: a whole number this big is an int, exactly
                number = ledger.json_number(value)
            if number is None or end - start > max_line:
                self.skipped += 1
                continue
            if ts != last_ts:
                if not self._time(ts):
                    self.skipped += 1
                    continue
                last_ts, t = ts, self.t
            rowid = base + len(ids)
            first = seen.setdefault(hash(id_), rowid)
            if first != rowid and self._copy(id_, first, rowid):
                continue
            if exp != c_exp:
                seg, lines = self._group(exp, b"trial")
                new_run = True
            if new_run:  # rowids of one segment in a row: one insert (:meth:`flush`)
                runs.append((rowid, seg))
                new_run = False
            lines.append(text[start:end])
            ids.append(id_)
            if unit != c_unit or exp != c_exp or metric != c_metric or arm != c_arm:  # a note's trials share them
                c_exp, c_metric, c_arm, c_unit = exp, metric, arm, unit
                u = self.raw.units.get((exp, metric, arm, unit)) or self._unit((exp, metric, arm, unit))
            u.trials += 1
            if u.min_t is None or t < u.min_t:  # type: ignore[operator]
                u.min_t = t
            if u.max_t is None or t > u.max_t:  # type: ignore[operator]
                u.max_t = t
            if code is not None and code != b"0" and code != b"null" and int(code) != 0:
                u.errors += 1
                continue
            num, den = number.as_integer_ratio()
            whole = num << (shift - den.bit_length())  # :func:`exact`
            u.n += 1
            u.total += whole
            f = u.first
            if f is None or ts < f[0] or (ts == f[0] and id_ < f[1]):
                u.first, u.machine = (ts, id_), machine or b""
            if pair:
                _add_to_pair(self.raw.pairs, (exp, metric, pair, arm), whole, (ts, id_))
        if pos < len(text):
            self._others(text[pos:])

    def _unit(self, key: tuple[bytes, bytes, bytes, bytes]) -> _Unit:
        u = self.raw.units[key] = _Unit()
        return u

    def _others(self, text: bytes) -> None:
        """Lines between canonical trials: canonical assignments take the bulk path, any other line (stripped)
        :func:`ledger.validate`."""
        (_trial, assign), max_line = ledger.canonical_matchers(), ledger.MAX_LINE
        for line in ledger._split_lines(text):
            m = assign(line) if len(line) <= max_line else None
            if m is not None:
                self._assign(line, *m.groups())
                continue
            ev = ledger._decode_line(line)
            if ev is None:
                self.skipped += 1
            elif self._keep(ev["id"], ev["exp"], ev["type"], line):
                self.agg.add(ev)

    def _time(self, ts: bytes) -> bool:
        """Whether a canonical line's new time is valid (:func:`ledger.validate`'s check); its moment is kept."""
        moment = epoch_seconds(ts.decode())  # valid when it parses (:func:`ledger.ts_ok`)
        if moment is None:
            return False
        self.ts, self.t = ts, moment
        return True

    def _assign(self, line: bytes, arm: bytes, exp: bytes, id_: bytes, ts: bytes, unit: bytes) -> None:
        if ts != self.ts and not self._time(ts):
            self.skipped += 1
        elif self._keep(id_, exp, b"assign", line):
            self.raw.arm_units.add((exp, arm, unit))

    def _keep(self, key: str | bytes, exp: str | bytes, type_: str | bytes, line: bytes) -> bool:
        """Record an event's id (the bulk path's: plain ASCII bytes) and line; False (and one more copy counted)
        when the id was seen before."""
        rowid = self.flushed + len(self.ids) + 1
        utf8 = key if isinstance(key, bytes) else key.encode("utf-8", "surrogatepass")
        first = self.seen.setdefault(hash(utf8), rowid)
        if first != rowid and self._copy(utf8, first, rowid):
            return False
        seg, lines = self._group(exp, type_)
        lines.append(line)
        self.ids.append(key)
        if isinstance(key, bytes):
            if not self.runs or self.runs[-1][1] != seg:
                self.runs.append((rowid, seg))
        else:
            self.runs.append((rowid, None))
            self.rows.append((rowid, key, seg))
        return True

    def _copy(self, utf8: bytes, first: int, rowid: int) -> bool:
        """An id whose hash was seen (first copy at rowid ``first``): True, and one more copy counted, when it is
        the same id; False for a collision (the id is kept, by id)."""
        old = self.collided.get(utf8) or first
        if self._stored_id(old) == utf8:
            self.extra[old] = self.extra.get(old, 0) + 1
            return True
        self.collided[utf8] = rowid
        return False

    def _group(self, exp: str | bytes, type_: str | bytes) -> tuple[int, list[bytes]]:
        """This chunk's segment of (``exp``, ``type_``): (its number, its lines)."""
        group = self.groups.get((exp, type_))
        if group is None:
            self.segments += 1
            group = self.groups[(exp, type_)] = (self.segments, [])
        return group

    def _stored_id(self, rowid: int) -> bytes:
        if rowid > self.flushed:
            key = self.ids[rowid - self.flushed - 1]
        else:
            self.writer.wait()
            key = self.conn.execute("SELECT id FROM events WHERE rowid=?", (rowid,)).fetchone()[0]
        return key if isinstance(key, bytes) else str(key).encode("utf-8", "surrogatepass")

    def flush(self) -> None:
        """This chunk's segments and events to the writer (the bulk path's ids, plain ASCII, as one JSON array of
        [first rowid, segment, ids] runs)."""
        events = self.raw.events  # the bulk path counts its events here, a segment at a time
        for (exp, _type), (_seg, lines) in self.groups.items():
            if isinstance(exp, bytes):
                events[exp] = events.get(exp, 0) + len(lines)
        jobs: list[tuple[str, Any, bool]] = [
            ("INSERT INTO segments(seg, exp, type, lines) VALUES (?,?,?,?)",
             [(seg, _text(exp), _text(type_), b"\n".join(lines)) for (exp, type_), (seg, lines) in self.groups.items()],
             True), ("INSERT INTO events(rowid, id, seg, copies) VALUES (?,?,?,1)", list(self.rows), True)]  # fmt: skip
        ids, runs, flushed = self.ids, self.runs, self.flushed
        spans = [(rowid, seg, ids[rowid - flushed - 1 : stop - flushed - 1])
                 for (rowid, seg), (stop, _) in itertools.pairwise([*runs, (flushed + len(ids) + 1, None)])
                 if seg is not None]  # fmt: skip
        if spans and JSON_RUNS:
            parts = [b"%d,%d,[\"" % (rowid, seg) + b'","'.join(run) for rowid, seg, run in spans]  # type: ignore[arg-type]
            jobs.append((_RUNS_SQL, ("[[" + b'"]],['.join(parts).decode() + '"]]]',), False))
        elif spans:  # an SQLite without JSON functions: a row at a time
            rows = [(rowid + i, _text(key), seg) for rowid, seg, run in spans for i, key in enumerate(run)]
            jobs.append(("INSERT INTO events(rowid, id, seg, copies) VALUES (?,?,?,1)", rows, True))
        self.writer.put(jobs)
        self.flushed += len(ids)
        for pending in (ids, runs, self.rows):
            pending.clear()
        self.groups.clear()

    def finish(self) -> None:
        self.writer.close()
        self.agg.merge_decoded(self.raw)
        self.conn.executemany("UPDATE events SET copies = copies + ? WHERE rowid = ?",
                              [(n, rowid) for rowid, n in self.extra.items()])  # fmt: skip


JSON_RUNS = sqlite3.sqlite_version_info >= (3, 38, 0)  # json_each built in (3.38), MATERIALIZED (3.35)
_RUNS_SQL = ("WITH runs AS MATERIALIZED (SELECT json_extract(value, '$[0]') AS first, json_extract(value, '$[1]') "
             "AS seg, json_extract(value, '$[2]') AS ids FROM json_each(?)) INSERT INTO events(rowid, id, seg, copies) "
             "SELECT first + i.key, i.value, seg, 1 FROM runs, json_each(runs.ids) AS i")  # one parse of each run


class _Writer:
    """A build's inserts on a thread of their own (SQLite lets go of the GIL while it writes: the next chunk is
    parsed meanwhile), at most a few chunks behind; the first error is raised in the builder's thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        import queue
        import threading

        self.conn = conn
        self.jobs: queue.Queue[list[tuple[str, Any, bool]] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="index-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (jobs := self.jobs.get()) is not None:
            try:
                for sql, args, many in jobs if self.error is None else ():
                    if many:
                        self.conn.executemany(sql, args)
                    else:
                        self.conn.execute(sql, args)
            except BaseException as exc:  # raised in the builder's thread
                self.error = exc
            finally:
                self.jobs.task_done()
        self.jobs.task_done()

    def put(self, jobs: list[tuple[str, Any, bool]]) -> None:
        self._raise()
        self.jobs.put(jobs)

    def wait(self) -> None:
        """Everything put so far is written."""
        self.jobs.join()
        self._raise()

    def close(self, check: bool = True) -> None:
        """Once everything put is written, end the thread; ``check``: raise its error, if any."""
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        if check:
            self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


def _set_meta(conn: sqlite3.Connection, repo_id: str, head: Tips, skipped: int) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                     [("repo", repo_id), ("commit", refs.token(head) or ""), ("tips", json.dumps(head)),
                      ("skipped", str(skipped))])  # fmt: skip


def _indexed_tips(meta: dict[str, str]) -> Tips | None:
    """The tips an index of ours reflects (an index of 0.2 knew only the legacy ref's commit); None if unreadable."""
    if "tips" not in meta:
        return {refs.LEGACY: meta["commit"]} if meta["commit"] else {}
    try:
        tips = json.loads(meta["tips"])
    except ValueError:
        return None
    if not isinstance(tips, dict) or not all(isinstance(v, str) for v in tips.values()):
        return None
    return tips


def _store(conn: sqlite3.Connection, agg: _Aggregates, merge: bool = False) -> None:
    """Write ``agg`` into the tables; ``merge``: add it to the rows already there. The cells and pair sums move by
    what each unit and pair changed."""
    cells = _CellDelta()
    units = agg.units
    pairs = _complete_pairs(conn, agg.pairs, cells) if merge else agg.pairs
    if merge:
        units = {k: _Unit() for k in agg.units}
        for key in units:
            row = conn.execute("SELECT n, total, trials, errors, first_ts, first_id, machine, min_t, max_t FROM units "
                               "WHERE exp=? AND metric=? AND arm=? AND unit=?", key).fetchone()  # fmt: skip
            if row is not None:
                units[key] = _Unit(row[0], from_blob(row[1]), row[2], row[3], (row[4], row[5]) if row[4] else None,
                                   row[6], row[7], row[8])  # fmt: skip
                cells.unit(key, units[key], -1)
            units[key].merge(agg.units[key])
    for key, u in units.items():
        cells.unit(key, u, 1)
    conn.executemany("INSERT OR REPLACE INTO units VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     [_unit_row(k, u) for k, u in units.items()])  # fmt: skip
    conn.executemany("INSERT OR REPLACE INTO pairs VALUES (?,?,?,?,?,?,?,?)",
                     [(*k, p.n, to_blob(p.total), *p.first) for k, p in pairs.items()])  # fmt: skip
    cells.pairs(pairs, 1)
    cells.write(conn)
    arm_units = agg.arm_units | {(exp, arm, unit) for exp, _metric, arm, unit in agg.units}
    conn.executemany("INSERT OR IGNORE INTO arm_units VALUES (?,?,?)", sorted(arm_units))
    conn.executemany("INSERT INTO experiments VALUES (?, ?) ON CONFLICT(exp) DO UPDATE SET events = events + ?",
                     [(exp, n, n) for exp, n in agg.events.items()])  # fmt: skip
    conn.executemany("DELETE FROM orders WHERE exp=?", [(exp,) for exp in {k[0] for k in units}])


def _complete_pairs(conn: sqlite3.Connection, new: dict[tuple[Any, ...], _Pair],
                    cells: _CellDelta) -> dict[tuple[Any, ...], _Pair]:  # fmt: skip
    """Every arm of each pair ``new`` touches, as stored, with ``new`` merged in; the stored pairs leave
    ``cells``."""
    out: dict[tuple[Any, ...], _Pair] = {}
    for exp, metric, pair in {k[:3] for k in new}:
        for arm, n, total, fts, fid in conn.execute("SELECT arm, n, total, first_ts, first_id FROM pairs WHERE exp=? "
                                                    "AND metric=? AND pair=?", (exp, metric, pair)):  # fmt: skip
            out[(exp, metric, pair, arm)] = _Pair(n, from_blob(total), (fts, fid))
    cells.pairs(out, -1)
    for key, p in new.items():
        out.setdefault(key, _Pair()).merge(p)
    return out


class _CellDelta:
    """What units and pairs add to (sign 1) or take from (-1) the ``cells`` and ``pair_sums`` rows."""

    def __init__(self) -> None:
        self.cells: dict[tuple[Any, ...], tuple[Cell, int, int]] = {}
        self.pair_sums: dict[tuple[Any, ...], PairSums] = {}

    def unit(self, key: tuple[Any, ...], u: _Unit, sign: int) -> None:
        exp, metric, arm, _unit = key
        cell_key = (exp, metric, arm, u.machine if u.n else "")
        cell, trials, errors = self.cells.get(cell_key, (Cell(), 0, 0))
        if u.n:
            cell = cell.plus(Cell.of(mean(u.total, u.n)), sign)
        self.cells[cell_key] = (cell, trials + sign * u.trials, errors + sign * u.errors)

    def pairs(self, pairs: dict[tuple[Any, ...], _Pair], sign: int) -> None:
        for (exp, metric, pair, arm), c in pairs.items():
            t = pairs.get((exp, metric, pair, "treatment")) if arm == "control" else None
            if t is not None:
                old = self.pair_sums.get((exp, metric), PairSums())
                self.pair_sums[(exp, metric)] = old.plus(PairSums.of(mean(c.total, c.n), mean(t.total, t.n)), sign)

    def write(self, conn: sqlite3.Connection) -> None:
        for key, (cell, trials, errors) in self.cells.items():
            row = conn.execute("SELECT n, s1, s2, log_n, log_s1, log_s2, nonpositive, trials, errors FROM cells "
                               "WHERE exp=? AND metric=? AND arm=? AND block=?", key).fetchone()  # fmt: skip
            if row is not None:
                cell = _cell(row).plus(cell)
                trials, errors = trials + row[7], errors + row[8]
            if cell == Cell() and not trials and not errors:
                conn.execute("DELETE FROM cells WHERE exp=? AND metric=? AND arm=? AND block=?", key)
                continue
            conn.execute("INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (*key, *_blobs(cell.linear), *_blobs(cell.log), cell.nonpositive, trials, errors))
        for key, ps in self.pair_sums.items():
            row = conn.execute("SELECT n, s1, s2, nonpositive FROM pair_sums WHERE exp=? AND metric=?", key).fetchone()
            if row is not None:
                ps = PairSums(_sums(row[:3]), row[3]).plus(ps)
            conn.execute("INSERT OR REPLACE INTO pair_sums VALUES (?,?,?,?,?,?)", (*key, *_blobs(ps.log_ratio),
                                                                                  ps.nonpositive))  # fmt: skip


def _blobs(s: Sums) -> tuple[int, bytes, bytes]:
    return s.n, to_blob(s.s1), to_blob(s.s2)


def _sums(row: Sequence[Any]) -> Sums:
    return Sums(row[0], from_blob(row[1]), from_blob(row[2]))


def _cell(row: Sequence[Any]) -> Cell:
    return Cell(_sums(row[0:3]), _sums(row[3:6]), row[6])


# ---- bringing it forward ----------------------------------------------------------------------------------------
INCREMENTAL_MAX_FRACTION = 0.5  # more changed notes than this share of the ledger's: a rebuild is cheaper


def _changed_blobs(git: Git, old: str, new: str) -> tuple[list[str], list[str]] | None:
    """(blobs gone, blobs come) between two notes commits, identical ones cancelled (a re-fanned tree moves notes
    without changing them), or None when git cannot diff them (an unknown or collected commit)."""
    try:
        raw = git.run("diff-tree", "-r", "--no-renames", "--no-commit-id", old, new)
    except GitError:
        return None
    minus: dict[str, int] = {}
    plus: dict[str, int] = {}
    zero = "0" * len(old)
    for entry in raw.decode("utf-8", "replace").splitlines():
        meta = entry.partition("\t")[0].split()
        if len(meta) != 5:
            continue
        # blobs (any file mode, as ls-tree lists them on a cold read); gitlinks (160000) are not ours to read
        if meta[2] != zero and meta[0] != ":160000":
            minus[meta[2]] = minus.get(meta[2], 0) + 1
        if meta[3] != zero and meta[1] != "160000":
            plus[meta[3]] = plus.get(meta[3], 0) + 1
    for sha in set(minus) & set(plus):
        common = min(minus[sha], plus[sha])
        minus[sha] -= common
        plus[sha] -= common
    return ([s for s, n in minus.items() for _ in range(n)], [s for s, n in plus.items() for _ in range(n)])


def _changed_refs(git: Git, old: Tips, new: Tips) -> tuple[list[str], list[str]] | None:
    """(blobs gone, blobs come) over every ledger ref that moved (a new ref: from the empty tree); None when a ref
    is gone or git cannot diff a pair (rebuild instead)."""
    if not set(old) <= set(new):
        return None
    minus: list[str] = []
    plus: list[str] = []
    for ref, commit in new.items():
        before = old.get(ref)
        if before == commit:
            continue
        if before is None and len(commit) != len(refs.EMPTY_TREE):
            return None  # another hash than SHA-1: no empty tree of ours to diff against
        changed = _changed_blobs(git, before or refs.EMPTY_TREE, commit)
        if changed is None:
            return None
        minus += changed[0]
        plus += changed[1]
    return minus, plus


def _update(git: Git, conn: sqlite3.Connection, old: Tips, new: Tips) -> bool:
    """Move the index from notes commits ``old`` to ``new`` in one transaction. False: rebuild instead."""
    if not new:
        return False
    changed = _changed_refs(git, old, new)
    if changed is None:
        return False
    minus, plus = changed
    if len(minus) + len(plus) > 1000:
        notes = conn.execute("SELECT COALESCE(SUM(events), 0) FROM experiments").fetchone()[0]
        if len(minus) + len(plus) > INCREMENTAL_MAX_FRACTION * max(notes, 1):
            return False
    blobs = git.cat_batch(minus + plus)
    if any(b is None for b in blobs):
        return False
    gone, come = _net_lines([b or b"" for b in blobs[: len(minus)]], [b or b"" for b in blobs[len(minus) :]])
    good_gone, bad_gone = ledger.decode_lines(gone)
    good_come, bad_come = ledger.decode_lines(come)
    conn.execute("BEGIN IMMEDIATE")
    try:
        meta = _meta(conn)
        if _indexed_tips(meta) != old:  # another writer moved it meanwhile (cannot happen under the lock)
            conn.execute("ROLLBACK")
            return False
        agg = _add_events(conn, good_come)
        dirty = _remove_events(conn, [ev["id"] for ev, _line in good_gone])
        agg.units = {k: v for k, v in agg.units.items() if k[0] not in dirty}
        agg.pairs = {k: v for k, v in agg.pairs.items() if k[0] not in dirty}
        agg.arm_units = {k for k in agg.arm_units if k[0] not in dirty}
        agg.events = {k: n for k, n in agg.events.items() if k not in dirty}
        _store(conn, agg, merge=True)
        for exp in sorted(dirty):
            _recompute(conn, exp)
        _set_meta(conn, meta["repo"], new, int(meta["skipped"]) + bad_come - bad_gone)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def _net_lines(minus: list[bytes], plus: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(lines gone, lines come), netted per line: a note that grew by one line adds one event, whatever it held
    before."""
    delta: dict[bytes, int] = {}
    for sign, blobs in ((-1, minus), (1, plus)):
        for blob in blobs:
            for line in ledger._split_lines(blob):
                delta[line] = delta.get(line, 0) + sign
    return ([line for line, n in delta.items() for _ in range(-n)],
            [line for line, n in delta.items() for _ in range(n)])  # fmt: skip


def _add_events(conn: sqlite3.Connection, good: list[tuple[ledger.Event, bytes]]) -> _Aggregates:
    """Another copy of each event already indexed, a new one for the others (its line in a new segment of its
    experiment and type); the aggregates of the new ones."""
    agg = _Aggregates()
    new: dict[str, list[Any]] = {}  # id -> [exp, type, copies]
    lines: dict[tuple[str, str], list[bytes]] = {}
    for ev, line in good:
        key = ev["id"]
        if key in new:
            new[key][2] += 1
            continue
        row = conn.execute("SELECT rowid FROM events WHERE id=?", (key,)).fetchone()
        if row is not None:
            conn.execute("UPDATE events SET copies = copies + 1 WHERE rowid=?", row)
            continue
        new[key] = [ev["exp"], ev["type"], 1]
        lines.setdefault((ev["exp"], ev["type"]), []).append(line)
        agg.add(ev)
    segment: dict[tuple[str, str], int] = {}
    for (exp, type_), group in lines.items():
        cur = conn.execute("INSERT INTO segments(exp, type, lines) VALUES (?,?,?)", (exp, type_, b"\n".join(group)))
        segment[(exp, type_)] = int(cur.lastrowid or 0)
    conn.executemany("INSERT INTO events(id, seg, copies) VALUES (?,?,?)",
                     [(key, segment[(exp, type_)], n) for key, (exp, type_, n) in new.items()])  # fmt: skip
    return agg


def _remove_events(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    """One copy fewer of each event; an event whose last copy went leaves its segment. The experiments whose
    events went (their aggregates are recomputed)."""
    drop: dict[int, set[str]] = {}
    for key in ids:
        row = conn.execute("SELECT rowid, copies, seg FROM events WHERE id=?", (key,)).fetchone()
        if row is None:
            continue
        if row[1] > 1:
            conn.execute("UPDATE events SET copies = copies - 1 WHERE rowid=?", (row[0],))
        else:
            conn.execute("DELETE FROM events WHERE rowid=?", (row[0],))
            drop.setdefault(row[2], set()).add(key)
    dirty: set[str] = set()
    for seg, keys in drop.items():
        exp, lines = conn.execute("SELECT exp, lines FROM segments WHERE seg=?", (seg,)).fetchone()
        dirty.add(exp)
        kept = [line for line in lines.split(b"\n") if json.loads(line)["id"] not in keys]
        if kept:
            conn.execute("UPDATE segments SET lines=? WHERE seg=?", (b"\n".join(kept), seg))
        else:
            conn.execute("DELETE FROM segments WHERE seg=?", (seg,))
    return dirty


def _recompute(conn: sqlite3.Connection, exp: str) -> None:
    """An experiment's aggregates again from its stored events (after an event went: its first trial, span or
    units may have changed)."""
    for table in ("units", "pairs", "arm_units", "experiments", "cells", "pair_sums", "orders"):
        conn.execute(f"DELETE FROM {table} WHERE exp=?", (exp,))
    agg = _Aggregates()
    for ev in _segment_events(conn.execute("SELECT lines FROM segments WHERE exp=?", (exp,))):
        agg.add(ev)
    _store(conn, agg)


def _segment_events(rows: Iterable[tuple[bytes]]) -> list[ledger.Event]:
    """The events of segments' lines (every one valid: it was validated on the way in)."""
    bodies = [row[0] for row in rows]
    if not bodies:
        return []
    events: list[ledger.Event] = json.loads(b"[" + b",".join(bodies).replace(b"\n", b",") + b"]")
    return events


# ---- opening ----------------------------------------------------------------------------------------------------
def open_index(git: Git, *, progress: Progress | None = None, head: Tips | None = None) -> LedgerIndex:
    """The index, brought forward to the ledger refs' current commits, or to ``head`` when the caller just read
    them (built on first use; rebuilt when it cannot be trusted). Reads on the returned object see one consistent
    snapshot until :meth:`LedgerIndex.close`."""
    path = index_path(git)
    path.parent.mkdir(parents=True, exist_ok=True)
    repo_id = _repo_id(git)
    head = refs.tips(git) if head is None else head
    for _attempt in range(3):
        conn = _try_open(path, repo_id, head)
        if conn is not None:
            return LedgerIndex(conn)
        with _writer_lock(path):
            conn = _try_open(path, repo_id, head)  # another writer may have done it meanwhile
            if conn is not None:
                return LedgerIndex(conn)
            _bring_forward(git, path, repo_id, head, progress)
    raise sqlite3.OperationalError(f"{path}: the ledger index could not be brought up to date")  # pragma: no cover


def _try_open(path: Path, repo_id: str, head: Tips) -> sqlite3.Connection | None:
    """A connection in a read transaction on an index that is ours and at ``head``, else None."""
    if not path.is_file():
        return None
    try:
        conn = _connect(path)
    except sqlite3.Error:
        return None
    try:
        conn.execute("BEGIN")
        meta = _trusted(conn, repo_id)
        if meta is not None and meta["commit"] == (refs.token(head) or ""):
            return conn
    except sqlite3.Error:
        pass
    conn.close()
    return None


def _bring_forward(git: Git, path: Path, repo_id: str, head: Tips, progress: Progress | None) -> None:
    """Under the writer lock: update the index to ``head`` incrementally, or rebuild it."""
    conn: sqlite3.Connection | None = None
    try:
        conn = _connect(path) if path.is_file() else None
        meta = _trusted(conn, repo_id) if conn is not None else None
        old = _indexed_tips(meta) if meta is not None else None
        if conn is not None and old is not None:
            if _update(git, conn, old, head):
                return
            _rebuild(git, path, head, progress, conn)  # ours, but too far from head: in place
            return
    except sqlite3.Error:
        pass  # not SQLite, or damaged: replaced below
    finally:
        if conn is not None:
            conn.close()
    _rebuild(git, path, head, progress)


class LedgerIndex:
    """Reads of the index, in one snapshot. Events come back as dicts, in time order (then by id)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        meta = _meta(conn)
        self.notes_commit: str | None = meta["commit"] or None
        self.skipped = int(meta["skipped"])
        self._computed: list[tuple[str, str, str, str]] = []  # order statistics to cache: (exp, metric, setting, doc)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> LedgerIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events --
    def events(self, exp_id: str | None = None, types: Sequence[str] = ()) -> list[ledger.Event]:
        sql = "SELECT lines FROM segments"
        args: list[str] = []
        where = []
        if exp_id is not None:
            where.append("exp=?")
            args.append(exp_id)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            args.extend(types)
        if where:
            sql += " WHERE " + " AND ".join(where)
        events = _segment_events(self._conn.execute(sql, args))
        events.sort(key=lambda e: (e["ts"], e["id"]))
        return events

    def count(self) -> int:
        return int(self._conn.execute("SELECT COALESCE(SUM(events), 0) FROM experiments").fetchone()[0])

    def count_unknown(self, known_ids: Iterable[str]) -> int:
        """Events naming an experiment the registry does not have."""
        known = set(known_ids)
        rows = self._conn.execute("SELECT exp, events FROM experiments").fetchall()
        return sum(n for exp, n in rows if exp not in known)

    def has_event(self, event_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM events WHERE id=?", (event_id,)).fetchone() is not None

    # -- aggregates --
    def units(self, exp_id: str, metric: str) -> Any:
        """The :class:`units.UnitData` of ``metric``, equal to ``collect_units`` over all the events."""
        from experiment_core.evidence.units import UnitData

        rows = self._conn.execute("SELECT arm, n, total, trials, errors, machine FROM units WHERE exp=? AND metric=? "
                                  "ORDER BY first_ts, first_id", (exp_id, metric)).fetchall()  # fmt: skip
        control: list[float] = []
        treatment: list[float] = []
        machines: dict[str, list[str]] = {"control": [], "treatment": []}
        ec = tc = et = tt = 0
        for arm, n, total, trials, errors, machine in rows:
            if arm == "control":
                tc += trials
                ec += errors
            else:
                tt += trials
                et += errors
            if n:
                (control if arm == "control" else treatment).append(mean(from_blob(total), n))
                machines[arm].append(machine)
        pc: list[float] = []
        pt: list[float] = []
        pair_rows = self._conn.execute("SELECT pair, arm, n, total, first_ts, first_id FROM pairs WHERE exp=? AND "
                                       "metric=?", (exp_id, metric)).fetchall()  # fmt: skip
        by_pair: dict[str, dict[str, float]] = {}
        first: dict[str, tuple[str, str]] = {}
        for pair, arm, n, total, fts, fid in pair_rows:
            by_pair.setdefault(pair, {})[arm] = mean(from_blob(total), n)
            first[pair] = min(first.get(pair, (fts, fid)), (fts, fid))
        for pair in sorted(by_pair, key=first.__getitem__):
            arms = by_pair[pair]
            if "control" in arms and "treatment" in arms:
                pc.append(arms["control"])
                pt.append(arms["treatment"])
        return UnitData(control, treatment, (pc, pt), (ec, tc, et, tt), machines["control"], machines["treatment"])

    def sums(self, exp_id: str, metric: str) -> MetricSums:
        """The :class:`sums.MetricSums` of ``metric``: its cells and pair sums, O(blocks) rows."""
        arms: dict[str, dict[str, Cell]] = {"control": {}, "treatment": {}}
        errors = {"control": [0, 0], "treatment": [0, 0]}
        for row in self._conn.execute("SELECT arm, block, n, s1, s2, log_n, log_s1, log_s2, nonpositive, trials, "
                                      "errors FROM cells WHERE exp=? AND metric=?", (exp_id, metric)):  # fmt: skip
            if row[0] in arms:
                if row[2]:
                    arms[row[0]][row[1]] = _cell(row[2:9])
                errors[row[0]][0] += row[10]
                errors[row[0]][1] += row[9]
        row = self._conn.execute("SELECT n, s1, s2, nonpositive FROM pair_sums WHERE exp=? AND metric=?",
                                 (exp_id, metric)).fetchone()  # fmt: skip
        pairs = PairSums() if row is None else PairSums(_sums(row[:3]), row[3])
        (ec, tc), (et, tt) = errors["control"], errors["treatment"]
        return MetricSums(arms["control"], arms["treatment"], pairs, (ec, tc, et, tt))

    def orders(self, exp_id: str, metric: str, *, alpha: float, log_scale: bool) -> Any:
        """The :class:`units.Orders` of ``metric`` (cached: see :meth:`cached`)."""
        from experiment_core.evidence.units import Orders, orders_of

        def compute() -> list[Any]:
            u = self.units(exp_id, metric)
            return orders_of(u.control, u.treatment, alpha=alpha, log_scale=log_scale).to_json()

        return self.cached(exp_id, metric, f"{alpha!r}:{int(log_scale)}", compute, Orders.from_json)

    def cached(self, exp_id: str, metric: str, setting: str, compute: Callable[[], Any],
               read: Callable[[Any], _T]) -> _T:  # fmt: skip
        """``read`` of what ``compute`` derives from an experiment's units (JSON-ready): from the ``orders`` cache
        when this snapshot has it (and ``read`` accepts it), else computed, and cached by :meth:`save_computed`.
        The writer drops an experiment's entries whenever its units change."""
        row = self._conn.execute("SELECT doc FROM orders WHERE exp=? AND metric=? AND setting=?",
                                 (exp_id, metric, setting)).fetchone()  # fmt: skip
        if row is not None:
            with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
                return read(json.loads(row[0]))
        value = compute()
        self._computed.append((exp_id, metric, setting, json.dumps(value)))
        return read(value)

    def first_units(self, exp_id: str, metric: str, k: int) -> Any:
        """The first ``k`` units of each arm (by first trial) and the first ``k`` complete pairs."""
        from experiment_core.evidence.units import UnitData

        arms: dict[str, tuple[list[float], list[str]]] = {}
        for arm in ("control", "treatment"):
            rows = self._conn.execute("SELECT n, total, machine FROM units WHERE exp=? AND metric=? AND arm=? AND n>0 "
                                      "ORDER BY first_ts, first_id LIMIT ?", (exp_id, metric, arm, k)).fetchall()
            arms[arm] = ([mean(from_blob(t), n) for n, t, _m in rows], [m for _n, _t, m in rows])
        pairs = self._conn.execute(
            "SELECT MAX(CASE WHEN arm='control' THEN n END), MAX(CASE WHEN arm='control' THEN total END), "
            "MAX(CASE WHEN arm='treatment' THEN n END), MAX(CASE WHEN arm='treatment' THEN total END) FROM pairs "
            "WHERE exp=? AND metric=? GROUP BY pair HAVING COUNT(*)=2 ORDER BY MIN(first_ts || char(0) || first_id) "
            "LIMIT ?", (exp_id, metric, k)).fetchall()  # fmt: skip
        pc = [mean(from_blob(tc), nc) for nc, tc, _nt, _tt in pairs]
        pt = [mean(from_blob(tt), nt) for _nc, _tc, nt, tt in pairs]
        (c, cm), (t, tm) = arms["control"], arms["treatment"]
        return UnitData(c, t, (pc, pt), (0, 0, 0, 0), cm, tm)

    def save_computed(self) -> None:
        """Cache the order statistics this snapshot computed, if the index is still at its notes commits (a writer
        that moved it meanwhile may have changed the units). Best effort: never waits long, never fails."""
        if not self._computed:
            return
        conn = self._conn
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")
            conn.execute("PRAGMA busy_timeout=100")
            conn.execute("BEGIN IMMEDIATE")
            if _meta(conn).get("commit") == (self.notes_commit or ""):
                conn.executemany("INSERT OR REPLACE INTO orders VALUES (?,?,?,?)", self._computed)
            conn.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        self._computed.clear()

    def unit_counts(self, exp_id: str) -> tuple[int, int]:
        rows = dict(self._conn.execute("SELECT arm, COUNT(*) FROM arm_units WHERE exp=? GROUP BY arm",
                                       (exp_id,)).fetchall())  # fmt: skip
        return int(rows.get("control", 0)), int(rows.get("treatment", 0))

    def trial_span(self, exp_id: str, metric: str) -> tuple[int, float | None, float | None]:
        """(trials of ``metric``, epoch seconds of the first and the last)."""
        row = self._conn.execute("SELECT SUM(trials), MIN(min_t), MAX(max_t) FROM units WHERE exp=? AND metric=?",
                                 (exp_id, metric)).fetchone()  # fmt: skip
        return int(row[0] or 0), row[1], row[2]

    def data(self, exp_id: str) -> ExperimentView:
        return ExperimentView(self, exp_id)


@dataclass(frozen=True)
class ExperimentView:
    """One experiment as :func:`analysis.analyze_data` reads it."""

    index: LedgerIndex
    exp_id: str

    def units(self, metric: str) -> Any:
        return self.index.units(self.exp_id, metric)

    def sums(self, metric: str) -> MetricSums:
        return self.index.sums(self.exp_id, metric)

    def orders(self, metric: str, *, alpha: float, log_scale: bool) -> Any:
        return self.index.orders(self.exp_id, metric, alpha=alpha, log_scale=log_scale)

    def first_units(self, metric: str, k: int) -> Any:
        return self.index.first_units(self.exp_id, metric, k)

    def unit_counts(self) -> tuple[int, int]:
        return self.index.unit_counts(self.exp_id)


# ---- what commands call --------------------------------------------------------------------------------------
def read_with(git: Git, fn: Callable[[LedgerIndex], _T], *, progress: bool = False, head: Tips | None = None) -> _T:
    """``fn(index)`` on the up-to-date index. A file that turns out damaged while being read (SQLite says so) is
    deleted and rebuilt from the notes, and ``fn`` runs again: a derived file never fails a command. With
    ``progress`` (commands on a terminal, never hooks or pipes), a long build shows a progress bar on stderr."""
    for attempt in range(2):
        with _progress_bar(progress) as bar:
            index = open_index(git, progress=bar, head=head)
        try:
            result = fn(index)
            index.save_computed()
            return result
        except sqlite3.DatabaseError as exc:
            if attempt or (isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)):
                raise
            path = index_path(git)
            index.close()
            with _writer_lock(path):
                _remove(path)
        finally:
            index.close()
    raise AssertionError("unreachable")  # pragma: no cover


PROGRESS_MIN_NOTES = 20_000  # below this a build takes about a second: no bar


@contextlib.contextmanager
def _progress_bar(wanted: bool) -> Iterator[Progress | None]:
    if not wanted or not sys.stderr.isatty():
        yield None
        return
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if total < PROGRESS_MIN_NOTES:
            return
        if "bar" not in state:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            bar = Progress(TextColumn("indexing the ledger"), BarColumn(), MofNCompleteColumn(), TextColumn("notes"),
                           TimeRemainingColumn(), console=Console(stderr=True), transient=True)  # fmt: skip
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task("index", total=total)
        state["bar"].update(state["task"], completed=done)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].stop()
