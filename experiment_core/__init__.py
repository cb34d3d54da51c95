"""experiment-hook: A/B-test changes to the files that drive your workflow, on normal git work."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs ~6 ms to import: not on the hooks' path
    from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "analyze_samples"]


def __getattr__(name: str) -> Any:
    # Lazy: `import experiment_core` stays cheap for the hooks; the statistics load on first use.
    if name == "analyze_samples":
        from experiment_core.analysis import analyze_samples

        return analyze_samples
    raise AttributeError(name)
