"""Measuring a command: how it is timed, on which machine, and in which process.

``timing``: one timed run, as hyperfine does it (monotonic clock, shell start-up calibrated and subtracted).
``machine``: the anonymous id of the machine. ``jobs``: the detached measurement process post-commit starts.
``commit_trials``: that process: each active experiment's command timed under its arm, recorded as trials.
``run_trials``: ``experiment-hook run``, N interleaved timed runs per arm.

May import: core, store, deploy, measure
Never loads: scipy, numpy, matplotlib, rich, click
"""
