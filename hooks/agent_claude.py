"""Claude Code's hook entry (``install --agent claude`` writes it into ``.claude/settings.local.json``): see
experiment_core.agents.claude."""

import sys

from experiment_core.agents.claude import main

if __name__ == "__main__":
    sys.exit(main())
