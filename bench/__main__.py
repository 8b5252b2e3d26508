"""`python -m bench` runs the benchmark (bench/suite.py)."""

import sys

from .suite import main

sys.exit(main())
