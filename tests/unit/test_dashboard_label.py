"""The Label and Queue pages' view models on in-memory fakes, through the real container."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import InMemoryDataSource, InMemoryLabelStore

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, LabelSettings
from ssvae.domain.acquisition import margin
from ssvae.domain.errors import LabelError, SsvaeError
from ssvae.domain.labels import ClassVocabulary, Undone
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.viewmodels.label import UNLABELLED, LabelBoard, most_probable
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError, build_pool_map
from ssvae.entrypoints.dashboard.viewmodels.queue import QueueBoard

DIGITS = ClassVocabulary.digits(3)
NAMES = ClassVocabulary(("OpenSSH", "kernel", "disk"))
N = 20


def _board(
    tmp_path: Path,
    vocabulary: ClassVocabulary = DIGITS,
    encoding: np.ndarray | None = None,
    store_class: type[InMemoryLabelStore] = InMemoryLabelStore,
) -> tuple[LabelBoard, InMemoryLabelStore]:
    rng = np.random.default_rng(0)
    x = rng.random((N, 2, 2)).astype(np.float32)
    source = InMemoryDataSource(vocabulary, x, np.arange(N) % 3)
    store = store_class(vocabulary, source.serials("train"))
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never.csv")))
    # The latent is the position along a line: the nearest neighbours are known.
    latent = np.column_stack([np.arange(N), np.zeros(N)]).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), N).astype(np.float32)
    predictions = Predictions(probs, latent, probs.max(axis=1), encoding=encoding)
    pool_map = build_pool_map(np.arange(N), predictions, vocabulary, np.arange(N) % 3)
    with app.data_source.override(source), app.label_store.override(store):
        service = app.label_service()
    board = LabelBoard(
        service,
        pool_map,
        lambda serials: source.load("train", serials).x,
        lambda x: 1.0 - x,
    )
    return board, store


def test_a_class_key_labels_the_clicked_point_and_delete_unlabels_it(tmp_path: Path) -> None:
    board, store = _board(tmp_path)
    update = board.press(7, "2")
    assert update is not None
    assert dict(store.load()) == {7: "2"}
    assert update.rows.tolist() == [7] and update.codes.tolist() == [2]
    assert update.counts == {"0": 0, "1": 0, "2": 1}
    assert board.press(None, "2") is None  # no point clicked: nothing happens
    assert board.press(7, "x") is None  # not a class key
    update = board.press(7, "Delete")
    assert update is not None and update.codes.tolist() == [-1]
    assert dict(store.load()) == {}
    assert [e.source for e in store.history()] == ["dashboard", "dashboard"]


def test_ctrl_z_undoes_the_latest_change(tmp_path: Path) -> None:
    board, store = _board(tmp_path)
    board.press(3, "1")
    board.press(3, "2")
    update = board.press(3, "z", ctrl=True)
    assert update is not None and update.rows.tolist() == [3] and update.codes.tolist() == [1]
    assert dict(store.load()) == {3: "1"}
    board.press(None, "Z", ctrl=True)
    assert dict(store.load()) == {}
    assert board.undo().message == "nothing to undo"


def test_a_group_is_labelled_at_once_and_undone_in_one_step(tmp_path: Path) -> None:
    board, store = _board(tmp_path)
    board.assign([1], "0")
    board.assign([2], "1")
    preview = board.preview([1, 2, 3, 4], "2")
    assert preview.count == 4
    assert preview.previous == {"0": 1, "1": 1, "2": 0, UNLABELLED: 2}
    assert preview.summary() == "label 4 points as '2'; they hold now 0: 1, 1: 1, (unlabelled): 2"
    update = board.assign([4, 3, 2, 1, 1], "2")
    assert update.rows.tolist() == [1, 2, 3, 4]
    assert dict(store.load()) == {1: "2", 2: "2", 3: "2", 4: "2"}
    undone = board.undo()
    assert undone.rows.tolist() == [1, 2, 3, 4]
    assert undone.codes.tolist() == [0, 1, -1, -1]
    assert dict(store.load()) == {1: "0", 2: "1"}
    board.undo()
    assert dict(store.load()) == {1: "0"}


def test_labelling_a_group_that_already_holds_the_class_leaves_no_empty_undo_step(
    tmp_path: Path,
) -> None:
    board, store = _board(tmp_path)
    board.assign([5], "1")
    board.assign([5], "1")  # changes nothing: the store records nothing
    board.undo()
    assert dict(store.load()) == {}


def test_named_classes_take_keys_by_position_and_reject_unknown_names(tmp_path: Path) -> None:
    board, store = _board(tmp_path, NAMES)
    assert board.class_for_key("1") == "kernel"
    assert board.class_for_key("7") is None
    board.press(0, "2")
    assert dict(store.load()) == {0: "disk"}
    with pytest.raises(LabelError, match="'printer'"):
        board.assign([1], "printer")
    with pytest.raises(DashboardError, match="not in the pool"):
        board.assign([N + 5], "disk")
    with pytest.raises(DashboardError, match="no point is selected"):
        board.assign([], "disk")


def test_an_update_names_the_new_class_of_the_serials_it_changed_only(tmp_path: Path) -> None:
    board, _ = _board(tmp_path)
    update = board.assign([3, 9], "2")
    assert board.code_in(update, 9) == 2 and board.code_in(update, 4) is None
    assert board.code_in(board.remove([9]), 9) == -1  # unlabelled is a change too


def test_the_most_probable_classes_come_first_and_ties_keep_the_class_order() -> None:
    probs = [0.1, 0.3, 0.3, 0.05, 0.25]
    assert most_probable(probs, 5).tolist() == [0, 1, 2, 3, 4]  # every class: in order
    assert most_probable(probs, 3).tolist() == [1, 2, 4]


def test_the_detail_shows_sample_reconstruction_probabilities_and_nearest_labels(
    tmp_path: Path,
) -> None:
    board, _ = _board(tmp_path)
    board.assign([2, 9, 13, 12], "1")
    detail = board.detail(10, neighbours=3)
    assert detail.serial == 10 and detail.row == 10
    np.testing.assert_allclose(detail.reconstruction, 1.0 - detail.x)
    assert detail.true_label == "1"  # 10 % 3
    assert detail.user_label is None
    assert [n.serial for n in detail.neighbours] == [9, 12, 13]  # distances 1, 2, 3
    assert [n.distance for n in detail.neighbours] == [1.0, 2.0, 3.0]
    assert detail.predicted == DIGITS.names[int(np.argmax(detail.class_probs))]
    assert board.detail(9).neighbours[0].serial == 12  # a point is not its own neighbour


def test_the_queue_proposes_unlabelled_samples_and_the_keys_label_them_in_turn(
    tmp_path: Path,
) -> None:
    board, store = _board(tmp_path)
    board.assign([0], "0")
    queue = QueueBoard(board)
    items = queue.refresh("margin", 4)
    scores = margin(board.pool_map.class_probs)
    scores[0] = -1.0  # labelled: never proposed
    assert [item.row.serial for item in items] == np.argsort(-scores, kind="stable")[:4].tolist()
    first, second = items[0].row.serial, items[1].row.serial
    assert queue.highlighted == first
    queue.press("2")
    assert store.load().get(first) == "2"
    assert queue.highlighted == second
    assert queue.items()[0].label == "2"
    queue.press("ArrowLeft")
    assert queue.highlighted == first
    queue.press("z", ctrl=True)
    assert store.load().get(first) is None
    queue.press("ArrowRight")
    queue.press("ArrowRight")
    queue.press("ArrowRight")
    queue.press("ArrowRight")
    assert queue.highlighted == items[-1].row.serial  # the strip's end holds
    with pytest.raises(DashboardError, match="k = 0"):
        queue.refresh("margin", 0)


def test_the_queue_clusters_the_maps_encodings_for_typiclust(tmp_path: Path) -> None:
    # Two tight groups in the encoding, rows 0-9 and 10-19, whatever the latent line says:
    # typiclust's first two picks come one from each group.
    encoding = np.zeros((N, 4), np.float32)
    encoding[N // 2 :, 0] = 10.0
    encoding += np.random.default_rng(1).normal(0.0, 0.1, encoding.shape).astype(np.float32)
    board, _ = _board(tmp_path, encoding=encoding)
    picks = [item.row.serial for item in QueueBoard(board).refresh("typiclust", 2)]
    assert sorted(serial >= N // 2 for serial in picks) == [False, True]
    bare, _ = _board(tmp_path)  # predictions without an encoding: a clear refusal
    with pytest.raises(SsvaeError, match="needs sample encodings"):
        QueueBoard(bare).refresh("typiclust", 2)


class _CountingStore(InMemoryLabelStore):
    """The fake store, counting undos; `gate` (when set) holds an undo until it is opened."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.undos = 0
        self.gate: threading.Event | None = None
        self.undo_started = threading.Event()

    def undo(self, source: str) -> Undone:
        self.undos += 1
        self.undo_started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return super().undo(source)


def _counting_board(tmp_path: Path) -> tuple[LabelBoard, _CountingStore]:
    board, store = _board(tmp_path, store_class=_CountingStore)
    assert isinstance(store, _CountingStore)
    return board, store


def test_a_lasso_group_is_undone_by_one_store_undo_in_one_write(tmp_path: Path) -> None:
    board, store = _counting_board(tmp_path)
    board.assign([0], "2")
    group = list(range(3, 18))
    board.assign(group, "1")
    update = board.press(None, "z", ctrl=True)
    assert update is not None and update.message == f"undone: {len(group)} points"
    assert sorted(update.rows.tolist()) == group and set(update.codes.tolist()) == {-1}
    assert store.undos == 1
    undo_entries = [e for e in store.history() if e.undoes is not None]
    assert len(undo_entries) == len(group) and len({e.batch for e in undo_entries}) == 1
    assert dict(store.load()) == {0: "2"}  # the earlier label is untouched


def test_presses_while_an_undo_runs_are_refused_with_a_message_not_queued(
    tmp_path: Path,
) -> None:
    board, store = _counting_board(tmp_path)
    board.assign([0], "2")
    board.assign([1], "0")
    board.assign([4, 5, 6], "1")
    store.gate = threading.Event()
    worker = threading.Thread(target=board.undo)
    worker.start()
    try:
        assert store.undo_started.wait(10)
        for press in (lambda: board.press(None, "z", ctrl=True), lambda: board.press(9, "1")):
            with pytest.raises(DashboardError, match="still undoing; press again when it is done"):
                press()
        with pytest.raises(DashboardError, match="still undoing"):
            board.reserve_undo()
    finally:
        store.gate.set()
        worker.join(10)
    assert store.undos == 1  # the refused presses did not wait to run later
    assert dict(store.load()) == {0: "2", 1: "0"}
    store.gate = None
    assert board.undo().message == "undone: serial 1 is unlabelled again"  # free again


@pytest.mark.usefixtures("_bokeh")
def test_the_label_page_shows_a_refused_press_in_its_status(tmp_path: Path) -> None:
    from ssvae.entrypoints.dashboard.label_page import LabelPage

    board, store = _counting_board(tmp_path)
    page = LabelPage(board, "vector")
    board.assign([2, 3], "1")
    run = board.reserve_undo()  # an undo under way
    page.press("z", True)
    assert "still undoing; press again when it is done" in page.status.object
    page.undo()
    assert "still undoing" in page.status.object
    assert store.undos == 0 and dict(store.load()) == {2: "1", 3: "1"}
    page.apply(run())
    assert page.status.object == "undone: 2 points" and dict(store.load()) == {}
    page.press("z", True)
    assert page.status.object == "nothing to undo"


@pytest.fixture
def _bokeh() -> None:
    import holoviews as hv

    hv.extension("bokeh", logo=False)


class _FakeDocument:
    """A browser session's document: next-tick callbacks wait until the test runs them."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.queued = threading.Event()

    def add_next_tick_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)
        self.queued.set()


@pytest.mark.usefixtures("_bokeh")
def test_the_queue_page_undoes_off_the_event_loop_and_refuses_presses_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssvae.entrypoints.dashboard import event_loop
    from ssvae.entrypoints.dashboard.queue_page import QueuePage

    board, store = _counting_board(tmp_path)
    page = QueuePage(QueueBoard(board), "vector")
    page.refresh()
    board.assign([0], "2")
    board.assign([4, 5, 6], "1")
    document = _FakeDocument()
    monkeypatch.setattr(event_loop, "browser_document", lambda: document)
    store.gate = threading.Event()
    try:
        # The press returns while the undo still waits in the store: the event loop is free.
        presser = threading.Thread(target=page.press, args=("z", True))
        presser.start()
        presser.join(5)
        assert not presser.is_alive(), "Ctrl+Z held the event loop until the undo finished"
        assert store.undo_started.wait(10) and "undoing" in page.status.object
        for key, ctrl in (("z", True), ("1", False)):
            page.press(key, ctrl)
            assert "still undoing; press again when it is done" in page.status.object
    finally:
        store.gate.set()
    assert document.queued.wait(10)
    (show,) = document.callbacks
    show()  # on the event loop: show what the undo did
    assert "undone: 3 points" in page.status.object
    assert store.undos == 1 and dict(store.load()) == {0: "2"}  # refused presses did nothing


def test_the_label_page_switches_between_the_class_map_and_the_latent(tmp_path: Path) -> None:
    from ssvae.entrypoints.dashboard.label_page import LabelPage
    from ssvae.entrypoints.dashboard.viewmodels.map import CLASS_VIEW, LATENT_VIEW, with_layout

    board, _ = _counting_board(tmp_path)
    page = LabelPage(board, "vector")
    assert page.map_view.options == [CLASS_VIEW, LATENT_VIEW]
    assert page.map_view.value == LATENT_VIEW
    page.map_view.value = CLASS_VIEW  # not laid out yet: a note, and the latent stays
    assert "not laid out yet" in page.note.object and page.map_view.value == LATENT_VIEW
    page.show_layout_note("laying out the map…")
    assert "laying out the map" in page.layout_note.object
    pool_map = board.pool_map
    positions = np.column_stack([np.arange(len(pool_map)), -np.arange(len(pool_map))])
    board.pool_map = with_layout(pool_map, pool_map.serials, positions.astype(float))
    page.replace_board(board)
    page.show_layout_note("")
    assert page.map_view.value == CLASS_VIEW and page.layout_note.object == ""
    np.testing.assert_array_equal(page.map.pool_map.xy, positions)
    assert "class map" in page.caption.object
    page.map_view.value = LATENT_VIEW
    np.testing.assert_array_equal(page.map.pool_map.xy, pool_map.latent_xy)
    assert "latent" in page.caption.object and board.pool_map.view == LATENT_VIEW


@pytest.mark.usefixtures("_bokeh")
def test_labelling_or_undoing_clears_the_rings_that_would_hide_the_new_colours(
    tmp_path: Path,
) -> None:
    from ssvae.entrypoints.dashboard.label_page import LabelPage

    board, store = _counting_board(tmp_path)
    page = LabelPage(board, "vector")
    figure = page.map

    def select(rows: np.ndarray) -> None:  # as a lasso does: rings, and Bokeh's selection
        figure.highlight(rows)
        figure.labelled.selected.indices = [0]
        assert len(figure.focus.data["x"]) == rows.size

    def cleared() -> bool:
        return len(figure.focus.data["x"]) == 0 and list(figure.labelled.selected.indices) == []

    rows = np.array([2, 3, 4])
    select(rows)
    page.group.show(rows)
    page.group.target.value = "1"
    page.group.confirm()
    assert dict(store.load()) == {2: "1", 3: "1", 4: "1"}
    assert cleared()
    select(np.array([5]))
    page._point_clicked(5)
    page.press("2", False)
    assert dict(store.load())[5] == "2" and cleared()
    select(rows)
    page.press("z", True)
    assert 5 not in dict(store.load()) and cleared()
