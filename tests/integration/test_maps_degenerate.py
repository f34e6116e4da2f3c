"""openTSNE on rows that coincide: identical outputs (a model that has not learnt to tell rows
apart) or a starting map whose points share one position. Unguarded, its trees recurse
without end (a segfault that kills the process) and its perplexity search gives NaN, so each
fit runs in a child process: a crash is a failure here, not the end of the suite."""

from __future__ import annotations

import subprocess
import sys

FIT = """
import numpy as np
from ssvae.adapters.maps import OpenTsneProjector

projector = OpenTsneProjector(n_jobs=1)
same = projector.fit(np.zeros((40, 5)), seed=0).positions
two = np.repeat(np.eye(5)[:2], 20, axis=0)
restarted = projector.fit(two, seed=1, initial=np.zeros((40, 2))).positions
again = projector.fit(two, seed=1, initial=np.zeros((40, 2))).positions
print(np.isfinite(same).all(), np.isfinite(restarted).all(), np.array_equal(restarted, again))
"""


def test_coinciding_rows_and_a_collapsed_starting_map_give_a_finite_seeded_map() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FIT], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "True"]
