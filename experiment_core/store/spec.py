"""The experiment registry: ``experiments.yaml`` at the repository root.

Loading validates everything (types, allowed values, unknown keys, paths that must stay inside the work tree)
and raises :class:`UserError` with one line naming the file, the key and the fix. Writes go through ruamel.yaml's
round-trip mode so a user's comments, key order and quoting survive, and are re-validated before an atomic
replace. ruamel.yaml is imported only when the YAML must be parsed or written: hooks read a JSON cache of the
parsed file keyed by its stat (see :func:`load_registry`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from experiment_core.clock import format_ts, parse_ts
from experiment_core.errors import UserError
from experiment_core.fsutil import atomic_write, atomic_write_text

REGISTRY_NAME = "experiments.yaml"
TREATMENT_DIR = ".experiments"

DIRECTIONS = ("lower", "higher")
STATUSES = ("running", "promoted", "rolled_back", "expired", "draft")
ANALYSES = ("sequential", "fixed")
TESTS = ("welch", "student", "mann-whitney")
ON_EXPIRY = ("rollback", "promote_if_not_worse")
BLOCK_BY = ("machine", "none")
DECISION_COMMITS = ("branch", "current")
FACTOR_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)x$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
METRIC_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
DEFAULT_METRIC = "time_to_complete"
SOURCES = ("command", "agent")  # metric.source: a timed command (post-commit, run) or the assistant's own use


@dataclass(frozen=True)
class Metric:
    name: str = DEFAULT_METRIC
    command: str | None = None
    direction: str = "lower"
    unit: str = "s"
    guardrail: bool = False  # secondary only: a regression beyond max_regression blocks promotion, rolls back
    max_regression: float | None = None  # percent; None: the experiment's targets.max_regression
    alert_below: float | str | None = None  # a number (absolute floor of the treatment mean) or "0.5x" (of control)
    alert_above: float | str | None = None  # a number (absolute ceiling) or "2x" (a multiple of control's mean)
    source: str = "command"  # primary only: "agent" when trials come from an assistant's hooks (experiment_core.agents)


@dataclass(frozen=True)
class Targets:
    improvement_threshold: float = 15.0
    max_regression: float = 10.0
    alpha: float = 0.05


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str
    files: Mapping[str, str]
    metric: Metric = field(default_factory=Metric)
    hypothesis: str = ""
    status: str = "running"
    created: str = ""
    secondary: tuple[Metric, ...] = ()
    targets: Targets = field(default_factory=Targets)
    sample_size: int = 10
    max_duration_days: float = 14.0
    auto_promote: bool = True
    auto_rollback: bool = True
    split: float = 0.5
    analysis: str = "sequential"
    test: str = "welch"
    on_expiry: str = "rollback"
    timeout: float = 600.0
    foreground: bool = False
    block_by: str = "machine"  # compare within machines (and run's pairs) when possible; "none": pooled

    @property
    def guardrails(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.secondary if m.guardrail)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def created_at(self) -> dt.datetime | None:
        return parse_ts(self.created)


@dataclass(frozen=True)
class Settings:
    """Repository-wide settings (top-level ``settings:`` key)."""

    sync_on_push: bool = True
    block_push_on_decision: bool = False
    remote: str | None = None
    decision_commits: str = "branch"  # "branch": a branch of its own off the remote's default branch; "current"
    base_branch: str | None = None  # what decision branches are built on (default: <remote>/HEAD)
    push_options: tuple[str, ...] = ()  # `git push -o` options for a decision branch's push


@dataclass(frozen=True)
class Registry:
    path: Path
    experiments: tuple[Experiment, ...] = ()
    settings: Settings = field(default_factory=Settings)

    def get(self, exp_id: str) -> Experiment:
        for exp in self.experiments:
            if exp.id == exp_id:
                return exp
        known = ", ".join(e.id for e in self.experiments) or "none yet"
        raise UserError(
            str(exp_id), f"unknown experiment (known: {known})", "run `experiment-hook status` to list them"
        )

    def running(self) -> list[Experiment]:
        return [e for e in self.experiments if e.running]


# ---- time ------------------------------------------------------------------------------------------------


# ---- validation helpers ----------------------------------------------------------------------------------
class _Ctx:
    """Where we are in the file, for error lines."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, what: str, fix: str) -> UserError:
        return UserError(f"{self.file}: {where}" if where else self.file, what, fix)


def _check_keys(ctx: _Ctx, where: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
            raise ctx.fail(f"{where}.{key}" if where else str(key), "unknown key", hint)


def _str(ctx: _Ctx, where: str, value: Any, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ctx.fail(where, f"expected a non-empty text, got {value!r}", "quote it as a string")
    return value


def _choice(ctx: _Ctx, where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ctx.fail(where, f"{value!r} is not one of {', '.join(choices)}", f"set it to one of {', '.join(choices)}")
    return str(value)


def _number(
    ctx: _Ctx, where: str, value: Any, *, lo: float | None = None, hi: float | None = None, integer: bool = False
) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer and not float(value).is_integer():
        ok = False
    if ok and value != value:  # NaN
        ok = False
    if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        ok = False
    if not ok:
        kind = "an integer" if integer else "a number"
        bounds = ""
        if lo is not None and hi is not None:
            bounds = f" between {lo:g} and {hi:g}"
        elif lo is not None:
            bounds = f" ≥ {lo:g}"
        raise ctx.fail(where, f"expected {kind}{bounds}, got {value!r}", f"write {kind}{bounds}")
    return float(value)


def _bool(ctx: _Ctx, where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ctx.fail(where, f"expected true or false, got {value!r}", "write true or false")
    return value


def check_repo_path(root: Path, rel: Any, where: str) -> str:
    """Validate a path named in the registry: relative, inside the work tree, not under .git, no symlink escape.

    Returns the normalized POSIX path. ``where`` names the file/key for the error line.
    """
    if not isinstance(rel, str) or not rel.strip():
        raise UserError(where, f"expected a relative file path, got {rel!r}", "name a file inside the repository")
    if "\0" in rel or "\\" in rel:
        raise UserError(where, f"{rel!r} has a backslash or NUL", "use a plain relative path with / separators")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", rel):
        raise UserError(where, f"{rel!r} is an absolute path", "use a path relative to the repository root")
    if ".." in pure.parts:
        raise UserError(where, f"{rel!r} leaves the work tree through '..'", "use a path inside the repository")
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        raise UserError(where, f"{rel!r} is not a file", "name a file inside the repository")
    if parts[0].lower() == ".git":
        raise UserError(where, f"{rel!r} is inside .git", "name a tracked file of the work tree")
    norm = "/".join(parts)
    real_root = root.resolve()
    # Check every existing prefix: a symlinked directory or file must not lead outside the work tree.
    probe = root
    for part in parts:
        probe = probe / part
        if probe.is_symlink():
            target = probe.resolve()
            if target != real_root and real_root not in target.parents:
                raise UserError(where, f"{rel!r} goes through a symlink leaving the work tree", "name a real file")
    full = (root / norm).resolve()
    if real_root not in full.parents:
        raise UserError(where, f"{rel!r} is outside the work tree", "use a path inside the repository")
    if (root / norm).is_symlink():
        raise UserError(where, f"{rel!r} is a symlink", "experiment on the file it points to instead")
    return norm


# ---- parsing plain data into records ---------------------------------------------------------------------
METRIC_KEYS = (
    "name", "command", "direction", "unit", "guardrail", "max_regression", "alert_below", "alert_above", "source",
)  # fmt: skip
TARGET_KEYS = ("improvement_threshold", "max_regression", "alpha")
EXPERIMENT_KEYS = (
    "id", "name", "hypothesis", "status", "created", "files", "metric", "secondary", "targets", "sample_size",
    "max_duration_days", "auto_promote", "auto_rollback", "split", "analysis", "test", "on_expiry", "timeout",
    "foreground", "block_by",
)  # fmt: skip
SETTINGS_KEYS = ("sync_on_push", "block_push_on_decision", "remote", "decision_commits", "base_branch", "push_options")
TOP_KEYS = ("version", "settings", "experiments")


def _metric(ctx: _Ctx, where: str, data: Any, default_name: str | None) -> Metric:
    if isinstance(data, str) and default_name is None:
        data = {"name": data}
    if not isinstance(data, Mapping):
        raise ctx.fail(where, f"expected a mapping with keys {', '.join(METRIC_KEYS)}", "see the README's keys")
    _check_keys(ctx, where, data, METRIC_KEYS)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not METRIC_NAME_RE.match(name):
        raise ctx.fail(f"{where}.name", f"{name!r} is not a metric name", "use letters, digits, _ . -")
    command = data.get("command")
    if command is not None:
        command = _str(ctx, f"{where}.command", command, allow_empty=False)
    guardrail = _bool(ctx, f"{where}.guardrail", data.get("guardrail", False))
    if guardrail and default_name is not None:
        raise ctx.fail(f"{where}.guardrail", "the primary metric cannot be a guardrail",
                       "list the guardrail under secondary:, or set targets.max_regression")  # fmt: skip
    max_reg = data.get("max_regression")
    if max_reg is not None:
        max_reg = _number(ctx, f"{where}.max_regression", max_reg, lo=0)
    return Metric(
        name=name,
        command=command,
        direction=_choice(ctx, f"{where}.direction", data.get("direction", "lower"), DIRECTIONS),
        unit=_str(ctx, f"{where}.unit", data.get("unit", "s")),
        guardrail=guardrail,
        max_regression=max_reg,
        alert_below=_level(ctx, f"{where}.alert_below", data.get("alert_below")),
        alert_above=_level(ctx, f"{where}.alert_above", data.get("alert_above")),
        source=_choice(ctx, f"{where}.source", data.get("source", "command"), SOURCES),
    )


def _level(ctx: _Ctx, where: str, value: Any) -> float | str | None:
    """An alert level: a number (absolute), or ``"<k>x"`` (k times the control mean)."""
    if value is None:
        return None
    if isinstance(value, str):
        if FACTOR_RE.match(value.strip()):
            return value.strip()
        raise ctx.fail(where, f"{value!r} is not a level", "write a number (e.g. 0.5) or a multiple of control (2x)")
    return _number(ctx, where, value)


def _files(ctx: _Ctx, root: Path, where: str, files_raw: Any) -> dict[str, str]:
    """An experiment's ``files``: target path -> treatment path, both inside the work tree and different."""
    if not isinstance(files_raw, Mapping) or not files_raw:
        raise ctx.fail(f"{where}.files", "expected a mapping target path -> treatment path", "list a file")
    files: dict[str, str] = {}
    for target, treatment in files_raw.items():
        t = check_repo_path(root, target, f"{ctx.file}: {where}.files")
        files[t] = check_repo_path(root, treatment, f"{ctx.file}: {where}.files.{target}")
        if files[t] == t:
            raise ctx.fail(f"{where}.files.{target}", "treatment equals the target", "use .experiments/<id>/<path>")
    return files


def _targets(ctx: _Ctx, where: str, targets_raw: Any) -> Targets:
    if not isinstance(targets_raw, Mapping):
        raise ctx.fail(f"{where}.targets", "expected a mapping", f"keys: {', '.join(TARGET_KEYS)}")
    _check_keys(ctx, f"{where}.targets", targets_raw, TARGET_KEYS)
    d = Targets()
    return Targets(
        improvement_threshold=_number(
            ctx, f"{where}.targets.improvement_threshold",
            targets_raw.get("improvement_threshold", d.improvement_threshold), lo=0,
        ),
        max_regression=_number(
            ctx, f"{where}.targets.max_regression", targets_raw.get("max_regression", d.max_regression), lo=0
        ),
        alpha=_number(ctx, f"{where}.targets.alpha", targets_raw.get("alpha", d.alpha), lo=1e-9, hi=0.5),
    )  # fmt: skip


def _experiment(ctx: _Ctx, root: Path, where: str, data: Any) -> Experiment:
    if not isinstance(data, Mapping):
        raise ctx.fail(where, "expected a mapping (one experiment)", "see the README's experiments.yaml keys")
    exp_id = data.get("id")
    if not isinstance(exp_id, str) or not ID_RE.match(exp_id):
        raise ctx.fail(f"{where}.id", f"{exp_id!r} is not a valid id", "use letters, digits, . _ -")
    where = f"{where} ({exp_id})"
    _check_keys(ctx, where, data, EXPERIMENT_KEYS)
    files = _files(ctx, root, where, data.get("files"))
    targets = _targets(ctx, where, data.get("targets", {}) or {})
    secondary_raw = data.get("secondary", []) or []
    if not isinstance(secondary_raw, list):
        raise ctx.fail(f"{where}.secondary", "expected a list of metrics", "write a YAML list")
    secondary = tuple(_metric(ctx, f"{where}.secondary[{i}]", m, None) for i, m in enumerate(secondary_raw))
    created = data.get("created", "")
    if created and parse_ts(str(created)) is None:
        raise ctx.fail(f"{where}.created", f"{created!r} is not an ISO-8601 time", "write e.g. 2026-11-24T10:00:00Z")
    e = Experiment
    return Experiment(
        id=exp_id,
        name=_str(ctx, f"{where}.name", data.get("name", exp_id)),
        hypothesis=_str(ctx, f"{where}.hypothesis", data.get("hypothesis", "") or ""),
        status=_choice(ctx, f"{where}.status", data.get("status", "running"), STATUSES),
        created=str(created or ""),
        files=files,
        metric=_metric(ctx, f"{where}.metric", data.get("metric", {}) or {}, DEFAULT_METRIC),
        secondary=secondary,
        targets=targets,
        sample_size=int(_number(ctx, f"{where}.sample_size", data.get("sample_size", 10), lo=2, integer=True)),
        max_duration_days=_number(ctx, f"{where}.max_duration_days", data.get("max_duration_days", 14), lo=0),
        auto_promote=_bool(ctx, f"{where}.auto_promote", data.get("auto_promote", True)),
        auto_rollback=_bool(ctx, f"{where}.auto_rollback", data.get("auto_rollback", True)),
        split=_number(ctx, f"{where}.split", data.get("split", 0.5), lo=0.01, hi=0.99),
        analysis=_choice(ctx, f"{where}.analysis", data.get("analysis", e.analysis), ANALYSES),
        test=_choice(ctx, f"{where}.test", data.get("test", e.test), TESTS),
        on_expiry=_choice(ctx, f"{where}.on_expiry", data.get("on_expiry", e.on_expiry), ON_EXPIRY),
        timeout=_number(ctx, f"{where}.timeout", data.get("timeout", e.timeout), lo=0.001),
        foreground=_bool(ctx, f"{where}.foreground", data.get("foreground", False)),
        block_by=_choice(ctx, f"{where}.block_by", data.get("block_by", e.block_by), BLOCK_BY),
    )


def _settings(ctx: _Ctx, raw: Mapping[str, Any]) -> Settings:
    remote, base = raw.get("remote"), raw.get("base_branch")
    options = raw.get("push_options", []) or []
    if isinstance(options, str):
        options = [options]
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() and "\n" not in o for o in options):
        raise ctx.fail("settings.push_options", f"expected a list of push options, got {options!r}",
                       "write e.g. [merge_request.create, merge_request.remove_source_branch]")  # fmt: skip
    if base is not None and (not isinstance(base, str) or not base.strip() or base.startswith("-") or ".." in base):
        raise ctx.fail("settings.base_branch", f"{base!r} is not a branch name", "name the branch, e.g. main")
    return Settings(
        sync_on_push=_bool(ctx, "settings.sync_on_push", raw.get("sync_on_push", True)),
        block_push_on_decision=_bool(ctx, "settings.block_push_on_decision", raw.get("block_push_on_decision", False)),
        remote=None if remote is None else _str(ctx, "settings.remote", remote, allow_empty=False),
        decision_commits=_choice(ctx, "settings.decision_commits", raw.get("decision_commits", "branch"),
                                 DECISION_COMMITS),
        base_branch=None if base is None else base.strip(),
        push_options=tuple(o.strip() for o in options),
    )


def parse_registry(root: Path, data: Any, file: str = REGISTRY_NAME) -> Registry:
    """Validate plain data (as loaded from YAML) into a :class:`Registry`."""
    ctx = _Ctx(file)
    path = root / REGISTRY_NAME
    if data is None:
        return Registry(path)
    if not isinstance(data, Mapping):
        raise ctx.fail("", "expected a mapping with an 'experiments:' list at the top", "see the README's example")
    _check_keys(ctx, "", data, TOP_KEYS)
    settings_raw = data.get("settings", {}) or {}
    if not isinstance(settings_raw, Mapping):
        raise ctx.fail("settings", "expected a mapping", f"keys: {', '.join(SETTINGS_KEYS)}")
    _check_keys(ctx, "settings", settings_raw, SETTINGS_KEYS)
    settings = _settings(ctx, settings_raw)
    items = data.get("experiments", []) or []
    if not isinstance(items, list):
        raise ctx.fail("experiments", "expected a list of experiments", "write each experiment as '- id: ...'")
    experiments = tuple(_experiment(ctx, root, f"experiments[{i}]", item) for i, item in enumerate(items))
    seen: set[str] = set()
    for exp in experiments:
        if exp.id in seen:
            raise ctx.fail(f"experiments ({exp.id})", "duplicate id", "give each experiment its own id")
        seen.add(exp.id)
    return Registry(path, experiments, settings)


# ---- YAML I/O (ruamel imported lazily) -------------------------------------------------------------------
_CONFLICT_RE = re.compile(rb"^(<{7}|={7}|>{7})(\s|$)", re.MULTILINE)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, dt.datetime):
        return format_ts(obj if obj.tzinfo else obj.replace(tzinfo=dt.timezone.utc))
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    return str(obj)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, order and quoting kept
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _load_yaml_text(raw: bytes, file: str) -> Any:
    """Parse YAML in round-trip mode; one clear line for every way it can be broken."""
    m = _CONFLICT_RE.search(raw)
    if m:
        line = raw[: m.start()].count(b"\n") + 1
        raise UserError(f"{file}:{line}", "unresolved merge conflict markers", "resolve the conflict, then retry")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(file, f"not UTF-8 text ({exc.reason} at byte {exc.start})", "save it as UTF-8") from None
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise UserError(loc, f"broken YAML ({exc.problem or exc.context})", "fix the syntax there") from None
    except YAMLError as exc:
        raise UserError(file, f"broken YAML ({str(exc).splitlines()[0]})", "fix the syntax") from None


def _cache_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns]


def load_registry(root: Path, cache_dir: Path | None = None) -> Registry:
    """Load and validate ``experiments.yaml``; a missing file is an empty registry.

    With ``cache_dir`` (the local state directory), the parsed plain data is cached as JSON keyed by the file's
    stat, so a hook that runs on every commit does not import ruamel.yaml nor parse YAML again.
    """
    path = root / REGISTRY_NAME
    key = _cache_key(path)
    if key is None:
        return Registry(path)
    cache = cache_dir / "registry-cache.json" if cache_dir else None
    data: Any = None
    if cache is not None:
        try:
            cached = json.loads(cache.read_text())
            if cached.get("key") == key:
                data = cached["data"]
        except (OSError, ValueError, KeyError, AttributeError):
            data = None
    if data is None:
        data = _plain(_load_yaml_text(path.read_bytes(), REGISTRY_NAME))
        registry = parse_registry(root, data)
        if cache is not None:
            try:
                atomic_write_text(cache, json.dumps({"key": key, "data": data}))
            except OSError:
                pass
        return registry
    return parse_registry(root, data)


def edit_registry_text(root: Path, raw: bytes, change: Callable[[Any], None]) -> str:
    """Round-trip edit of registry text: comments, order and quoting kept; the result is validated."""
    doc = _load_yaml_text(raw, REGISTRY_NAME) if raw.strip() else None
    if doc is None:
        from ruamel.yaml.comments import CommentedMap

        doc = CommentedMap()
    if doc.get("experiments") is None:
        from ruamel.yaml.comments import CommentedSeq

        doc["experiments"] = CommentedSeq()
    change(doc)
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    text = buf.getvalue()
    parse_registry(root, _plain(_yaml().load(text)))  # never write a file we would refuse to read
    return text


def edit_registry(root: Path, change: Callable[[Any], None]) -> Registry:
    """Round-trip edit of ``experiments.yaml``, written atomically."""
    path = root / REGISTRY_NAME
    raw = path.read_bytes() if path.exists() else b""
    text = edit_registry_text(root, raw, change)
    atomic_write(path, text.encode("utf-8"))
    return parse_registry(root, _plain(_yaml().load(text)))


def add_experiment(root: Path, entry: Mapping[str, Any]) -> Registry:
    def change(doc: Any) -> None:
        doc["experiments"].append(_to_commented(entry))

    return edit_registry(root, change)


def status_change(exp_id: str, status: str) -> Callable[[Any], None]:
    """A registry edit that sets one experiment's ``status``."""
    if status not in STATUSES:
        raise ValueError(status)

    def change(doc: Any) -> None:
        for item in doc["experiments"]:
            if hasattr(item, "get") and item.get("id") == exp_id:
                item["status"] = status
                return
        raise UserError(exp_id, "unknown experiment", "run `experiment-hook status` to list them")

    return change


def set_status(root: Path, exp_id: str, status: str) -> Registry:
    return edit_registry(root, status_change(exp_id, status))


def _to_commented(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, Mapping):
        cm = CommentedMap()
        for k, v in value.items():
            cm[k] = _to_commented(v)
        return cm
    if isinstance(value, (list, tuple)):
        return CommentedSeq([_to_commented(v) for v in value])
    return value


def treatment_path(exp_id: str, target: str) -> str:
    return f"{TREATMENT_DIR}/{exp_id}/{target}"
