"""The pool's map: its features, its purity measure, its model key and MapService on fakes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import (
    InMemoryLabelStore,
    InMemoryModelRepository,
    InMemoryWorkspaceStore,
    three_cluster_source,
)

from ssvae.application.maps import MapService
from ssvae.application.settings import DataSettings
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.labels import ClassVocabulary, LabelChange
from ssvae.domain.maps import MapError, MapLayout, map_features, map_purity, model_key
from ssvae.domain.model import Predictions
from ssvae.domain.workspace import Workspace

VOCAB = ClassVocabulary(("ok", "warning", "error"))
NOW = dt.datetime(2025, 1, 2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------
# The measure and the features.


def test_purity_is_one_for_separate_classes_and_near_chance_for_mixed_ones() -> None:
    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(4), 100)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float64)
    separate = centres[classes] + rng.normal(0, 0.5, (400, 2))
    assert map_purity(separate, classes) == 1.0
    mixed = rng.normal(0, 1, (400, 2))  # where a row sits says nothing of its class
    assert map_purity(mixed, classes) < 0.45


def test_purity_refuses_too_few_rows_or_misaligned_classes() -> None:
    with pytest.raises(MapError, match="n >= 22"):
        map_purity(np.zeros((10, 2)), np.zeros(10, np.int64))
    with pytest.raises(MapError):
        map_purity(np.zeros((40, 2)), np.zeros(39, np.int64))


def test_features_put_probabilities_beside_scaled_encodings() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    encodings = np.array([[100.0, 0.0], [0.0, 100.0], [50.0, 50.0]])
    features = map_features(probs, encodings)
    assert features.shape == (3, 4)
    # The encodings' scale no longer depends on the model: unit mean row norm, centred.
    scaled = features[:, 2:]
    assert np.isclose(np.mean(np.linalg.norm(scaled, axis=1)), 1.0)
    assert np.allclose(scaled.mean(axis=0), 0.0)
    assert map_features(probs, None).shape == (3, 2)


def test_features_of_many_rows_cost_little_beyond_the_features_themselves() -> None:
    import tracemalloc

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 100_000).astype(np.float32)
    encodings = rng.normal(size=(100_000, 64)).astype(np.float32)
    tracemalloc.start()
    try:
        features = map_features(probs, encodings, block=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # float64 copies of the encodings (one each for the cast, the centring and the scaling)
    # and a stacked copy were each twice the features' size: a million rows held 14 GB.
    assert peak < features.nbytes + 8 * 2**20
    reference = encodings.astype(np.float64) - encodings.mean(axis=0, dtype=np.float64)
    reference /= np.mean(np.linalg.norm(reference, axis=1))
    np.testing.assert_allclose(features[:, 4:], reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(features[:, :4], 2.0 * probs, rtol=1e-6)


def test_features_refuse_non_finite_outputs_with_one_line() -> None:
    with pytest.raises(MapError, match="retrain") as error:
        map_features(np.array([[np.nan, 1.0]]), None)
    assert "\n" not in str(error.value)


def test_a_pool_map_needs_one_position_a_serial() -> None:
    with pytest.raises(MapError, match="one"):
        MapLayout(serials=np.arange(3), positions=np.zeros((2, 2)), model_key="k")


# ---------------------------------------------------------------------------------------------
# The service.


class FakeFittedMap:
    def __init__(self, features: np.ndarray) -> None:
        self.positions = features[:, :2].copy()
        self.transformed: list[int] = []

    def transform(self, features: np.ndarray) -> np.ndarray:
        self.transformed.append(len(features))
        return np.asarray(features[:, :2] + 1000.0)  # marks rows placed by transform


class FakeProjector:
    """Positions are the features' first two columns; records every fit."""

    def __init__(self) -> None:
        self.fits: list[tuple[int, int]] = []
        self.maps: list[FakeFittedMap] = []
        self.initials: list[np.ndarray | None] = []

    def fit(
        self, features: np.ndarray, seed: int, initial: np.ndarray | None = None
    ) -> FakeFittedMap:
        self.fits.append((len(features), seed))
        self.initials.append(None if initial is None else initial.copy())
        self.maps.append(FakeFittedMap(features))
        return self.maps[-1]


class InMemoryMapCache:
    def __init__(self) -> None:
        self.maps: dict[Path, MapLayout] = {}

    def load(self, directory: Path, model_key: str | None, rows: int) -> MapLayout | None:
        cached = self.maps.get(directory)
        if cached is None or len(cached.serials) != rows:
            return None
        if model_key is not None and cached.model_key != model_key:
            return None
        return cached

    def save(self, directory: Path, layout: MapLayout) -> None:
        self.maps[directory] = layout


def _trained(tmp_path: Path, rounds: int = 1) -> tuple[WorkspaceService, Any, Workspace]:
    workspaces = WorkspaceService(
        InMemoryWorkspaceStore(),
        three_cluster_source(VOCAB, 120, 60, 0, True),
        tmp_path / "artifacts",
        now=lambda: NOW,
    )
    workspace = workspaces.init("mixture_k5", DataSettings(name="mnist"), num_samples=60)
    store = InMemoryLabelStore(VOCAB, workspaces.pool_serials(workspace))
    serials = workspaces.pool(workspace).serials
    store.apply([LabelChange(int(serials[i]), VOCAB.names[i % 3]) for i in range(6)], "test")
    repository = InMemoryModelRepository()
    service = TrainService(repository, workspaces)
    for _ in range(rounds):
        workspace = service.train(workspace, 1, store).workspace
    return workspaces, repository, workspace


def _service(workspaces: WorkspaceService, repository: Any, **kwargs: Any) -> MapService:
    return MapService(repository, workspaces, FakeProjector(), InMemoryMapCache(), **kwargs)


def test_the_map_places_every_pool_sample_once_and_is_cached(tmp_path: Path) -> None:
    workspaces, repository, workspace = _trained(tmp_path)
    service = _service(workspaces, repository)
    first = service.positions(workspace)
    assert np.array_equal(first.serials, workspaces.pool_serials(workspace))
    assert first.positions.shape == (60, 2)
    assert first.model_key == model_key(workspace.metadata)
    projector: Any = service.projector
    assert projector.fits == [(60, workspace.spec.training.seed)]
    loads = len(repository.loaded)
    again = service.positions(workspace)
    assert again is first and len(projector.fits) == 1 and len(repository.loaded) == loads


def test_a_retrained_model_gets_a_new_map(tmp_path: Path) -> None:
    workspaces, repository, workspace = _trained(tmp_path, rounds=1)
    service = _service(workspaces, repository)
    before = service.positions(workspace)
    store = InMemoryLabelStore(VOCAB, workspaces.pool_serials(workspace))
    store.apply([LabelChange(int(workspaces.pool(workspace).serials[0]), "ok")], "test")
    retrained = TrainService(repository, workspaces).train(workspace, 1, store).workspace
    after = service.positions(retrained)
    assert after.model_key != before.model_key
    projector: Any = service.projector
    assert len(projector.fits) == 2
    # The new map starts from the old one, row for row, so its clusters stay in place.
    assert projector.initials[0] is None
    assert np.array_equal(projector.initials[1], before.positions)


def test_a_sampled_retrain_starts_its_sample_from_the_previous_map(tmp_path: Path) -> None:
    workspaces, repository, workspace = _trained(tmp_path, rounds=1)
    service = _service(workspaces, repository, fit_limit=25)
    before = service.positions(workspace)
    store = InMemoryLabelStore(VOCAB, workspaces.pool_serials(workspace))
    store.apply([LabelChange(int(workspaces.pool(workspace).serials[0]), "ok")], "test")
    retrained = TrainService(repository, workspaces).train(workspace, 1, store).workspace
    service.positions(retrained)
    projector: Any = service.projector
    sample = np.random.default_rng(workspace.spec.training.seed).permutation(60)[:25]
    assert np.array_equal(projector.initials[1], before.positions[sample])


def test_above_the_fit_limit_a_seeded_sample_is_fitted_and_the_rest_transformed(
    tmp_path: Path,
) -> None:
    workspaces, repository, workspace = _trained(tmp_path)
    service = _service(workspaces, repository, fit_limit=25)
    layout = service.positions(workspace)
    projector: Any = service.projector
    assert projector.fits == [(25, workspace.spec.training.seed)]
    assert projector.maps[0].transformed == [35]
    # Every row is placed exactly once: 25 by the fit, 35 by transform (shifted by the fake).
    assert int(np.sum(layout.positions[:, 0] >= 500)) == 35
    # The sample is seeded: the same service lays the same rows out the same way.
    again = _service(workspaces, repository, fit_limit=25).layout(
        np.random.default_rng(1).normal(size=(60, 3)), seed=4
    )
    same = _service(workspaces, repository, fit_limit=25).layout(
        np.random.default_rng(1).normal(size=(60, 3)), seed=4
    )
    assert np.array_equal(again, same)


def test_the_rows_beyond_the_sample_are_transformed_in_bounded_chunks(tmp_path: Path) -> None:
    workspaces, repository, _ = _trained(tmp_path)
    service = _service(workspaces, repository, fit_limit=25)
    service.transform_chunk = 10
    chunked = service.layout(np.random.default_rng(1).normal(size=(60, 3)), seed=4)
    projector: Any = service.projector
    assert projector.maps[-1].transformed == [10, 10, 10, 5]  # memory bounded by the chunk
    # Each row lands where one call would place it: the chunks split the rows, not the map.
    one_call = _service(workspaces, repository, fit_limit=25)
    assert np.array_equal(
        chunked, one_call.layout(np.random.default_rng(1).normal(size=(60, 3)), seed=4)
    )


def test_an_untrained_workspace_has_no_map_and_says_what_to_do(tmp_path: Path) -> None:
    workspaces, repository, _ = _trained(tmp_path, rounds=0)
    fresh = workspaces.init("mixture_k5", DataSettings(name="mnist"), num_samples=60, id="fresh")
    with pytest.raises(MapError, match="ssvae train") as error:
        _service(workspaces, repository).positions(fresh)
    assert "\n" not in str(error.value)


class DictPredictionCache:
    def __init__(self) -> None:
        self.saved: dict[str, Predictions] = {}

    def load(self, directory: Path, model_key: str, rows: int) -> Predictions | None:
        found = self.saved.get(model_key)
        return found if found is not None and len(found.class_probs) == rows else None

    def save(self, directory: Path, model_key: str, predictions: Predictions) -> None:
        self.saved[model_key] = predictions


def test_the_pool_predictions_of_a_trained_model_are_predicted_once_then_read(
    tmp_path: Path,
) -> None:
    workspaces, repository, workspace = _trained(tmp_path)
    cache = DictPredictionCache()
    service = _service(workspaces, repository, prediction_cache=cache)
    x = workspaces.pool(workspace).x
    loads: list[int] = []

    def model() -> Any:
        loads.append(1)
        return repository.load(workspace.checkpoint_dir)

    first = service.pool_predictions(workspace, x, model)
    again = service.pool_predictions(workspace, x, model)
    assert len(loads) == 1 and again is first  # read back: no model loaded, nothing predicted
    assert list(cache.saved) == [model_key(workspace.metadata)]
    service.positions(workspace)  # the map reads the same predictions
    assert len(loads) == 1
    # Another round is another model: predicted again, under its own key.
    store = InMemoryLabelStore(VOCAB, workspaces.pool_serials(workspace))
    retrained = TrainService(repository, workspaces).train(workspace, 1, store).workspace
    service.pool_predictions(retrained, x, model)
    assert len(loads) == 2 and model_key(retrained.metadata) in cache.saved


def test_an_untrained_model_s_predictions_are_not_cached(tmp_path: Path) -> None:
    workspaces, repository, workspace = _trained(tmp_path)
    untrained = workspaces.init("mixture_k5", DataSettings(name="mnist"), num_samples=60)
    cache = DictPredictionCache()
    service = _service(workspaces, repository, prediction_cache=cache)
    trained_model = repository.load(workspace.checkpoint_dir)
    predictions = service.pool_predictions(
        untrained, workspaces.pool(untrained).x, lambda: trained_model
    )
    assert predictions.class_probs.shape[0] == 60 and cache.saved == {}
