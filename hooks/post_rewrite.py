"""post-rewrite entry (git hook or pre-commit ``experiment-follow``): see experiment_core.hookpaths.post_merge."""

import sys

from experiment_core.hookpaths.post_merge import main

if __name__ == "__main__":
    sys.exit(main("post-rewrite", sys.argv[1:]))
