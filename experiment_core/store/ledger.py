"""The ledger: events as JSON lines in git notes, one notes ref per experiment (:mod:`experiment_core.store.refs`).

One canonical JSON object per line (sorted keys, compact), so the same event is the same bytes in every clone
and ``git notes merge -s cat_sort_uniq`` is an exact union. Every event has ``v``, ``id``, ``type``, ``exp``,
``ts`` and the fields of its type. Readers skip and count what they cannot parse or validate: nothing a remote
sends crashes analysis. Writers serialize on a lock in the git common dir, because ``git notes append`` alone
updates the notes ref without checking its old value and concurrent appends lose records.

Each event goes to its experiment's ref (``refs/notes/experiments-<exp-id>``); a read is the union of every ledger
ref, the legacy ``refs/notes/experiments`` of clones before 0.3 included, deduplicated by id. Reading all the notes
costs one ``for-each-ref``, one ``ls-tree`` per ref and one ``cat-file --batch`` whatever the ledger's size;
commands read the local index instead (:mod:`experiment_core.store.ledger_index`), which is built that way once
and then brought forward from the notes that changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import subprocess
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from experiment_core.clock import format_ts, parse_ts, utc_now
from experiment_core.errors import UserError
from experiment_core.gitio import Git, GitError
from experiment_core.hookenv import STATE_DIR
from experiment_core.store import refs
from experiment_core.store.spec import ID_RE, METRIC_NAME_RE

NOTES_REF = refs.LEGACY  # the legacy ref (clones before 0.3 write only there); see refs.exp_ref
SCHEMA_VERSION = 1
MAX_LINE = 64 * 1024
ARMS = ("control", "treatment")
ACTIONS = ("promote", "rollback", "expire", "hold", "continue")

Event = dict[str, Any]


@dataclass(frozen=True)
class LedgerRead:
    events: list[Event]
    skipped: int
    notes_commit: str | None  # the notes state read: refs.token of the refs' tips (the commit of a single ref)


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


_SHA_RE = re.compile(r"[0-9a-f]{4,64}\Z")


def _is_sha(v: Any) -> bool:
    return type(v) is str and _SHA_RE.match(v) is not None


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(_is_str(k, 4096) and isinstance(x, str) for k, x in v.items())


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _matches_cached(pattern: re.Pattern[str]) -> Any:
    """``pattern.match`` of a str, remembering up to 4096 names that matched (a ledger repeats a few ids and
    metric names a million times)."""
    good: set[str] = set()

    def ok(v: Any) -> bool:
        if type(v) is not str:
            return False
        if v in good:
            return True
        if not pattern.match(v):
            return False
        if len(good) < 4096:
            good.add(v)
        return True

    return ok


_exp_ok = _matches_cached(ID_RE)
_metric_ok = _matches_cached(METRIC_NAME_RE)

_TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "created": {"files": _str_map, "backups": _str_map},
    "assign": {"arm": lambda v: v in ARMS, "unit": _is_str},
    "trial": {
        "arm": lambda v: v in ARMS,
        "metric": _metric_ok,
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


def _trial_ok(obj: Event) -> bool:
    """The trial check, inlined: trials are almost all of a big ledger."""
    try:
        arm, metric, value, unit = obj["arm"], obj["metric"], obj["value"], obj["unit"]
    except KeyError:
        return False
    if arm not in ARMS or not _metric_ok(metric) or not _is_str(unit):
        return False
    tv = type(value)
    if tv is float:
        if not math.isfinite(value):
            return False
    elif tv is not int:
        return False
    code = obj.get("exit_code")
    if code is not None and type(code) is not int:
        return False
    machine = obj.get("machine")
    if machine is not None and not _is_str(machine, 64):
        return False
    commit = obj.get("commit")
    return commit is None or _is_sha(commit)


_LAST_GOOD_TS: list[str | None] = [None]  # the events of one note share their time: parse it once


def _ts_ok(ts: str) -> bool:
    if parse_ts(ts) is None:
        return False
    _LAST_GOOD_TS[0] = ts
    return True


def validate(obj: Any) -> Event | None:
    """The event if it is well-formed, else None. Unknown fields are kept; unknown types are rejected."""
    if type(obj) is not dict:
        return None
    v = obj.get("v")
    if type(v) is not int or v != SCHEMA_VERSION or not _is_str(obj.get("id"), 64):
        return None
    type_ = obj.get("type")
    if type(type_) is not str:
        return None
    fields = _TYPE_FIELDS.get(type_)
    if fields is None or not _exp_ok(obj.get("exp")):
        return None
    ts = obj.get("ts")
    if type(ts) is not str or not ts_ok(ts):
        return None
    if type_ == "trial":
        return obj if _trial_ok(obj) else None
    optional = _OPTIONAL.get(type_, set())
    for name, check in fields.items():
        if name not in obj:
            if name in optional:
                continue
            return None
        if not check(obj[name]):
            return None
    return obj


# The bulk path of a cold build: the canonical line of a trial or an assignment (``encode``'s output: sorted keys,
# compact, printable ASCII without escapes), matched by one regular expression. A match holds every check of
# :func:`validate` but the time's (:func:`ts_ok`) and, for a value with an exponent, finiteness
# (:func:`json_number`); ``json.loads`` of the line gives exactly these fields. Unknown fields (``source``,
# ``timing``...) may follow ``arm`` when their value is a plain string, number, true, false or null. Any other line
# (another type, an escape, a non-ASCII byte, a long number, a known key twice) takes the exact path, so the
# verdict is the same line for line (tests check it on hostile lines).
_S = rb"[ !#-\[\]-~]"  # a JSON string character that needs no escape, ASCII only
_NUM = rb"-?(?:0|[1-9][0-9]{0,300})(?:\.[0-9]{1,300})?(?:[eE][-+]?[0-9]{1,3})?"  # json.loads never refuses it
_TRIAL_FIELDS = [(b"arm", rb"(control|treatment)", False), (b"commit", rb'"[0-9a-f]{4,64}"', True),
                 (b"exit_code", rb"(-?(?:0|[1-9][0-9]{0,17})|null)", True),
                 (b"exp", rb'"([A-Za-z0-9][A-Za-z0-9._-]{0,99})"', False),  # spec.ID_RE
                 (b"id", rb'"(' + _S + rb'{1,64})"', False), (b"machine", rb'"(' + _S + rb'{1,64})"', True),
                 (b"metric", rb'"([A-Za-z_][A-Za-z0-9_.-]{0,63})"', False),  # spec.METRIC_NAME_RE
                 (b"pair", rb'"(' + _S + rb'{0,1000})"', True), (b"ts", rb'"(' + _S + rb'{1,64})"', False),
                 (b"type", rb'"trial"', False), (b"unit", rb'"(' + _S + rb'{1,200})"', False),
                 (b"v", rb"1", False), (b"value", rb"(" + _NUM + rb")", False)]  # fmt: skip
_ASSIGN_FIELDS = [(b"arm", rb"(control|treatment)", False), (b"exp", _TRIAL_FIELDS[3][1], False),
                  (b"id", _TRIAL_FIELDS[4][1], False), (b"ts", _TRIAL_FIELDS[8][1], False),
                  (b"type", rb'"assign"', False), (b"unit", _TRIAL_FIELDS[10][1], False), (b"v", rb"1", False)]


def _canonical(fields: list[tuple[bytes, bytes, bool]]) -> bytes:
    known = b"|".join(name for name, _, _ in _TRIAL_FIELDS)
    value_ = rb'(?:"' + _S + rb'{0,4096}"|' + _NUM + rb"|true|false|null)"
    other = rb'(?:,"(?!(?:' + known + rb')")[A-Za-z0-9_]{1,64}":' + value_ + rb")*?"  # lazy: known keys first
    name, value, _ = fields[0]
    parts = [rb'\{"' + name + rb'":"' + value + rb'"']
    for name, value, optional in fields[1:]:
        one = rb',"' + name + rb'":' + value
        parts.append(other + (rb"(?:" + one + rb")?" if optional else one))
    return b"".join(parts) + other + rb"\}"


_MATCHERS: list[Any] = []


def canonical_matchers() -> tuple[Any, Any]:
    """(trial, assign) ``fullmatch`` of canonical lines, compiled on first use (20 ms: not on hook paths).
    Groups: arm, exit_code, exp, id, machine, metric, pair, ts, unit, value; and arm, exp, id, ts, unit."""
    if not _MATCHERS:
        trial = _canonical(_TRIAL_FIELDS)
        _MATCHERS.extend((re.compile(trial).fullmatch, re.compile(_canonical(_ASSIGN_FIELDS)).fullmatch,
                          re.compile(rb"(?m)^" + trial + rb"$").finditer))  # fmt: skip
    return _MATCHERS[0], _MATCHERS[1]


def canonical_trial_lines() -> Any:
    """``finditer`` of the whole lines of a text of lines (``\\n``-separated, unstripped) that
    :func:`canonical_matchers`' trial matcher matches, with the same groups: one call for a chunk of notes."""
    canonical_matchers()
    return _MATCHERS[2]


def ts_ok(ts: str) -> bool:
    """The time check of :func:`validate` (the events of one note share their time: parsed once)."""
    return ts == _LAST_GOOD_TS[0] or _ts_ok(ts)


def json_number(text: bytes) -> int | float | None:
    """A JSON number as ``json.loads`` gives it (int without fraction or exponent), None if not finite."""
    if b"." in text or b"e" in text or b"E" in text:
        value = float(text)
        return value if math.isfinite(value) else None
    return int(text)


def _bad_constant(name: str) -> float:
    raise ValueError(name)  # NaN, Infinity: refuse the line


# A JSON escape can spell a lone surrogate (``"\\ud800"``): a str no file, database or terminal takes. A line with
# one is refused (its strings are checked only when an escape of a surrogate appears in it).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _text_only(obj: Any) -> bool:
    """Whether every string in ``obj`` encodes as UTF-8."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode_line(line: bytes) -> Event | None:
    if len(line) > MAX_LINE:
        return None
    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=_bad_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if _SURROGATE_ESCAPE.search(line) and not _text_only(obj):
        return None
    return validate(obj)


def decode_lines(lines: list[bytes]) -> tuple[list[tuple[Event, bytes]], int]:
    """Valid events of non-blank, stripped lines, each with the line it came from, and the count of the others.

    Fast path: one ``json.loads`` of all the lines as one array (the C scanner then shares the key strings, about
    twice as fast as a parse per line). It is taken only when every line looks like one object and the array has
    exactly one element per line; any doubt sends the lines through the exact per-line path. Every event, on
    either path, passes :func:`validate`.
    """
    if not lines:
        return [], 0
    objs: Any = None
    if all(line[:1] == b"{" and line[-1:] == b"}" and len(line) <= MAX_LINE for line in lines):
        array = b"[" + b",".join(lines) + b"]"
        try:
            objs = None if _SURROGATE_ESCAPE.search(array) else json.loads(array, parse_constant=_bad_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            objs = None
        if objs is not None and len(objs) != len(lines):
            objs = None
    if objs is None:
        good = [(e, line) for line in lines if (e := _decode_line(line)) is not None]
    else:
        good = [(e, line) for obj, line in zip(objs, lines, strict=True) if (e := validate(obj)) is not None]
    return good, len(lines) - len(good)


def _split_lines(blob: bytes) -> list[bytes]:
    return [line for line in (raw.strip() for raw in blob.split(b"\n")) if line]


def decode(blob: bytes) -> tuple[list[Event], int]:
    """Parse one note: (valid events, number of skipped non-blank lines)."""
    good, bad = decode_lines(_split_lines(blob))
    return [e for e, _line in good], bad


# ---- locking --------------------------------------------------------------------------------------------
STALE_REF_LOCK_SECONDS = 2.0


@contextlib.contextmanager
def ledger_lock(git: Git, timeout: float = 30.0) -> Iterator[None]:
    """Serialize ledger writers across processes and worktrees (flock: released by the kernel on any death)."""
    lock_dir = git.common_dir / STATE_DIR
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


def _ref_lock_path(git: Git, ref: str = NOTES_REF) -> Path:
    return git.common_dir / (ref + ".lock")


def _clear_stale_ref_lock(git: Git, max_age: float = STALE_REF_LOCK_SECONDS, ref: str = NOTES_REF) -> bool:
    """A writer killed inside ``git notes`` leaves the ref's ``.lock`` file behind, and git then refuses every
    update of the ref. Every writer of ours holds the flock, so while we hold it only a git command of the user's
    (an amend or rebase copying notes: milliseconds) can own a young one; an old one is stale: remove it."""
    lock = _ref_lock_path(git, ref)
    try:
        if time.time() - lock.stat().st_mtime > max_age:
            lock.unlink()
            return True
    except FileNotFoundError:
        pass
    return False


def run_locked_ref_update(git: Git, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
                          ref: str = NOTES_REF, timeout: float = 10.0) -> bytes:  # fmt: skip
    """Run a git command that updates ``ref`` (caller holds the ledger lock); when the ref's ``.lock`` file is in
    the way, wait for it to go or to turn stale, then retry."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return git.run(*args, input=input, env=env)
        except GitError as exc:
            if ".lock" not in exc.stderr or time.monotonic() > deadline:
                raise
            if not _clear_stale_ref_lock(git, ref=ref):
                time.sleep(0.05)


# ---- read and append ------------------------------------------------------------------------------------
def ensure_config(git: Git) -> None:
    """Make amend and rebase carry our notes to the rewritten commits (every ledger ref: a glob)."""
    have = git.config_get_all("notes.rewriteRef")
    for ref in (NOTES_REF, refs.REWRITE_GLOB):
        if ref not in have:
            git.run("config", "--add", "notes.rewriteRef", ref)


def append(git: Git, events: Iterable[Event], commit: str | None = None) -> int:
    """Append events to the note on ``commit`` (default HEAD) in their experiments' refs, under the ledger lock.
    Returns the count.

    One ``git notes append`` process per experiment named: its cost depends on the size of that one note, not on
    the ledger's.
    """
    by_ref: dict[str, list[str]] = {}
    for event in events:
        if validate(dict(event)) is None:
            raise ValueError(f"refusing to write an invalid event: {event!r}")
        by_ref.setdefault(refs.exp_ref(event["exp"]), []).append(encode(event))
    if not by_ref:
        return 0
    target = commit or git.head()
    if target is None:
        raise UserError(str(git.root), "the repository has no commit yet", "make a first commit, then retry")
    with ledger_lock(git):
        for ref, lines in by_ref.items():
            payload = ("\n".join(lines) + "\n").encode("utf-8")
            run_locked_ref_update(git, "notes", f"--ref={ref}", "append", "-F", "-", target, input=payload, ref=ref)
    return sum(len(lines) for lines in by_ref.values())


# ---- reading: one ls-tree piped into one cat-file --batch, decoded while git still writes ------------------
_CHUNK_BYTES = 1 << 18


def _iter_note_blobs(git: Git, commit: str | Sequence[str]) -> Iterator[bytes]:
    """Every blob of the notes trees of ``commit`` (one, or several in order): ``git ls-tree -r --object-only``
    of each written straight into one ``git cat-file --batch``. Reading by commit id, not by ref name, makes the
    read one consistent snapshot even while other processes append. A thread drains git's output as it comes
    (:class:`_Drain`), so git never waits for the decoding: the two run side by side."""
    with contextlib.closing(_iter_note_blob_lists(git, commit)) as lists:
        for blobs in lists:
            yield from blobs


def _iter_note_blob_lists(git: Git, commit: str | Sequence[str]) -> Generator[list[bytes], None, None]:
    """The blobs of :func:`_iter_note_blobs`, in order, a list at a time: those whole in what git had written
    (a cold build of the index joins them in chunks, with no step per blob)."""
    commits = [commit] if isinstance(commit, str) else list(commit)
    env = _git_env()
    cat = subprocess.Popen(["git", "cat-file", "--batch"], cwd=git.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=_with_config(env, "core.deltaBaseCacheLimit",
                                                                       DELTA_BASE_CACHE))  # fmt: skip
    assert cat.stdout is not None and cat.stdin is not None
    failed: list[str] = []
    feeder = _feed_listings(git, commits, cat.stdin, env, failed)
    drain = _Drain(cat.stdout.fileno())
    try:
        yield from _batch_blob_lists(drain)
    finally:
        drain.stop()
        if not drain.eof:
            cat.kill()
            drain.wait()
        feeder.join()
        cat.stdout.close()
        cat.wait()
    if failed:
        raise GitError(["ls-tree", "-r", "--object-only", failed[0]], 128, "cannot list the notes tree")


def _feed_listings(git: Git, commits: list[str], sink: IO[bytes], env: dict[str, str], failed: list[str]) -> Any:
    """A thread running ``ls-tree`` of each commit in turn with ``sink`` (cat-file's stdin) as its output, then
    closing it; commits git could not list go to ``failed``."""
    import threading

    def run() -> None:
        try:
            for commit in commits:
                code = subprocess.call(["git", "ls-tree", "-r", "--object-only", commit], cwd=git.root, stdout=sink,
                                       stderr=subprocess.DEVNULL, env=env)  # fmt: skip
                if code != 0:
                    failed.append(commit)
        finally:
            with contextlib.suppress(OSError):
                sink.close()

    thread = threading.Thread(target=run, name="ls-tree-feeder", daemon=True)
    thread.start()
    return thread


# git's cache of delta bases for that one cat-file (default 96 MB). Notes packed in long delta chains and read
# in tree order miss the default one again and again: at 1M events git took 24 s of CPU with it, 7 s with 192 MB.
DELTA_BASE_CACHE = "160m"
_PIPE_BYTES = 1 << 20  # a bigger pipe: fewer, larger reads
_READ_BATCH = 1 << 18  # what the reader thread gathers before handing it over


def _with_config(env: dict[str, str], key: str, value: str) -> dict[str, str]:
    """``env`` with one more git config setting (``GIT_CONFIG_COUNT``, after any the caller's environment has)."""
    count = env.get("GIT_CONFIG_COUNT", "0")
    n = int(count) if count.isdigit() else 0
    return {**env, "GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": key, f"GIT_CONFIG_VALUE_{n}": value}


class _Drain:
    """A thread that reads a pipe into a bounded queue (``os.read`` releases the GIL), in batches of at least
    :data:`_READ_BATCH` (but the last): at most 64 batches ahead."""

    def __init__(self, fd: int) -> None:
        import queue
        import threading

        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # Linux; elsewhere the default pipe
        self.fd = fd
        self.eof = False
        self.chunks: queue.Queue[bytes] = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cat-file-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pieces: list[bytes] = []
        size = 0
        try:
            while not self._stop.is_set():
                more = os.read(self.fd, _PIPE_BYTES)
                if not more:
                    break
                pieces.append(more)
                size += len(more)
                if size >= _READ_BATCH:  # git writes a few KB at a time: one step of the queue per batch of them
                    self.chunks.put(b"".join(pieces))
                    pieces, size = [], 0
        except OSError:
            pass
        if self._stop.is_set():
            return
        if pieces:
            self.chunks.put(b"".join(pieces))
        self.chunks.put(b"")  # the end

    def take(self) -> bytes:
        """What was read so far, up to about 1 MB (waits for some); b"" at the end. (Bounded: big buffers of
        changing sizes make malloc keep memory it could give back.)"""
        if self.eof:
            return b""
        got = [self.chunks.get()]
        while got[-1] and len(got) * _READ_BATCH < _PIPE_BYTES and not self.chunks.empty():
            got.append(self.chunks.get())
        if not got[-1]:
            self.eof = True
        return b"".join(got)

    def stop(self) -> None:
        self._stop.set()

    def wait(self) -> None:
        """After the writer was killed: take what the thread still holds until it ends."""
        import queue

        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.chunks.get(timeout=0.05)


def _batch_blob_lists(drain: _Drain) -> Iterator[list[bytes]]:
    """The blobs of ``cat-file --batch`` output (``<name> <type> <size>``, the content, a newline), a list per
    read: those whole in it. Entries that are not blobs, and ``<name> missing`` lines, are passed over."""
    buf = b""
    while more := drain.take():
        buf += more
        blobs: list[bytes] = []
        pos = 0
        while (nl := buf.find(b"\n", pos)) >= 0:
            header = buf[pos:nl].split()
            if len(header) != 3:  # "<name> missing" (e.g. a submodule entry in a hostile tree)
                pos = nl + 1
                continue
            end = nl + 1 + int(header[2])
            if len(buf) < end + 1:  # the rest comes with the next read
                break
            if header[1] == b"blob":
                blobs.append(buf[nl + 1 : end])
            pos = end + 1
        buf = buf[pos:]
        if blobs:
            yield blobs
    if b"\n" in buf:  # a header whose content never came
        raise GitError(["cat-file", "--batch"], -1, "truncated output")


def _git_env() -> dict[str, str]:
    from experiment_core.gitio import _env

    return _env()


@dataclass
class _Snapshot:
    """What a full read knows: events by id (first copy seen), skipped lines."""

    by_id: dict[str, Event]
    skipped: int

    def add(self, lines: list[bytes]) -> None:
        got, bad = decode_lines(lines)
        self.skipped += bad
        by_id = self.by_id
        for event, _line in got:
            by_id.setdefault(event["id"], event)

    def sorted_events(self) -> list[Event]:
        events = list(self.by_id.values())
        events.sort(key=lambda e: (e["ts"], e["id"]))
        return events


def _read_uncached(git: Git, commit: str | Sequence[str]) -> _Snapshot:
    snap = _Snapshot({}, 0)
    pending: list[bytes] = []
    pending_bytes = 0
    for blob in _iter_note_blobs(git, commit):
        pending.extend(_split_lines(blob))
        pending_bytes += len(blob)
        if pending_bytes >= _CHUNK_BYTES:  # decode while git keeps writing into the pipe
            snap.add(pending)
            pending, pending_bytes = [], 0
    snap.add(pending)
    return snap


def read(git: Git, ref: str | None = None, cache: bool = True) -> LedgerRead:
    """All valid events of the ledger (every ledger ref, :func:`refs.tips`), or of ``ref`` alone, deduplicated by
    id (rewritten commits and the legacy ref carry copies), sorted by time then id.

    With ``cache`` (the default) and no ``ref``, from the local index (:mod:`experiment_core.store.ledger_index`),
    brought forward from the notes first; commands that need one experiment, or only aggregates, read the index
    directly. ``cache=False`` reads the notes themselves: one ``for-each-ref``, one ``ls-tree`` per ref piped into
    one ``cat-file --batch`` (the oracle the index is tested against).
    """
    if cache and ref is None:
        from experiment_core.store import ledger_index

        return ledger_index.read_with(git, lambda index: LedgerRead(index.events(), index.skipped,
                                                                    index.notes_commit))  # fmt: skip
    if ref is None:
        tips = refs.tips(git)
    else:
        head = git.ref(ref)
        tips = {ref: head} if head else {}
    if not tips:
        return LedgerRead([], 0, None)
    snap = _read_uncached(git, list(tips.values()))
    return LedgerRead(snap.sorted_events(), snap.skipped, refs.token(tips) if ref is None else tips[ref])


def for_experiment(events: Iterable[Event], exp_id: str) -> list[Event]:
    return [e for e in events if e["exp"] == exp_id]


def count_unknown(events: Iterable[Event], known_ids: Iterable[str]) -> int:
    """Events naming an experiment the registry does not have (a remote's, a deleted one): analysis ignores them
    (it selects by id), this counts them for reports."""
    known = set(known_ids)
    return sum(1 for e in events if e["exp"] not in known)
