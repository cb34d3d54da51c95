"""post-commit entry (git hook or pre-commit ``experiment-record``): see experiment_core.hookpaths.post_commit."""

import sys

from experiment_core.hookpaths.post_commit import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
