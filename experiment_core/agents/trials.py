"""Trials from an assistant's use of an experimented file, whatever the assistant (its adapter translates its hooks).

A **use** opens when an experimented command expands (keyed by session *and* prompt id, so a second use never
overwrites the first and concurrent sessions each keep their own) or, for an instruction file every session
loads, when a session starts. It closes at the session's next command, ``/clear``, the session's end, or after
:data:`IDLE_SECONDS` without an event (closed lazily by the next event of any session of this worktree). Closing
records one ``trial`` event per metric under the unit and arm this worktree runs (read from ``deploy/assign``'s
records, never drawn here); if the unit changed meanwhile (a branch checkout) the use is dropped with an alert.

State: ``<state dir>/agent/open/<key>.json`` per open use and ``agent/done/<key>`` once recorded (a resumed or
replayed session never counts twice; the event ids are derived from the key too), written atomically under one
flock per worktree. What reaches the ledger: metric values, the command's name, the assistant's name.

Standard library only at import (``json``, ``os``): the ledger and the registry load only when a use opens or
closes.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Usage = tuple[int, int, int]  # (turns, input tokens, output tokens)
    UsageReader = Callable[[str, float, float], "Usage | None"]

STATE_DIR = "experiment-hook"  # hookenv.STATE_DIR (not imported: keeps this module's import to os and json)
ACTIVE_FILE = "active"
IDLE_SECONDS = 30 * 60.0
BUILTIN = ("duration_s", "active_s", "turns", "tool_errors", "input_tokens", "output_tokens", "completed",
           "user_satisfaction")  # fmt: skip
METRIC_LINE = r"(?m)^\s*experiment-metric:\s*([A-Za-z_][A-Za-z0-9_.-]{0,63})\s*=\s*(\S+)\s*$"
RATE_PROMPT = r"^\s*/rate(?:\s+(\S+))?\s*$"  # regular expressions compiled on first use (not every event's)


def key_ok(text: object) -> bool:
    """A session or prompt id we can name a file after: ASCII letters, digits and dashes (a uuid)."""
    return isinstance(text, str) and 0 < len(text) <= 80 and text.isascii() and text.replace("-", "").isalnum()


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Worktree:
    """The worktree an assistant runs in, found from its cwd without a git process."""

    def __init__(self, root: str, git_dir: str) -> None:
        self.root = root
        self.git_dir = git_dir
        self.state = os.path.join(git_dir, STATE_DIR)
        self.agent = os.path.join(self.state, "agent")

    @classmethod
    def find(cls, cwd: str) -> Worktree | None:
        here = os.path.abspath(cwd)
        while True:
            dot_git = os.path.join(here, ".git")
            if os.path.isdir(dot_git):
                return cls(here, dot_git)
            if os.path.isfile(dot_git):
                try:
                    with open(dot_git, encoding="utf-8") as f:
                        line = f.readline().strip()
                except OSError:
                    return None
                return cls(here, os.path.join(here, line[7:].strip())) if line.startswith("gitdir:") else None
            parent = os.path.dirname(here)
            if parent == here:
                return None
            here = parent

    def active_units(self) -> dict[str, str]:
        """exp -> unit of every experiment this worktree runs (post-checkout's plain-text list)."""
        try:
            with open(os.path.join(self.state, ACTIVE_FILE), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0] and parts[1]:
                out[parts[0]] = parts[1]
        return out

    def arm_of(self, exp: str, unit: str) -> str | None:
        data = read_json(os.path.join(self.state, "units", unit + ".json"))
        entry = data.get(exp) if isinstance(data, dict) else None
        arm = entry.get("arm") if isinstance(entry, dict) else None
        return arm if arm in ("control", "treatment") else None


# ---- small files ----------------------------------------------------------------------------------------
def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path: str, data: Any) -> None:
    """Atomic: a temporary file in the same directory, fsynced, then renamed over."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class locked:  # used as ``with locked(wt):``; no contextlib on the hook's path
    """One handler of this worktree at a time (flock: released by the kernel if the handler dies)."""

    def __init__(self, wt: Worktree) -> None:
        self.path = os.path.join(wt.agent, "lock")
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor drops the flock


def trial_key(session: str, prompt: str, exp: str) -> str:
    return f"{session}.{prompt}.{exp}"


def open_uses(wt: Worktree, session: str | None = None) -> list[dict[str, Any]]:
    """The open uses of this worktree (of one session when given), oldest first."""
    directory = os.path.join(wt.agent, "open")
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    uses = []
    for name in names:
        if name.endswith(".json") and (session is None or name.startswith(session + ".")):
            use = read_json(os.path.join(directory, name))
            if isinstance(use, dict) and isinstance(use.get("key"), str) and isinstance(use.get("started"), float):
                uses.append(use)
    return sorted(uses, key=lambda u: u["opened"])


def save_use(wt: Worktree, use: Mapping[str, Any]) -> None:
    write_json(os.path.join(wt.agent, "open", use["key"] + ".json"), use)


def is_done(wt: Worktree, key: str) -> bool:
    return os.path.exists(os.path.join(wt.agent, "done", key))


def mark_done(wt: Worktree, key: str) -> bool:
    """True the first time only (O_EXCL)."""
    directory = os.path.join(wt.agent, "done")
    os.makedirs(directory, exist_ok=True)
    try:
        os.close(os.open(os.path.join(directory, key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


# ---- a use's life ---------------------------------------------------------------------------------------
def new_use(key: str, exp: str, unit: str, arm: str, kind: str, command: str, now: float,
            transcript: str, agent: str) -> dict[str, Any]:  # fmt: skip
    """A use's state: a session's ``started`` (0.0) and ``turn_start`` (None) wait for its first prompt."""
    started = now if kind == "command" else None
    return {"key": key, "exp": exp, "unit": unit, "arm": arm, "kind": kind, "command": command, "agent": agent,
            "opened": now, "started": started if started is not None else 0.0, "prompted": kind == "command",
            "last": now, "turn_start": started, "first_stop": None, "active_s": 0.0, "stops": 0, "tool_errors": 0,
            "failed": False, "metrics": {}, "transcript": transcript}  # fmt: skip


def on_prompt(use: dict[str, Any], now: float) -> None:
    if not use["prompted"]:
        use["prompted"], use["started"] = True, now
    use["turn_start"] = now
    use["last"] = now


def on_stop(use: dict[str, Any], now: float, message: str, failed: bool) -> None:
    """The assistant ended its turn: the wait ends, its working time adds up, its message's metric lines count."""
    if use["turn_start"] is not None:
        use["active_s"] += max(0.0, now - use["turn_start"])
        if use["first_stop"] is None and use["prompted"]:
            use["first_stop"] = now
    use["turn_start"] = None
    use["stops"] += 1
    use["failed"] = use["failed"] or failed
    use["metrics"] = metric_lines(message)
    use["last"] = now


def metric_lines(message: str) -> dict[str, float]:
    """``experiment-metric: NAME=VALUE`` lines of a final message (finite numbers; built-in names are ours)."""
    import math
    import re

    out: dict[str, float] = {}
    for name, raw in re.findall(METRIC_LINE, message or ""):
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isfinite(value) and name not in BUILTIN:
            out[name] = value
    return out


def metrics_of(use: Mapping[str, Any], usage: Usage) -> dict[str, float]:
    """A closed use's numbers (``duration_s`` and ``active_s`` only when the assistant stopped at least once)."""
    turns, tokens_in, tokens_out = usage
    completed = use["first_stop"] is not None and not use["failed"]
    out: dict[str, float] = {"turns": turns, "tool_errors": use["tool_errors"], "input_tokens": tokens_in,
                             "output_tokens": tokens_out, "completed": 1 if completed else 0}  # fmt: skip
    if use["first_stop"] is not None:
        out["duration_s"] = round(use["first_stop"] - use["started"], 3)
        out["active_s"] = round(use["active_s"], 3)
    out.update(use["metrics"])
    return out


def close(wt: Worktree, use: Mapping[str, Any], end: float, read_usage: UsageReader) -> list[dict[str, Any]]:
    """Record a use (once) and forget it; returns the events written. The ledger first, then the marker: a
    handler killed in between (SessionEnd's hooks share 1.5 s) leaves the use to be recorded again, and its
    trial events' ids, derived from the use, make the second write a duplicate readers drop."""
    path = os.path.join(wt.agent, "open", use["key"] + ".json")
    if not use["prompted"] or is_done(wt, use["key"]):
        unlink(path)
        return []  # a session that was never prompted used nothing; a recorded use never counts twice
    if wt.active_units().get(use["exp"]) != use["unit"]:
        message = f"a branch checkout during a use of {use['command']} changed the unit; that use is dropped"
        events = [alert(use["exp"], "dropped_trial", message)]
    else:
        usage = read_usage(use["transcript"], use["started"], end)
        if usage is None:
            message = f"the assistant's transcript of a use of {use['command']} could not be read; no trial"
            events = [alert(use["exp"], "unreadable_transcript", message)]
        else:
            events = trial_events(use, metrics_of(use, usage))
    append(wt, events)
    mark_done(wt, use["key"])
    unlink(path)
    return events


def alert(exp: str, kind: str, message: str) -> dict[str, Any]:
    from experiment_core.store import ledger

    return ledger.make_event("alert", exp, kind=kind, message=message)


def trial_events(use: Mapping[str, Any], metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """One trial event per metric; the id is derived from the use and the metric, so a replay is a duplicate."""
    import uuid

    from experiment_core.store import ledger

    events = []
    use_id = uuid.uuid5(uuid.NAMESPACE_URL, f"experiment-hook:{use['key']}").hex[:16]  # opaque: ties a use's metrics
    for name, value in sorted(metrics.items()):
        event = ledger.make_event("trial", use["exp"], arm=use["arm"], metric=name, value=value, unit=use["unit"],
                                  exit_code=None, commit=None, source="agent", agent=use["agent"],
                                  command=use["command"], use=use_id)  # fmt: skip
        event["id"] = uuid.uuid5(uuid.NAMESPACE_URL, f"experiment-hook:{use['key']}:{name}").hex
        events.append(event)
    return events


def append(wt: Worktree, events: list[dict[str, Any]]) -> None:
    if not events:
        return
    from pathlib import Path

    from experiment_core.gitio import Git
    from experiment_core.store import ledger

    ledger.append(Git(Path(wt.root)), events)


def close_idle(wt: Worktree, now: float, read_usage: UsageReader) -> None:
    """Uses of any session idle for :data:`IDLE_SECONDS` end at their last event."""
    for use in open_uses(wt):
        if now - use["last"] > IDLE_SECONDS:
            close(wt, use, use["last"], read_usage)


def remember_last(wt: Worktree, use: Mapping[str, Any]) -> None:
    """The use ``/rate`` and ``experiment-hook rate`` score: the newest of this worktree, per experiment."""
    path = os.path.join(wt.agent, "last.json")
    last = read_json(path)
    last = last if isinstance(last, dict) else {}
    last[use["exp"]] = {k: use[k] for k in ("key", "exp", "unit", "arm", "command", "agent", "opened")}
    write_json(path, last)


def rate(wt: Worktree, score: float, exp: str | None = None) -> dict[str, Any] | None:
    """Record ``user_satisfaction`` for the last use (of ``exp``); the event, or None when there is none."""
    from experiment_core.store import ledger

    last = read_json(os.path.join(wt.agent, "last.json"))
    uses = [u for u in (last.values() if isinstance(last, dict) else []) if isinstance(u, dict)]
    uses = [u for u in uses if exp is None or u.get("exp") == exp]
    if not uses:
        return None
    use = max(uses, key=lambda u: float(u.get("opened", 0)))
    event = ledger.make_event("trial", use["exp"], arm=use["arm"], metric="user_satisfaction", value=score,
                              unit=use["unit"], exit_code=None, commit=None, source="agent", agent=use["agent"],
                              command=use["command"])  # fmt: skip
    append(wt, [event])
    return event


# ---- one event of an assistant, in its adapter's words ----------------------------------------------------
class Hook:
    """What an adapter hands over. ``kind``: ``start`` (``source``: startup, resume, clear, compact, fork),
    ``prompt`` (``text``: the prompt, read for ``/rate`` only), ``expand`` (``command``), ``stop`` (``text``: the
    final message), ``fail`` (an API error ended the turn), ``tool_error``, ``end``."""

    def __init__(self, kind: str, session: str, now: float, prompt: str = "", command: str = "", source: str = "",
                 text: str = "", transcript: str = "") -> None:  # fmt: skip
        self.kind, self.session, self.now, self.prompt = kind, session, now, prompt
        self.command, self.source, self.text, self.transcript = command, source, text, transcript


class Adapter:
    """One assistant: its name, which experimented file a command or a session uses, and its usage reader."""

    name = ""

    def uses_command(self, target: str, command: str) -> bool:
        raise NotImplementedError

    def loads_always(self, target: str) -> bool:
        raise NotImplementedError

    def read_usage(self, transcript: str, start: float, end: float) -> Usage | None:
        raise NotImplementedError


def agent_experiments(wt: Worktree, units: Mapping[str, str]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(exp, unit, arm, targets) of each running ``metric.source: agent`` experiment this worktree runs. Cached in
    ``agent/experiments.json`` keyed by the registry's and the unit list's stat, so an event does not import the
    registry's parser; a broken registry reads as none (the git hooks and the commands report it, not the
    assistant's hooks)."""
    key = [stat_key(os.path.join(wt.root, "experiments.yaml")), stat_key(os.path.join(wt.state, ACTIVE_FILE))]
    cache_path = os.path.join(wt.agent, "experiments.json")
    cached = read_json(cache_path)
    if isinstance(cached, dict) and cached.get("key") == key and isinstance(cached.get("experiments"), list):
        return [(e[0], e[1], e[2], tuple(e[3])) for e in cached["experiments"]]
    found = parse_agent_experiments(wt, units)
    write_json(cache_path, {"key": key, "experiments": [[e, u, a, list(t)] for e, u, a, t in found]})
    return found


def stat_key(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns]


def parse_agent_experiments(wt: Worktree, units: Mapping[str, str]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    import sys
    from pathlib import Path

    if sys.flags.no_site:  # started with -S (the installed handler): the YAML parser lives in site-packages
        import site

        site.main()

    from experiment_core.errors import UserError
    from experiment_core.store.spec import load_registry

    try:
        registry = load_registry(Path(wt.root), Path(wt.state))
    except (UserError, OSError):
        return []
    out = []
    for exp in registry.experiments:
        unit = units.get(exp.id)
        arm = wt.arm_of(exp.id, unit) if unit else None
        if exp.running and exp.metric.source == "agent" and unit and arm:
            out.append((exp.id, unit, arm, tuple(exp.files)))
    return out


def handle(wt: Worktree, hook: Hook, adapter: Adapter) -> str | None:
    """Apply one event; returns the reason to block the prompt with (``/rate`` only), else None."""
    units = wt.active_units()
    if not units and not os.path.isdir(os.path.join(wt.agent, "open")):
        return None  # nothing runs here: cost nothing, say nothing
    if hook.kind == "prompt" and hook.text.lstrip().startswith("/rate") and is_rate(hook.text):
        rated_here = os.path.exists(os.path.join(wt.agent, "last.json")) or agent_experiments(wt, units)
        return rate_prompt(wt, hook.text) if rated_here else None  # no assistant experiment here: not ours
    with locked(wt):
        close_idle(wt, hook.now, adapter.read_usage)
        if hook.kind in ("end", "start") and (hook.kind == "end" or hook.source == "clear"):
            for use in open_uses(wt, hook.session):
                close(wt, use, hook.now, adapter.read_usage)
        if hook.kind == "start" and hook.source in ("startup", "clear"):
            open_sessions(wt, hook, adapter, units)
        elif hook.kind == "expand":
            expand(wt, hook, adapter, units)
        elif hook.kind in ("prompt", "stop", "fail", "tool_error"):
            for use in open_uses(wt, hook.session):
                update(use, hook)
                save_use(wt, use)
    return None


def update(use: dict[str, Any], hook: Hook) -> None:
    if hook.kind == "prompt":
        on_prompt(use, hook.now)
    elif hook.kind in ("stop", "fail"):
        on_stop(use, hook.now, hook.text, hook.kind == "fail")
    else:
        use["tool_errors"] += 1
        use["last"] = hook.now


def open_sessions(wt: Worktree, hook: Hook, adapter: Adapter, units: Mapping[str, str]) -> None:
    """A session starts: a use of every experimented instruction file (once per session id: a resume, a fork
    or a compaction continues it)."""
    for exp, unit, arm, targets in agent_experiments(wt, units):
        target = next((t for t in targets if adapter.loads_always(t)), None)
        key = trial_key(hook.session, "session", exp)
        if target is not None and not is_done(wt, key):
            use = new_use(key, exp, unit, arm, "session", os.path.basename(target), hook.now, hook.transcript,
                          adapter.name)  # fmt: skip
            save_use(wt, use)
            remember_last(wt, use)


def expand(wt: Worktree, hook: Hook, adapter: Adapter, units: Mapping[str, str]) -> None:
    """A command expands: the session's previous command use ends here; a use of an experimented one begins."""
    for use in open_uses(wt, hook.session):
        if use["kind"] == "command":
            close(wt, use, hook.now, adapter.read_usage)
        else:
            on_prompt(use, hook.now)
            save_use(wt, use)
    for exp, unit, arm, targets in agent_experiments(wt, units):
        if not any(adapter.uses_command(t, hook.command) for t in targets):
            continue
        key = trial_key(hook.session, hook.prompt, exp)
        if not is_done(wt, key) and not os.path.exists(os.path.join(wt.agent, "open", key + ".json")):
            use = new_use(key, exp, unit, arm, "command", hook.command, hook.now, hook.transcript, adapter.name)
            save_use(wt, use)
            remember_last(wt, use)


def is_rate(text: str) -> bool:
    import re

    return re.match(RATE_PROMPT, text) is not None


def rate_prompt(wt: Worktree, text: str) -> str:
    """``/rate N``: record the score, and the one-line reason the prompt is blocked with (no model call)."""
    import re

    m = re.match(RATE_PROMPT, text)
    raw = (m.group(1) if m else None) or ""
    if raw not in ("1", "2", "3", "4", "5"):
        return "experiment-hook: nothing recorded; rate the last use from 1 (poor) to 5 (great), e.g. /rate 4"
    with locked(wt):
        event = rate(wt, int(raw))
    if event is None:
        return "experiment-hook: nothing recorded; no use of an experimented command to rate in this worktree yet"
    return f"experiment-hook: recorded user_satisfaction={raw} for the last use of {event['command']} ({event['exp']})"
