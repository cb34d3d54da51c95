"""pre-push entry (git hook or pre-commit ``experiment-decide``): see experiment_core.hookpaths.pre_push."""

import sys

from experiment_core.hookpaths.pre_push import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
