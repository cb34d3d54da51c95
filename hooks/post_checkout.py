"""post-checkout entry (git hook or pre-commit ``experiment-assign``): see experiment_core.hookpaths.post_checkout."""

import sys

from experiment_core.hookpaths.post_checkout import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
