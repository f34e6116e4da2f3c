"""Lets tests import the shared fakes: `from fakes import InMemoryLabelStore`.

Hypothesis draws its examples from a fixed seed here, so the same suite tests the same inputs
on every machine and a CI failure can be reproduced by running the test again. To search
further for new failures, run with `HYPOTHESIS_PROFILE=explore` (random seeds, more
examples); add what it finds as an `@example` or a test of its own.
"""

import os
import pathlib
import sys

from hypothesis import settings

sys.path.insert(0, str(pathlib.Path(__file__).parent))

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
