"""The service's clock, in one place, so that a test double can move time (`alikms.testing.mock`).

`now()` is epoch seconds. Request handling reads it once per call (`runtime.serve`); timer jobs take
their time from the trigger instead. Replacing the module attribute swaps the clock for the whole
process: reading it costs what `time.time()` costs, so the hot path pays nothing for the seam.
"""

from __future__ import annotations

import time

now = time.time
