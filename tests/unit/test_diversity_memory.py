"""k-center, cold_start and the diverse policies over a pool's latent means hold no copy of
them: they make a block of rows float64 at a time, so besides the features as given they
need a few numbers a row. At 10M rows of 32 means a float64 copy alone is 2.6 GB."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from ssvae.domain.query import AcquisitionRequest, select

# Per row: the nearest-centre distance and the squared norm (float64), the labelled mask, the
# sorted serials and their order (int64), with room; and a few MiB of blocks whatever n is.
BYTES_PER_ROW = 48
BLOCKS = 8 << 20


# With labelled rows (or cold_start's typical picks, from responsibilities) the other rows
# are the candidates: they are masked, not copied.
@pytest.mark.parametrize("width", [64, 256])
@pytest.mark.parametrize("labelled", [0, 3])
@pytest.mark.parametrize("policy", ["cold_start", "kcenter", "diverse_margin"])
def test_a_diversity_pick_needs_a_few_numbers_a_row_whatever_the_width(
    policy: str, labelled: int, width: int
) -> None:
    rows = 100_000
    features = np.random.default_rng(0).standard_normal((rows, width), dtype=np.float32)
    request = AcquisitionRequest(
        serials=np.arange(rows),
        k=5,
        features=features,
        labelled_serials=np.arange(labelled),
        responsibilities=np.ones((rows, 1), np.float32) if policy == "cold_start" else None,
        probs=np.full((rows, 2), 0.5, np.float32) if policy == "diverse_margin" else None,
    )
    tracemalloc.start()
    try:
        chosen = select(policy, request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(chosen) == 5
    assert peak < BYTES_PER_ROW * rows + BLOCKS, f"peak {peak / rows:.0f} bytes a row"
    # Well under one float32 copy of the features, let alone the float64 one.
    assert peak < features.nbytes / 2
