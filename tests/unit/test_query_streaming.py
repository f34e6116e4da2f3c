"""A query scored chunk by chunk picks what the policy picks from the whole pool in memory."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from fakes import (
    IncrementalFakeModel,
    InMemoryDataSource,
    InMemoryLabelStore,
    InMemoryModelRepository,
    InMemoryWorkspaceStore,
    three_cluster_source,
)

from ssvae.application.pool_scan import PoolScan, pool_scores, predict_pool
from ssvae.application.query import (
    QUERY_POLICIES,
    QueryService,
    batch_rows,
    choose,
    required_inputs,
)
from ssvae.application.settings import DataSettings
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.labels import ClassVocabulary, LabelChange
from ssvae.domain.ports import ChunkedDataSource
from ssvae.domain.workspace import Workspace

VOCAB = ClassVocabulary(("ok", "warning", "error"))
NOW = dt.datetime(2025, 1, 2, 3, 4, 5)
CHUNK = 7  # rows per predict call: many chunks, the last one short


class ScoringModel(IncrementalFakeModel):
    """A fake that also scores (bald, elbo: seeded noise on the features) and has OOD scores,
    so every policy of `ssvae query` is served."""

    def predict(self, x: npt.NDArray[np.float32]) -> Any:
        predictions = super().predict(x)
        return attrs.evolve(predictions, ood_score=1.0 - predictions.certainty)

    def model_scores(
        self, x: npt.NDArray[np.float32], names: Any, *, samples: int = 1, seed: int = 0
    ) -> dict[str, npt.NDArray[np.float32]]:
        noise = np.random.default_rng(seed).random(len(x)).astype(np.float32)
        total = x.reshape(len(x), -1).sum(axis=1).astype(np.float32) + noise
        scores = {"bald": total, "negative_elbo": -total}
        return {name: scores[name] for name in names}


class ScoringRepository(InMemoryModelRepository):
    def create(self, spec: Any) -> ScoringModel:
        model = ScoringModel(spec, self.callbacks)
        self.created.append(model)
        return model

    def load(self, directory: Path) -> ScoringModel:
        loaded = super().load(directory)
        model = ScoringModel(loaded.spec, self.callbacks)
        model.centroids, model.epochs_trained = loaded.centroids, loaded.epochs_trained
        return model


class ShuffledChunks:
    """A source that walks its pool in an order of its own, as a vector file's order is."""

    def __init__(self, inner: InMemoryDataSource, seed: int) -> None:
        self.inner, self.seed = inner, seed

    def describe(self) -> DatasetInfo:
        return self.inner.describe()

    def serials(self, split: str) -> npt.NDArray[np.int64]:
        return self.inner.serials(split)

    def load(self, split: str, serials: npt.NDArray[np.int64] | None = None) -> Samples:
        return self.inner.load(split, serials)

    def iter_chunks(
        self, split: str, serials: npt.NDArray[np.int64] | None = None, rows: int = 8192
    ) -> Iterator[Samples]:
        wanted = self.inner.serials(split) if serials is None else serials
        order = np.random.default_rng(self.seed).permutation(wanted)
        for start in range(0, len(order), rows):
            yield self.inner.load(split, order[start : start + rows])


def _workspace(tmp_path: Path, source: Any) -> tuple[WorkspaceService, Workspace]:
    service = WorkspaceService(InMemoryWorkspaceStore(), source, tmp_path / "a", now=lambda: NOW)
    return service, service.init("mixture_k5", DataSettings(name="mnist"), num_samples=90)


def _labelled(service: WorkspaceService, workspace: Workspace, count: int) -> InMemoryLabelStore:
    store = InMemoryLabelStore(VOCAB, service.pool_serials(workspace))
    pool = service.pool(workspace)
    assert pool.y is not None
    picks = np.random.default_rng(3).choice(len(pool), count, replace=False)
    for row in picks:
        name = VOCAB.names[int(pool.y[row])]
        store.apply([LabelChange(int(pool.serials[row]), name)], "test")
    return store


def _in_memory(
    service: QueryService, workspace: Workspace, store: InMemoryLabelStore, policy: str, k: int
) -> tuple[Any, ...]:
    """The batch as the whole pool held in memory gives it (predictions of every row)."""
    labels = store.load()
    model = service.model(workspace)
    pool = service.workspaces.pool(workspace)
    scores = pool_scores(model, pool, policy, CHUNK, service.score_samples, seed=4)
    needs_inputs = "inputs" in required_inputs(policy)
    outputs = predict_pool(model, pool, CHUNK, needs_inputs).with_scores(scores)
    selection = choose(
        outputs, labels.serials(), policy, k, 4, labelled_classes=labels.class_indices()
    )
    return batch_rows(outputs, selection, labels.vocabulary)


def _trained(tmp_path: Path, source: Any, labels: int) -> tuple[QueryService, Any, Any]:
    workspaces, workspace = _workspace(tmp_path, source)
    store = _labelled(workspaces, workspace, labels)
    repository = ScoringRepository()
    TrainService(repository, workspaces).train(workspace, 1, store)
    service = QueryService(repository, workspaces, predict_chunk=CHUNK)
    return service, workspaces.open(workspace.directory), store


def _streamed_equals_whole(
    service: QueryService, workspace: Workspace, store: InMemoryLabelStore, policy: str
) -> None:
    """The streamed batch is the whole pool's; a policy the model cannot serve (tau_ood
    without OOD scores) is refused the same way."""
    try:
        whole = _in_memory(service, workspace, store, policy, 10)
    except AcquisitionError as error:
        with pytest.raises(AcquisitionError, match=re.escape(str(error))):
            service.next_batch(workspace, store, policy, 10, seed=4)
        return
    streamed = service.next_batch(workspace, store, policy, 10, seed=4)
    assert streamed.pool_size == 90 and len(streamed.rows) == 10
    _same_rows(streamed.rows, whole)


def _same_rows(streamed: tuple[Any, ...], whole: tuple[Any, ...]) -> None:
    assert [r.serial for r in streamed] == [r.serial for r in whole]
    np.testing.assert_allclose([r.score for r in streamed], [r.score for r in whole], rtol=1e-6)
    assert [r.predicted for r in streamed] == [r.predicted for r in whole]
    np.testing.assert_allclose(
        [r.certainty for r in streamed], [r.certainty for r in whole], rtol=1e-6
    )


# typiclust_margin takes its typiclust branch with 6 labels and its margin branch with 12.
@pytest.mark.parametrize("labels", [6, 12])
@pytest.mark.parametrize("policy", QUERY_POLICIES)
def test_a_streamed_query_picks_what_the_whole_pool_gives(
    tmp_path: Path, policy: str, labels: int
) -> None:
    service, workspace, store = _trained(tmp_path, three_cluster_source(VOCAB, 120, 60, 0), labels)
    _streamed_equals_whole(service, workspace, store, policy)


# bald and elbo draw z per chunk of the walk, so their scores follow the order of the walk.
ORDER_FREE = tuple(p for p in QUERY_POLICIES if p not in ("bald", "elbo"))


def test_every_query_policy_is_served_by_the_scoring_fake(tmp_path: Path) -> None:
    """So that the comparisons above compare batches, not refusals."""
    service, workspace, store = _trained(tmp_path, three_cluster_source(VOCAB, 120, 60, 0), 12)
    for policy in QUERY_POLICIES:
        assert len(_in_memory(service, workspace, store, policy, 10)) == 10, policy


@pytest.mark.parametrize("policy", ORDER_FREE)
def test_the_order_a_source_walks_its_pool_in_does_not_change_the_batch(
    tmp_path: Path, policy: str
) -> None:
    source = ShuffledChunks(three_cluster_source(VOCAB, 120, 60, 0), seed=9)
    assert isinstance(source, ChunkedDataSource)
    service, workspace, store = _trained(tmp_path, source, 6)
    _streamed_equals_whole(service, workspace, store, policy)


def test_a_ranked_policy_keeps_k_rows_whatever_the_pool() -> None:
    """Margin keeps the k best unlabelled rows seen so far, never a row per pool sample."""
    scan = PoolScan("margin", 5, 0, np.array([3, 4], np.int64))
    rng = np.random.default_rng(0)
    for start in range(0, 1000, 100):
        probs = rng.dirichlet(np.ones(3), 100)
        serials = np.arange(start, start + 100, dtype=np.int64)
        scan.add(_outputs(serials, probs))
    kept = scan.outputs()
    assert scan.rows == 1000 and len(kept.serials) == 5
    assert not {3, 4} & set(kept.serials.tolist())


def _outputs(
    serials: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float64],
    features: npt.NDArray[np.float32] | None = None,
) -> Any:
    from ssvae.application.pool_scan import PoolOutputs

    return PoolOutputs(
        serials=serials,
        probs=probs,
        features=np.zeros((len(serials), 2)) if features is None else features,
        ood=None,
        responsibilities=None,
    )


def test_ties_go_to_the_lower_serial_across_chunks() -> None:
    """Every row scores the same: the k lowest unlabelled serials, as select_top_k gives,
    whichever chunk they came in."""
    scan = PoolScan("margin", 4, 0, np.array([2], np.int64))
    for serials in (np.array([50, 7, 9]), np.array([3, 2, 60, 1]), np.array([8, 0])):
        scan.add(_outputs(serials.astype(np.int64), np.full((len(serials), 3), 1 / 3)))
    assert sorted(scan.outputs().serials.tolist()) == [0, 1, 3, 7]


def test_a_kept_field_is_held_once_after_the_chunks_are_joined() -> None:
    """cold_start keeps every row's latent means: once joined, the chunks' own copies go
    (at 10M rows each copy is 1.3 GB)."""
    import tracemalloc

    rows, width, chunks = 2000, 32, 50
    tracemalloc.start()
    try:
        scan = PoolScan("cold_start", 5, 0, np.zeros(0, np.int64))
        for start in range(0, rows * chunks, rows):
            serials = np.arange(start, start + rows, dtype=np.int64)
            features = np.ones((rows, width), np.float32)
            scan.add(_outputs(serials, np.full((rows, 3), 1 / 3), features))
        kept = scan.outputs()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    total = rows * chunks * width * 4
    assert kept.features.shape == (rows * chunks, width)
    assert held < 1.5 * total, f"{held / total:.2f} copies held"


_JOIN_SCRIPT = """
import numpy as np
from ssvae.application.pool_scan import PoolOutputs, PoolScan

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

rows, width, chunks = 20_000, 64, 50
scan = PoolScan("cold_start", 5, 0, np.zeros(0, np.int64))
for start in range(0, rows * chunks, rows):
    features = np.full((rows, width), start, np.float32)
    serials = np.arange(start, start + rows, dtype=np.int64)
    probs = np.full((rows, 3), 1 / 3)
    scan.add(PoolOutputs(serials, probs, features, None, None))
before = status("VmRSS")
kept = scan.outputs()
assert np.array_equal(kept.serials, np.arange(rows * chunks))
assert np.array_equal(kept.features[:, 0], np.repeat(np.arange(0, rows * chunks, rows), rows))
print(status("VmHWM") - before, kept.features.nbytes + kept.serials.nbytes)
"""


def test_joining_the_kept_chunks_holds_the_rows_once_at_its_peak() -> None:
    """cold_start keeps every row's latent means: the chunks are copied into the joined arrays
    one by one and each goes once copied, so the join's resident peak never holds the rows
    twice (at 10M rows a second copy is 1.3 GB more). Measured in a child process, whose peak
    resident memory (VmHWM) is its own; the rows come out in order."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _JOIN_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    growth, joined = (int(value) for value in result.stdout.split())
    assert growth < 0.25 * joined, f"the join grew the peak by {growth / joined:.2f} copies"


def _kept_scan(expected: int | None, sizes: list[int], width: int = 8) -> Any:
    scan = PoolScan("cold_start", 5, 0, np.zeros(0, np.int64), expected=expected)
    start = 0
    for size in sizes:
        serials = np.arange(start, start + size, dtype=np.int64)
        features = np.repeat(serials[:, None], width, axis=1).astype(np.float32)
        scan.add(_outputs(serials, np.full((size, 3), 1 / 3), features))
        start += size
    return scan


@pytest.mark.parametrize("expected", [None, 60, 50, 70])
def test_the_kept_rows_are_the_pool_in_order_whatever_size_it_was_said_to_have(
    expected: int | None,
) -> None:
    """The pool's size lets the rows be written in place; a pool with fewer or more rows than
    it said gives the same rows."""
    kept = _kept_scan(expected, [25, 25, 10]).outputs()
    assert np.array_equal(kept.serials, np.arange(60))
    assert np.array_equal(kept.features, np.repeat(np.arange(60)[:, None], 8, 1))


def test_with_the_pool_size_the_scan_never_holds_a_chunk_beside_its_copy() -> None:
    """Each chunk's latent means are written into the pool-sized array as it comes: the
    scan's traced peak is that array and one chunk, never the chunks and their join."""
    import tracemalloc

    rows, chunks, width = 2000, 50, 32
    tracemalloc.start()
    try:
        kept = _kept_scan(rows * chunks, [rows] * chunks, width).outputs()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    joined = kept.features.nbytes + kept.serials.nbytes
    assert np.array_equal(kept.serials, np.arange(rows * chunks))
    assert peak < 1.25 * joined, f"the scan peaked at {peak / joined:.2f} times its rows"
