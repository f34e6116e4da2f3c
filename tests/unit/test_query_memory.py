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
