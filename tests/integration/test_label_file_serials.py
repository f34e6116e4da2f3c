"""A label file's serials are checked against the pool's at every read (a key press reads the
file once): vectorised, so a million-row pool costs no Python set per press, and still one
line naming the first serial the pool lacks, however large."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary


@pytest.mark.parametrize(
    ("serial", "known"),
    [("3", True), ("11", False), ("9999999999999999999", False), ("9223372036854775807", False)],
)
def test_a_serial_is_known_only_when_the_pool_holds_it(
    tmp_path: Path, serial: str, known: bool
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"Serial,label\n0,2\n{serial},1\n")
    store = CsvLabelStore(path, ClassVocabulary.digits(10), np.arange(10))
    if known:
        assert dict(store.load()) == {0: "2", int(serial): "1"}
        return
    with pytest.raises(LabelError) as error:
        store.load()
    message = str(error.value)
    assert "\n" not in message and f"line 3: serial {serial} is not in the dataset" in message
