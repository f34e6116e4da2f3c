"""Lets tests import the shared fakes: `from fakes import InMemoryLabelStore`."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
