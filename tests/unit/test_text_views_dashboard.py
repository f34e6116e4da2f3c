"""The dashboard's view models on a fake text dataset: messages by map row, search, details,
the queue, and an open model through the real container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import (
    FakeModelGenerator,
    InMemoryDataSource,
    InMemoryLabelStore,
    InMemoryModelRepository,
)
from text_fakes import SYSTEMS, FakeTextSource, system_source

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, LabelSettings
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.viewmodels.hub import DashboardHub
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError, build_pool_map
from ssvae.entrypoints.dashboard.viewmodels.queue import QueueBoard, masked
from ssvae.entrypoints.dashboard.viewmodels.text import PoolTexts, shortened

N = 12


def test_search_is_case_insensitive_substring_over_the_messages() -> None:
    texts = PoolTexts(
        [2, 5, 9],
        ["Disk FULL on /var", "login ok", "disk full again"],
        {"host": ["a", "b", "c"]},
    )
    assert texts.search("disk full").tolist() == [0, 2]
    assert texts.search("  LOGIN ").tolist() == [1]
    assert texts.search("").tolist() == [] and texts.search("   ").tolist() == []
    assert texts.search("absent").tolist() == []
    assert texts.search("disk", limit=1).tolist() == [0]
    assert texts.texts_of([2, 0]) == ["disk full again", "Disk FULL on /var"]
    assert texts.extras_of(1) == (("host", "b"),)
    assert texts.extra_names == ("host",)


def test_texts_must_match_the_map_rows() -> None:
    with pytest.raises(DashboardError, match="ascending"):
        PoolTexts([3, 1], ["a", "b"])
    with pytest.raises(DashboardError, match="one value per serial"):
        PoolTexts([1, 2], ["a"])
    with pytest.raises(DashboardError, match="one value per serial"):
        PoolTexts([1, 2], ["a", "b"], {"host": ["x"]})


def test_shortened_keeps_one_line_and_marks_the_cut() -> None:
    assert shortened("a\n b   c", 10) == "a b c"
    assert shortened("abcdefghij", 5) == "abcd…"


def _board(tmp_path: Path, source: FakeTextSource) -> tuple[LabelBoard, InMemoryLabelStore]:
    serials = source.serials("train")
    store = InMemoryLabelStore(SYSTEMS, serials)
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never.csv")))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), len(serials)).astype(np.float32)
    latent = np.column_stack([np.arange(len(serials)), np.zeros(len(serials))])
    predictions = Predictions(probs, latent.astype(np.float32), probs.max(axis=1))
    pool_map = build_pool_map(serials, predictions, SYSTEMS)
    with app.data_source.override(source), app.label_store.override(store):
        service = app.label_service()
    board = LabelBoard(
        service,
        pool_map,
        lambda chosen: source.load("train", chosen).x,
        None,
        texts=PoolTexts.from_catalog(source, serials),
    )
    return board, store


def test_the_detail_shows_the_message_and_its_extra_columns(tmp_path: Path) -> None:
    source = system_source(train=N)
    board, store = _board(tmp_path, source)
    detail = board.detail(4)
    assert detail.text == source.texts("train", np.array([4]))[0]
    assert detail.extras == (("host", "host-0"),)
    assert detail.reconstruction is None
    assert board.sample_text(5) == source.texts("train", np.array([5]))[0]
    # Search finds every kernel message; labelling them as a group goes through the store.
    rows = board.search("TEMPERATURE")
    assert rows.tolist() == [1, 4, 7, 10]
    update = board.assign(board.pool_map.serials[rows], "kernel")
    assert dict(store.load()) == {1: "kernel", 4: "kernel", 7: "kernel", 10: "kernel"}
    assert update.codes.tolist() == [1, 1, 1, 1]


def test_image_boards_have_no_text_and_refuse_a_search(tmp_path: Path) -> None:
    vocabulary = SYSTEMS
    x = np.zeros((4, 2, 2), np.float32)
    source = InMemoryDataSource(vocabulary, x)
    store = InMemoryLabelStore(vocabulary, source.serials("train"))
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never.csv")))
    probs = np.full((4, 3), 1 / 3, np.float32)
    pool_map = build_pool_map(
        np.arange(4), Predictions(probs, np.zeros((4, 2), np.float32), probs[:, 0]), vocabulary
    )
    with app.data_source.override(source), app.label_store.override(store):
        board = LabelBoard(app.label_service(), pool_map, lambda s: x[s])
    assert board.detail(1).text is None and board.sample_text(1) is None
    with pytest.raises(DashboardError, match="no texts to search"):
        board.search("x")
    with pytest.raises(DashboardError, match="row-aligned"):
        LabelBoard(app.label_service(), pool_map, lambda s: x[s], texts=PoolTexts([0], ["a"]))


def test_the_queue_rows_carry_their_messages(tmp_path: Path) -> None:
    source = system_source(train=N)
    board, _ = _board(tmp_path, source)
    queue = QueueBoard(board)
    items = queue.refresh("margin", 4)
    assert 1 <= len(items) <= 4  # near-duplicate messages are shown once
    assert len({masked(item.row.text or "") for item in items}) == len(items)
    for item in items:
        assert item.row.text == source.texts("train", np.array([item.row.serial]))[0]


def _hub(tmp_path: Path, source: Any) -> DashboardHub:
    def make_app(settings: AppSettings) -> Any:
        app = bootstrap(settings)
        app.data_source.override(source)
        app.model_repository.override(InMemoryModelRepository())
        app.model_generator.override(FakeModelGenerator())
        return app

    return DashboardHub(AppSettings(artifacts_dir=tmp_path / "artifacts"), make_app)


def test_an_open_text_model_reads_its_pool_messages_once(tmp_path: Path) -> None:
    source = system_source(train=30)
    hub = _hub(tmp_path, source)
    hub.create("mixture_k5", "t", num_samples=20)
    model = hub.open("t")
    assert model.is_text
    model.warm()
    texts = model.texts()
    assert texts is not None and model.texts() is texts
    pool_map = model.pool_map()
    assert texts.serials.tolist() == pool_map.serials.tolist()
    assert texts.texts == source.texts("train", pool_map.serials)
    board = model.board()
    serial = int(pool_map.serials[3])
    detail = board.detail(serial)
    assert detail.text == source.texts("train", np.array([serial]))[0]
    assert detail.reconstruction is None  # a decoded embedding is not shown for text


def test_a_text_dataset_without_a_catalog_is_a_clear_error(tmp_path: Path) -> None:
    class Mute(InMemoryDataSource):
        def describe(self) -> Any:
            import attrs

            return attrs.evolve(super().describe(), kind="text")

    x = np.zeros((10, 3), np.float32)
    hub = _hub(tmp_path, Mute(SYSTEMS, x, np.arange(10) % 3))
    hub.create("standard", "m")
    with pytest.raises(DashboardError, match="gives no texts"):
        hub.open("m").texts()
