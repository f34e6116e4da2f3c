"""Pools read on the fly: a data source that hands out its rows without loading them.

Training a pool larger than memory needs the pool's rows as the trainer asks for them, not
one array. A source that can do so (vector files) implements `RowReadingSource`: its
`row_samples` gives the pool's serials and labels, with `x` an object that reads rows by
index (`x[rows]`, `x.shape`) and serves whole batches a pass over the file at a time
(`ssvae.adapters.model.batches`). Sources without it (images in memory, text) are loaded.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ssvae.domain.data import Samples

STREAM_ABOVE_BYTES = 1 << 29  # pools of more float32 bytes than this (512 MiB) train streamed


@runtime_checkable
class RowReadingSource(Protocol):
    """A data source whose samples can be read by row from their file as needed."""

    def row_samples(self, split: str, serials: npt.NDArray[np.int64]) -> Samples:
        """The samples of `serials` (in that order), their inputs read from the file on demand."""
        ...
