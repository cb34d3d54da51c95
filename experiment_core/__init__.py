"""experiment-hook: A/B-test changes to workflow files on normal git work, with honest statistics.

Importing the package is cheap: the analysis API is loaded on first use (module ``__getattr__``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs ~6 ms to import: not on the hooks' path
    from typing import Any

__version__ = "0.3.0"
__all__ = ["AnalysisResult", "analyze_experiment", "analyze_samples"]

if TYPE_CHECKING:
    from experiment_core.evidence.analysis import AnalysisResult, analyze_experiment, analyze_samples


def __getattr__(name: str) -> Any:
    if name in ("analyze_samples", "analyze_experiment", "AnalysisResult"):
        from experiment_core.evidence import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
