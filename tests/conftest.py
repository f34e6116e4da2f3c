"""Lets tests import the shared fakes: `from fakes import InMemoryLabelStore`.

Hypothesis draws its examples from a fixed seed here, so the same suite tests the same inputs
on every machine and a CI failure can be reproduced by running the test again. To search
further for new failures, run with `HYPOTHESIS_PROFILE=explore` (random seeds, more
examples); add what it finds as an `@example` or a test of its own.
"""

import os
import pathlib
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import settings

sys.path.insert(0, str(pathlib.Path(__file__).parent))

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# The dashboard's background work: a map layout, an undo, a training run.
BACKGROUND_THREADS = ("ssvae-map-layout", "ssvae-undo", "ssvae-dashboard-training-")


@pytest.fixture(autouse=True)
def _background_work_ends_with_its_test() -> Iterator[None]:
    """Waits for the dashboard threads a test started before the next test runs. A layout left
    running crashed the process when a later test started and stopped tracemalloc while
    openTSNE's threads allocated (CPython 3.11's tracemalloc is not safe against that), and
    work left running would be charged to, and race with, whichever test came next."""
    yield
    for thread in threading.enumerate():
        if thread.name.startswith(BACKGROUND_THREADS):
            thread.join(timeout=300)
            assert not thread.is_alive(), f"{thread.name} still runs 300 s after its test"
