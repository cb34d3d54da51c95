"""Decisions applied: to the work tree, the registry, the ledger and a commit, crash-safely.

``engine``: every running experiment evaluated, and what its settings allow applied (``--auto``, pre-push).
``lifecycle``: one promotion, rollback or expiry, journaled so an interrupted one is finished on the next run.
``decision_branch``: decision commits on ``experiment-hook/<action>-<exp-id>`` off the remote's default branch,
pushed once the decision is the team's; races between clones settled. ``manual``: promote or roll back by hand,
after showing the numbers.

May import: core, store, deploy, evidence, reports, apply
Never loads: scipy, numpy, matplotlib, rich
"""
