"""What the team shares through git, and what this clone derives from it.

``spec``: the registry, ``experiments.yaml`` (ruamel round-trip, validation, atomic edits). ``ledger``: events as
JSON lines in git notes (``refs/notes/experiments``), appended under a lock. ``ledger_index``: the local SQLite
index of the ledger (per clone, derived, rebuilt silently). ``sync``: the ledger through ordinary git remotes.
``decisions``: the team's decisions as the ledger holds them (one per experiment, final for every clone that knows
it), cached for the hooks.

May import: core, store, evidence
Never loads: scipy, numpy, matplotlib, rich, click
"""
