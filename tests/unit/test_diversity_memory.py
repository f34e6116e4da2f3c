"""k-center and cold_start over a pool's latent means hold one float64 copy of them: at
10M rows of 32 means each copy is 2.6 GB."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from ssvae.domain.query import AcquisitionRequest, select


# With labelled rows (or cold_start's typical picks, from responsibilities) the other rows
# are the candidates: they are masked, not copied.
@pytest.mark.parametrize("labelled", [0, 3])
@pytest.mark.parametrize("policy", ["cold_start", "kcenter"])
def test_a_diversity_pick_holds_one_float64_copy_of_the_features(
    policy: str, labelled: int
) -> None:
    rows, width = 100_000, 32
    features = np.random.default_rng(0).normal(size=(rows, width)).astype(np.float32)
    request = AcquisitionRequest(
        serials=np.arange(rows),
        k=5,
        features=features,
        labelled_serials=np.arange(labelled),
        responsibilities=np.ones((rows, 1), np.float32) if policy == "cold_start" else None,
    )
    tracemalloc.start()
    try:
        chosen = select(policy, request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(chosen) == 5
    copy = rows * width * 8
    assert peak < 1.6 * copy, f"peak {peak / copy:.2f} float64 copies"
