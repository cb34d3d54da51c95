"""What the team shares through git, and what this clone derives from it.

``spec``: the registry, ``experiments.yaml`` (ruamel round-trip, validation, atomic edits). ``refs``: the names of
the ledger's notes refs (one per experiment, ``refs/notes/experiments-<exp-id>``, and the legacy
``refs/notes/experiments``). ``ledger``: events as JSON lines in those notes, appended under a lock, read as their
union. ``ledger_index``: the local SQLite index of the ledger (per clone, derived, rebuilt silently). ``sync``: the
ledger through ordinary git remotes. ``migrate``: the legacy ref's events copied into per-experiment refs.
``decisions``: the team's decisions as the ledger holds them (one per experiment, final for every clone that knows
it), cached for the hooks.

May import: core, store, evidence
Never loads: scipy, numpy, matplotlib, rich, click
"""
