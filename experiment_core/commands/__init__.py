"""Click commands of experiment-hook."""
