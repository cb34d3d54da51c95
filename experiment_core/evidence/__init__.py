"""Statistics and decision rules: pure functions of numbers — no git, no files, no clock, no randomness.

``stats``: the formulas (moments, Welch, Fieller, always-valid sequential test, blocking, Mann-Whitney, bootstrap),
checked against scipy, statsmodels and gbstats. ``units``: the per-unit sufficient statistics of a metric
(``UnitData``), from ledger events or from the index. ``analysis``: one experiment's evidence, from those to an
``AnalysisResult``. ``vectorized``: the same primary comparison over arrays of experiments, for the simulations.
``decide``: the rules that turn evidence into promote, rollback, expire or continue, with reasons.
``distributions``: the normal, t and χ² functions in the standard library (checked against scipy), so that
nothing on a person's path imports scipy; scipy and numpy are imported only inside the functions that need them
(bootstrap, ``plan``'s power search, the vectorized simulations). Of the core, only ``clock``'s timestamp parser
(``now`` is always an argument).

May import: evidence, clock
Never loads: scipy, numpy, matplotlib, rich, click, sqlite3, subprocess
"""
