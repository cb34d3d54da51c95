"""What this worktree runs: assignment of a unit to an arm, and the variant's content kept in the work tree.

``assign``: randomization and the worktree's current assignment. ``variants``: control and treatment content
(backups as git blobs) and the filter's configuration. ``filter_driver``: git's long-running filter process that
shows a unit its arm (stdlib only: git runs it with the bare interpreter). ``worktree``: the one reconcile behind
every deploy. ``release``: handing experimented files back to git (``restore``).

May import: core, store
Never loads: scipy, numpy, matplotlib, rich, click, sqlite3
"""
