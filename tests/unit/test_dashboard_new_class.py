"""The Label page's view model when a user adds a class: the map, codes and details follow."""

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

from ssvae.application.bootstrap import bootstrap
from ssvae.application.labeling import LabelService
from ssvae.application.settings import AppSettings, LabelSettings
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.viewmodels.hub import DashboardHub
from ssvae.entrypoints.dashboard.viewmodels.label import (
    CHOOSE_CLASS,
    REMOVE,
    LabelBoard,
    with_vocabulary,
)
from ssvae.entrypoints.dashboard.viewmodels.map import (
    PREDICTED,
    USER_LABEL,
    DashboardError,
    build_pool_map,
    colour_column,
)
from ssvae.entrypoints.dashboard.viewmodels.queue import QueueBoard
from ssvae.entrypoints.dashboard.viewmodels.training import FINISHED

VOCABULARY = ClassVocabulary(("OpenSSH", "kernel", "disk"))
N = 12


def _board(tmp_path: Path) -> tuple[LabelBoard, InMemoryLabelStore, LabelService]:
    rng = np.random.default_rng(0)
    x = rng.random((N, 4)).astype(np.float32)
    source = InMemoryDataSource(VOCABULARY, x, np.arange(N) % 3)
    store = InMemoryLabelStore(VOCABULARY, source.serials("train"))
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never.csv")))
    latent = np.column_stack([np.arange(N), np.zeros(N)]).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), N).astype(np.float32)
    tau = rng.dirichlet(np.ones(3), N).astype(np.float32)
    predictions = Predictions(probs, latent, probs.max(axis=1), tau_probs=tau)
    pool_map = build_pool_map(np.arange(N), predictions, VOCABULARY, np.arange(N) % 3)
    with app.data_source.override(source), app.label_store.override(store):
        service = app.label_service()
    return LabelBoard(service, pool_map, lambda s: source.load("train", s).x), store, service


def test_a_grown_vocabulary_gives_the_new_class_no_probability_until_trained(
    tmp_path: Path,
) -> None:
    board, _, _ = _board(tmp_path)
    pool_map = board.pool_map
    grown = with_vocabulary(pool_map, VOCABULARY.with_class("nginx"))
    assert grown.vocabulary.names[-1] == "nginx"
    assert grown.class_probs.shape == (N, 4) and grown.tau_probs is not None
    assert grown.tau_probs.shape == (N, 4)
    np.testing.assert_array_equal(grown.class_probs[:, :3], pool_map.class_probs)
    assert not grown.class_probs[:, 3].any() and not grown.tau_probs[:, 3].any()
    np.testing.assert_array_equal(grown.predicted, pool_map.predicted)
    assert with_vocabulary(grown, grown.vocabulary) is grown
    with pytest.raises(DashboardError, match="do not extend"):
        with_vocabulary(pool_map, ClassVocabulary(("kernel", "OpenSSH", "disk", "nginx")))


def test_adding_a_class_labels_the_clicked_point_and_undo_reverts_it(tmp_path: Path) -> None:
    board, store, _ = _board(tmp_path)
    update = board.add_class("nginx", [5])
    assert dict(store.load()) == {5: "nginx"}
    assert board.class_names == ("OpenSSH", "kernel", "disk", "nginx")
    assert update.rows.tolist() == [5] and update.codes.tolist() == [3]
    assert update.counts == {"OpenSSH": 0, "kernel": 0, "disk": 0, "nginx": 1}
    assert "added class 'nginx'" in update.message
    assert board.codes().tolist() == [-1] * 5 + [3] + [-1] * 6
    assert colour_column(board.pool_map, USER_LABEL, board.labels()).categories == (
        "OpenSSH",
        "kernel",
        "disk",
        "nginx",
    )
    assert colour_column(board.pool_map, PREDICTED, board.labels()).values.max() <= 2
    detail = board.detail(5)
    assert detail.user_label == "nginx" and detail.class_probs.shape == (4,)
    assert detail.class_probs[3] == 0.0 and detail.predicted != "nginx"
    assert board.press(6, "nginx") is not None  # its name is a key now, like the others
    assert board.undo().codes.tolist() == [-1]
    assert board.undo().codes.tolist() == [-1]
    assert dict(store.load()) == {} and "nginx" in store.load().vocabulary


def test_a_class_can_be_added_with_no_point_clicked(tmp_path: Path) -> None:
    board, store, _ = _board(tmp_path)
    update = board.add_class("nginx")
    assert update.rows.size == 0 and len(store.load()) == 0
    assert board.class_names[-1] == "nginx" and update.counts["nginx"] == 0
    board.assign([2, 3], "nginx")
    assert dict(store.load()) == {2: "nginx", 3: "nginx"}


@pytest.mark.parametrize(
    ("name", "serials", "error"),
    [
        ("kernel", [5], LabelError),
        ("", [5], LabelError),
        ("nginx", [N + 7], DashboardError),
    ],
    ids=["existing", "empty", "not-in-the-map"],
)
def test_a_bad_new_class_changes_nothing(
    tmp_path: Path, name: str, serials: list[int], error: type[Exception]
) -> None:
    board, store, _ = _board(tmp_path)
    with pytest.raises(error):
        board.add_class(name, serials)
    assert store.load().vocabulary == VOCABULARY and len(store.load()) == 0
    assert board.class_names == VOCABULARY.names


def test_a_class_added_elsewhere_reaches_the_board_with_its_next_update(
    tmp_path: Path,
) -> None:
    board, _, service = _board(tmp_path)
    service.set([4], "nginx", source="cli", new_class=True)  # the CLI, meanwhile
    update = board.assign([1], "disk")
    assert board.class_names[-1] == "nginx"
    assert update.counts["nginx"] == 1
    assert board.codes()[4] == 3


def test_the_queue_proposes_and_names_classes_after_one_was_added(tmp_path: Path) -> None:
    board, store, _ = _board(tmp_path)
    board.add_class("nginx", [0])
    queue = QueueBoard(board)
    items = queue.refresh("margin", 4)
    assert len(items) == 4 and all(item.row.predicted in VOCABULARY.names for item in items)
    queue.assign("nginx")
    assert list(store.load().counts().values()) == [0, 0, 0, 2]


@pytest.fixture(scope="module")
def _bokeh() -> None:
    import holoviews as hv

    hv.extension("bokeh", logo=False)


@pytest.mark.usefixtures("_bokeh")
def test_the_label_page_adds_a_class_and_every_class_widget_shows_it(tmp_path: Path) -> None:
    from ssvae.entrypoints.dashboard.label_page import LabelPage
    from ssvae.entrypoints.dashboard.queue_page import QueuePage

    board, store, _ = _board(tmp_path)
    page = LabelPage(board, "vector")
    queue = QueuePage(QueueBoard(page.board), "vector")
    page.on_classes_changed = lambda: queue.classes_changed(page.board)
    old_map = page.map
    page.selected = 5
    page.new_class.value = " nginx "
    page.add_class()
    assert dict(store.load()) == {5: "nginx"}
    assert "added class &#x27;nginx&#x27;" in page.status.object
    assert [b.label for b in page.class_buttons][-1] == "[3] nginx"  # key 3 labels with it
    assert page.picker.options == [*VOCABULARY.names, "nginx"]
    assert page.group.target.options == [CHOOSE_CLASS, *VOCABULARY.names, "nginx", REMOVE]
    assert page.map is not old_map and len(page.map.pool_map.vocabulary) == 4
    assert page.new_class.value == ""
    assert queue.board.board.class_names[-1] == "nginx"
    assert queue.picker.options[-1] == "nginx"

    page.new_class.value = "kernel"
    page.add_class()
    assert "already exists" in page.status.object and page.new_class.value == "kernel"
    assert store.load().vocabulary.names == (*VOCABULARY.names, "nginx")


def test_generated_samples_show_the_classes_the_model_knows() -> None:
    from types import SimpleNamespace

    from ssvae.entrypoints.dashboard.queue_page import generated_html

    generated = SimpleNamespace(
        per_class=np.zeros((3, 2, 4, 4)), per_component=np.zeros((1, 3, 4, 4)), mixing_weights=[1]
    )
    shown = generated_html(generated, (*VOCABULARY.names, "nginx"), "image")
    assert ">disk<" in shown and ">nginx<" not in shown


def _hub(tmp_path: Path) -> DashboardHub:
    """The server's state with real workspaces and label files, fake data and models."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % 3
    x = (rng.random((N, 4)) * 0.1 + y[:, None]).astype(np.float32)
    source = InMemoryDataSource(VOCABULARY, x, y)
    checkpoints: dict[Path, dict[str, Any]] = {}

    def make_app(settings: AppSettings) -> Any:
        app = bootstrap(settings)
        repository = InMemoryModelRepository(callbacks=[app.training_relay()])
        repository.checkpoints = checkpoints
        app.data_source.override(source)
        app.model_repository.override(repository)
        app.model_generator.override(FakeModelGenerator())
        return app

    return DashboardHub(AppSettings(artifacts_dir=tmp_path / "artifacts"), make_app)


def test_every_session_and_page_of_a_model_sees_a_class_added_in_one(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.create("mixture_k5", "m")
    model = hub.open("m")
    model.board().add_class("nginx", [4])
    workspace = tmp_path / "artifacts" / "models" / "m"
    assert (workspace / "labels.csv").read_text().splitlines() == ["Serial,label", "4,nginx"]
    assert model.pool_map().vocabulary.names[-1] == "nginx"
    other_session = model.board()
    assert other_session.class_names[-1] == "nginx" and other_session.codes()[4] == 3
    assert model.overview().class_names[-1] == "nginx"
    assert model.overview().counts["nginx"] == 1

    other_session.assign([0, 3], "OpenSSH")
    model.job.start(1)
    assert model.job.wait(20)
    assert model.job.progress().state == FINISHED, model.job.progress().message
    assert model.model().spec.network.num_classes == 4
    assert model.pool_map().class_probs.shape == (N, 4)
    clone = hub.clone(model, "m-copy")
    copied = hub.open(clone.id).labels()
    assert copied.vocabulary().names[-1] == "nginx" and copied.labels().get(4) == "nginx"


def test_a_clone_keeps_an_added_class_that_labels_nothing_yet(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.create("standard", "m")
    hub.open("m").board().add_class("nginx")
    clone = hub.clone(hub.open("m"), "m-copy")
    assert hub.open(clone.id).labels().vocabulary().names[-1] == "nginx"
