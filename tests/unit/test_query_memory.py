"""What `ssvae query` holds at its peaks: a 10M-row pool's kept rows are 1.4 GB, so nothing
of that size may live beside them when it is not needed (a weak reference shows when an array
is gone)."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fakes import three_cluster_source
from test_query_streaming import VOCAB, _trained

import ssvae.application.query as query_module
from ssvae.domain.data import Samples


@pytest.mark.parametrize("policy", ["kcenter", "cold_start"])
def test_the_kept_rows_are_gone_before_the_picked_rows_are_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """k-center keeps every row's latent means to pick from; once it has picked, the picked
    samples are read and predicted again to show them, and the means are no longer held."""
    service, workspace, store = _trained(tmp_path, three_cluster_source(VOCAB, 120, 60, 0), 6)
    kept: list[weakref.ref[Any]] = []
    scan_pool = query_module.scan_pool

    def watched_scan(*args: Any, **kwargs: Any) -> Any:
        scan = scan_pool(*args, **kwargs)
        kept.append(weakref.ref(scan.outputs().features))
        return scan

    source = service.workspaces.source
    load = source.load
    alive_at_load: list[bool] = []

    def watched_load(split: str, serials: npt.NDArray[np.int64] | None = None) -> Samples:
        alive_at_load.append(any(ref() is not None for ref in kept))
        return load(split, serials)

    monkeypatch.setattr(query_module, "scan_pool", watched_scan)
    monkeypatch.setattr(source, "load", watched_load)
    batch = service.next_batch(workspace, store, policy, 10, seed=4)
    assert len(batch.rows) == 10 and batch.pool_size == 90
    assert kept and alive_at_load, "the scan ran and the picked rows were read"
    assert alive_at_load == [False] * len(alive_at_load)


def _typical_reference(
    responsibilities: npt.NDArray[np.float64], available: npt.NDArray[np.bool_], k: int
) -> tuple[list[int], list[float]]:
    """typical_per_component on copies of the available rows: the rule as written."""
    rows = np.flatnonzero(available)
    if rows.size == 0 or k == 0:
        return [], []
    pool = responsibilities[rows].astype(np.float64)
    components = pool.shape[1]
    owned = np.bincount(pool.argmax(axis=1), minlength=components) > 0
    order = np.lexsort((np.arange(components), -pool.sum(axis=0)))
    free = np.ones(rows.size, dtype=np.bool_)
    picked, values = [], []
    for component in order[owned[order]][:k]:
        best = int(np.argmax(np.where(free, pool[:, component], -1.0)))
        free[best] = False
        picked.append(int(rows[best]))
        values.append(float(pool[best, component]))
    return picked, values


@pytest.mark.parametrize("seed", range(8))
def test_typical_picks_read_in_blocks_are_those_of_the_available_rows_copied(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Blocks of a few rows (so that a component's best row and its ties fall in different
    blocks) give the picks and values of the rule applied to a copy of the available rows."""
    from ssvae.domain import diversity

    monkeypatch.setattr(diversity, "_ROW_BLOCK_ELEMENTS", 12)
    rng = np.random.default_rng(seed)
    rows, components = 60, 4
    # Few distinct values, so ties within and across blocks are common.
    responsibilities = rng.integers(0, 4, (rows, components)).astype(np.float32) / 4
    available = rng.random(rows) < 0.7
    for k in (0, 1, 3, 10):
        picked, values = diversity.typical_per_component(responsibilities, available, k)
        expected = _typical_reference(responsibilities, available, k)
        assert (picked.tolist(), values.tolist()) == expected


def test_cold_start_with_many_components_holds_no_copy_of_the_responsibilities() -> None:
    """A mixture of 20 components gives 20 responsibilities a row: a float64 copy of them and
    one of the available rows were 320 bytes a row, 3.2 GB at 10M rows."""
    import tracemalloc

    from ssvae.domain.query import AcquisitionRequest, select

    rows, components = 400_000, 20
    rng = np.random.default_rng(0)
    responsibilities = rng.dirichlet(np.ones(components), rows).astype(np.float32)
    request = AcquisitionRequest(
        serials=np.arange(rows),
        k=25,
        features=rng.standard_normal((rows, 8), dtype=np.float32),
        labelled_serials=np.arange(3),
        responsibilities=responsibilities,
    )
    tracemalloc.start()
    try:
        chosen = select("cold_start", request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(chosen) == 25 and not np.isin(chosen.serials, np.arange(3)).any()
    # k-center's two float64 numbers a row, the masks and a few MiB of blocks.
    assert peak < 48 * rows + (8 << 20), f"peak {peak / rows:.0f} bytes a row"
    assert peak < responsibilities.nbytes


def test_a_request_of_sorted_serials_checks_them_unique_without_a_sorted_copy() -> None:
    """A scanned pool's serials come in increasing order; np.unique's sorted copy and result
    were 16 bytes a row beside the kept rows, and an int64 copy of them 8 more. Repeats,
    sorted or not, are still refused."""
    import tracemalloc

    from ssvae.domain.acquisition import AcquisitionError
    from ssvae.domain.query import AcquisitionRequest

    rows = 1_000_000
    serials = np.arange(rows, dtype=np.int64) * 3
    tracemalloc.start()
    try:
        AcquisitionRequest(serials=serials, k=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * rows, f"peak {peak / rows:.1f} bytes a row"
    for repeated in ([1, 2, 2, 3], [3, 1, 2, 1]):
        with pytest.raises(AcquisitionError, match="serials must be unique"):
            AcquisitionRequest(serials=np.array(repeated, np.int64), k=1)


def test_a_label_store_holds_a_sorted_pool_as_given(tmp_path: Path) -> None:
    """A workspace's pool serials come sorted; the store kept np.unique of them, which took
    8 s and left 0.4 GB resident at 10M rows. Unsorted serials with repeats are still made
    sorted and unique, and a label outside the pool is still refused."""
    import tracemalloc

    from ssvae.adapters.labels.csv_store import CsvLabelStore
    from ssvae.domain.errors import SsvaeError
    from ssvae.domain.labels import LabelChange

    rows = 1_000_000
    serials = np.arange(rows, dtype=np.int64) * 2
    tracemalloc.start()
    try:
        store = CsvLabelStore(tmp_path / "labels.csv", VOCAB, serials)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * rows, f"peak {peak / rows:.1f} bytes a row"
    assert len(store.apply([LabelChange(4, VOCAB.names[0])], "test")) == 1
    with pytest.raises(SsvaeError, match="3"):
        store.apply([LabelChange(3, VOCAB.names[0])], "test")
    shuffled = CsvLabelStore(tmp_path / "other.csv", VOCAB, np.array([8, 2, 8, 6], np.int64))
    assert len(shuffled.apply([LabelChange(6, VOCAB.names[1])], "test")) == 1
    with pytest.raises(SsvaeError, match="4"):
        shuffled.apply([LabelChange(4, VOCAB.names[1])], "test")
