"""Assistant adapters: trials from an AI assistant's real use of an experimented command, skill or instruction file.

``trials``: what every assistant shares — one use's state in this worktree's local state dir (atomic files keyed
by session and prompt), opened at a command's expansion, closed at the session's next command, its end, or 30 idle
minutes, and recorded in the ledger under the unit and arm this worktree runs (numbers and command names only).
One module per assistant translates its hooks into those events, as pre-commit keeps one module per language:
``claude`` (Claude Code: its hook payloads, ``.claude/settings.local.json``, its transcript's usage). The entry file
the assistant runs is the shim ``hooks/agent_claude.py``. A handler exits 0 and prints nothing (``/rate`` excepted).

May import: core, store, agents
Never loads: scipy, numpy, matplotlib, rich, click, experiment_core.reports, experiment_core.evidence
"""
