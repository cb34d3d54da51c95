"""The hook paths: what runs inside git's own commands, so it must be quick and never fail the user's operation.

``post_checkout``: a new unit on every branch checkout. ``post_commit``: hand the commit's trials to a measurement
job. ``post_merge``: the work tree follows the registry after a pull, merge or rebase. ``pre_push``: the decisions
and the ledger sync. ``githooks``: writing and removing the hook files for repositories without pre-commit. The
entry files git and pre-commit run are the shims in ``hooks/`` (``python -m experiment_core.hooks.*``).

May import: core, store, deploy, measure, apply, hookpaths
Never loads: scipy, numpy, matplotlib, rich, click, experiment_core.reports
"""
