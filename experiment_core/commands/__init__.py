"""One module per subcommand, as in pre-commit's ``pre_commit/commands``."""
