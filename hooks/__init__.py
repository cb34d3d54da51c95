"""Thin entry points run by git or pre-commit; the logic lives in experiment_core."""
