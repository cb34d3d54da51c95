"""Claude Code: its hooks as trial events, its settings file, its transcript's usage (facts checked with CLI 2.1.328).

The handlers live in ``.claude/settings.local.json`` (never committed), one entry per event, each running the
absolute interpreter ``install`` ran with on ``hooks/agent_claude.py`` and ending in :data:`MARKER`, the mark that
tells ours from the user's. ``install`` keeps every other key and hook; ``uninstall`` gives back the file's very
bytes when nobody changed it since, else removes exactly our entries.

Which file a command uses (``command_name`` of ``UserPromptExpansion``, checked with 2.1.328):
``.claude/commands/NAME.md`` is ``/NAME``, ``.claude/commands/DIR/NAME.md`` only ``/DIR:NAME``,
``.claude/skills/NAME/SKILL.md`` ``/NAME``, and a plugin kept in the repository and started with ``--plugin-dir``
(``<plugin>/commands/NAME.md``, ``<plugin>/skills/NAME/SKILL.md``) only ``/PLUGIN:NAME``, the name from its
``.claude-plugin/plugin.json``. ``CLAUDE.md``,
``.claude/CLAUDE.md`` and ``AGENTS.md`` are loaded by every session: a use is a session.

The transcript (``~/.claude/projects/<cwd>/<session>.jsonl``) is internal and changes between versions: read
defensively — an assistant line inside the use's window without a readable ``message.id`` and integer token counts
makes the use unreadable (no trial, never a 0); one response written on several lines counts once.
"""

from __future__ import annotations

import json
import os
import sys
import time

from experiment_core.agents import trials

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "claude"
SETTINGS = os.path.join(".claude", "settings.local.json")
MARKER = "#experiment-hook:agent-claude"
EVENTS = {"SessionStart": "start", "UserPromptSubmit": "prompt", "UserPromptExpansion": "expand", "Stop": "stop",
          "StopFailure": "fail", "PostToolUseFailure": "tool_error", "SessionEnd": "end"}  # fmt: skip
TIMEOUT = 10  # seconds Claude Code allows a handler (ours take milliseconds; SessionEnd's hooks share 1.5 s)
INSTRUCTION_FILES = ("CLAUDE.md", ".claude/CLAUDE.md", "AGENTS.md")
RECORD = "claude-settings.json"  # in the agent state dir: the settings file's bytes before install, and ours


# ---- hook payloads --------------------------------------------------------------------------------------
def to_hook(payload: Any, now: float) -> trials.Hook | None:
    """The neutral event of one payload; None for what is not a trial's business (or not well-formed)."""
    if not isinstance(payload, dict):
        return None
    kind = EVENTS.get(str(payload.get("hook_event_name")))
    session = payload.get("session_id")
    if kind is None or not isinstance(session, str) or not trials.key_ok(session):
        return None
    prompt = payload.get("prompt_id")
    prompt = prompt if isinstance(prompt, str) and trials.key_ok(prompt) else ""
    if kind == "expand" and not prompt:
        return None
    if kind == "tool_error" and payload.get("is_interrupt") is True:
        return None  # the person stopped the tool: not the variant's error
    text_key = {"prompt": "prompt", "stop": "last_assistant_message"}.get(kind, "")
    text = payload.get(text_key) if text_key else ""
    return trials.Hook(kind, session, now, prompt=prompt, command=str(payload.get("command_name") or ""),
                       source=str(payload.get("source") or ""), text=text if isinstance(text, str) else "",
                       transcript=str(payload.get("transcript_path") or ""))  # fmt: skip


class Claude(trials.Adapter):
    name = NAME

    def __init__(self, root: str) -> None:
        self.root = root

    def uses_command(self, target: str, command: str) -> bool:
        return command in self.command_names(target)

    def command_names(self, target: str) -> set[str]:
        """The names a command or skill file answers to (empty: not a command file)."""
        parts = target.split("/")
        if len(parts) >= 3 and parts[-1] == "SKILL.md" and parts[-3] == "skills":
            name, sub, prefix = parts[-2], [], parts[:-3]
        elif parts[-1].endswith(".md") and "commands" in parts[:-1]:
            i = len(parts) - 2 - parts[-2::-1].index("commands")
            name, sub, prefix = parts[-1][:-3], parts[i + 1 : -1], parts[:i]
        else:
            return set()
        if prefix == [".claude"]:
            return {":".join([*sub, name])}
        plugin = plugin_name(os.path.join(self.root, *prefix)) if prefix else ""
        return {f"{plugin}:{name}"} if plugin else set()

    def loads_always(self, target: str) -> bool:
        return target in INSTRUCTION_FILES

    def read_usage(self, transcript: str, start: float, end: float) -> trials.Usage | None:
        return read_usage(transcript, start, end)


def plugin_name(directory: str) -> str:
    """A plugin's name: ``.claude-plugin/plugin.json``'s ``name``, else its folder's."""
    data = trials.read_json(os.path.join(directory, ".claude-plugin", "plugin.json"))
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else os.path.basename(directory)


# ---- the transcript -------------------------------------------------------------------------------------
def timestamp(text: Any) -> float | None:
    import datetime as dt

    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def read_usage(transcript: str, start: float, end: float) -> trials.Usage | None:
    """(responses, input tokens, output tokens) of the assistant lines written in [start, end]; None when the
    file or a value inside the window cannot be read. A line that is not JSON (a write in progress) is skipped."""
    try:
        with open(transcript, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError):
        return None
    seen: dict[str, tuple[int, int]] = {}
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("type") != "assistant":
            continue
        ts = timestamp(obj.get("timestamp"))
        if ts is None:
            return None
        if not start <= ts <= end:
            continue
        message = obj.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
        msg_id = message.get("id") if isinstance(message, dict) else None
        if not isinstance(usage, dict) or not isinstance(msg_id, str):
            return None
        tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
        if type(tokens_in) is not int or type(tokens_out) is not int or tokens_in < 0 or tokens_out < 0:
            return None
        seen[msg_id] = (tokens_in, tokens_out)  # the same response on several lines: its last line counts
    return len(seen), sum(i for i, _ in seen.values()), sum(o for _, o in seen.values())


# ---- the handler ----------------------------------------------------------------------------------------
def handle(raw: bytes, cwd: str, now: float) -> str | None:
    """One hook call: the text to print (``/rate``'s block) or None."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    hook = to_hook(payload, now)
    if hook is None:
        return None
    where = payload.get("cwd") if isinstance(payload.get("cwd"), str) else cwd
    wt = trials.Worktree.find(where)
    if wt is None:
        return None
    reason = trials.handle(wt, hook, Claude(wt.root))
    return json.dumps({"decision": "block", "reason": reason}) if reason else None


def hook_now() -> float:
    """Now, or ``EXPERIMENT_HOOK_NOW`` (the clock's override, for tests and what-if runs)."""
    override = os.environ.get("EXPERIMENT_HOOK_NOW")
    if override:
        from experiment_core.clock import parse_ts

        moment = parse_ts(override)
        if moment is not None:
            return moment.timestamp()
    return time.time()


def main() -> int:
    """Entry of the shim: exit 0 always, print nothing but ``/rate``'s block; a failure of ours is one line in
    ``agent/last-error.txt`` of the state dir (when there is one), never on the assistant's screen."""
    try:
        now = hook_now()
        out = handle(sys.stdin.buffer.read(1 << 20), os.getcwd(), now)
        if out:
            sys.stdout.write(out + "\n")
    except Exception as exc:
        with_error(exc)
    return 0


def with_error(exc: BaseException) -> None:
    try:
        wt = trials.Worktree.find(os.getcwd())
        if wt is not None and os.path.isdir(wt.agent):
            with open(os.path.join(wt.agent, "last-error.txt"), "w", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {type(exc).__name__}: {exc}\n")
    except Exception:
        pass


# ---- .claude/settings.local.json ------------------------------------------------------------------------
def ours(entry: Any) -> bool:
    hooks = entry.get("hooks") if isinstance(entry, dict) else None
    return isinstance(hooks, list) and any(isinstance(h, dict) and MARKER in str(h.get("command", "")) for h in hooks)


def with_ours(data: dict[str, Any], command: str) -> dict[str, Any]:
    """``data`` with our handler once per event (ours replaced, every other entry and key kept in place)."""
    hooks = data.setdefault("hooks", {})
    for event in EVENTS:
        entries = [e for e in hooks.get(event, []) if not ours(e)]
        entries.append({"matcher": "", "hooks": [{"type": "command", "command": f"{command} {MARKER}",
                                                  "timeout": TIMEOUT}]})  # fmt: skip
        hooks[event] = entries
    return data


def without_ours(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with our entries gone; an event list or ``hooks`` left empty by that goes too."""
    hooks = data.get("hooks")
    if not isinstance(hooks, dict) or not any(isinstance(v, list) and any(map(ours, v)) for v in hooks.values()):
        return data
    for event in list(hooks):
        entries = hooks[event]
        if isinstance(entries, list) and any(ours(e) for e in entries):
            kept = [e for e in entries if not ours(e)]
            if kept:
                hooks[event] = kept
            else:
                del hooks[event]
    if not hooks:
        del data["hooks"]
    return data


def load_settings(path: str) -> tuple[bytes | None, dict[str, Any]]:
    """(the file's bytes or None, its object); a file that is not a JSON object is the user's to fix."""
    from experiment_core.errors import UserError

    try:
        with open(path, "rb") as f:
            raw: bytes | None = f.read()
    except FileNotFoundError:
        return None, {}
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise UserError(path, f"not valid JSON ({exc})", "fix or remove it, then retry") from None
    if not isinstance(data, dict) or not isinstance(data.get("hooks", {}), dict):
        raise UserError(path, "expected a JSON object (with a 'hooks' object)", "fix it, then retry")
    return raw, data


def digest(raw: bytes | None) -> str | None:
    import hashlib

    return None if raw is None else hashlib.sha256(raw).hexdigest()


def install_settings(root: str, agent_state: str, command: str) -> str:
    """Add our handlers to the worktree's settings file; returns what happened (``installed``/``updated``)."""
    from pathlib import Path

    from experiment_core.fsutil import atomic_write

    path = os.path.join(root, SETTINGS)
    raw, data = load_settings(path)
    record_path = os.path.join(agent_state, RECORD)
    record = trials.read_json(record_path)
    was_ours = isinstance(record, dict) and record.get("written") == digest(raw)
    if not was_ours:  # the user's file (or none) as it is now: what uninstall gives back
        original = None if raw is None else raw.decode("utf-8", "surrogateescape")
        record = {"original": original, "dir_existed": os.path.isdir(os.path.dirname(path))}
    action = "updated" if any(map(ours, [e for v in data.get("hooks", {}).values() if isinstance(v, list)
                                         for e in v])) else "installed"  # fmt: skip
    new = (json.dumps(with_ours(data, command), indent=2) + "\n").encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(Path(path), new)
    assert isinstance(record, dict)
    record["written"] = digest(new)
    trials.write_json(record_path, record)
    return action


def uninstall_settings(root: str, agent_state: str) -> str:
    """Take our handlers out: the file's bytes from before ``install`` when nobody changed it since (``restored``;
    ``removed`` when ``install`` created it), else the file without our entries (``updated``); ``absent``: none."""
    from pathlib import Path

    from experiment_core.fsutil import atomic_write

    path = os.path.join(root, SETTINGS)
    record_path = os.path.join(agent_state, RECORD)
    record = trials.read_json(record_path)
    raw, data = load_settings(path)
    if isinstance(record, dict) and raw is not None and record.get("written") == digest(raw):
        original = record.get("original")
        if isinstance(original, str):
            atomic_write(Path(path), original.encode("utf-8", "surrogateescape"))
            action = "restored"
        else:
            os.unlink(path)
            if not record.get("dir_existed"):
                try:
                    os.rmdir(os.path.dirname(path))
                except OSError:
                    pass
            action = "removed"
    elif raw is not None and without_ours(json.loads(raw)) != json.loads(raw):
        atomic_write(Path(path), (json.dumps(without_ours(data), indent=2) + "\n").encode())
        action = "updated"
    else:
        action = "absent"
    trials.unlink(record_path)
    return action


EXCLUDE_NOTE = "# experiment-hook install --agent claude: Claude Code's hooks, in this worktree-local file"
EXCLUDE_PATTERN = "/" + SETTINGS.replace(os.sep, "/")


def with_exclude(text: str) -> str:
    """``info/exclude`` with our two lines added, so the settings file we create never shows in ``git status``."""
    lines = text.splitlines()
    if EXCLUDE_NOTE in lines:
        return text
    head = text if not text or text.endswith("\n") else text + "\n"
    return f"{head}{EXCLUDE_NOTE}\n{EXCLUDE_PATTERN}\n"


def without_exclude(text: str) -> str:
    """``info/exclude`` without exactly the two lines :func:`with_exclude` added."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines[:-1]):
        if line.rstrip("\n") == EXCLUDE_NOTE and lines[i + 1].rstrip("\n") == EXCLUDE_PATTERN:
            return "".join(lines[:i] + lines[i + 2 :])
    return text
