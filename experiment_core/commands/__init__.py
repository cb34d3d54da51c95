"""One module per subcommand, as in pre-commit's ``pre_commit/commands``: each a thin click command.

Importing a command costs what its answer needs: the statistics of ``status``, ``analyze`` and ``--auto`` are the
standard library's, so scipy, numpy and rich are loaded only inside the few commands that truly need them (a plot,
``plan``'s power search, a live table on a terminal).

May import: core, store, deploy, hookpaths, measure, evidence, apply, reports, agents, commands
Never loads: scipy, numpy, matplotlib, rich
"""
