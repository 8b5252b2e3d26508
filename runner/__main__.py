"""`python -m alikms.runner ...` is the `alikms` command."""

import sys

from .cli import main

sys.exit(main())
