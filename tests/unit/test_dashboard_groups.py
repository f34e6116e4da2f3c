"""Reviewing a drawn or searched group before it is labelled: the Label page and its view
model on in-memory fakes, through the real container."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import InMemoryDataSource, InMemoryLabelStore
from test_dashboard_label import NAMES, _board

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, LabelSettings
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.viewmodels.label import (
    CHOOSE_CLASS,
    REMOVE,
    GroupReview,
    LabelBoard,
    group_target,
)
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError, build_pool_map
from ssvae.entrypoints.dashboard.viewmodels.text import PoolTexts

# One log template, six times with other numbers and ids: one message for the queue.
TEMPLATE = [
    f"Received block blk_{block} of size {size} from /10.250.{a}.{b}"
    for block, size, a, b in [
        ("-1608999687919862906", 67108864, 19, 102),
        ("7503483334202473044", 67108864, 10, 6),
        ("-3544583377289625738", 3545, 14, 224),
        ("0x7f3a9c", 91178, 11, 85),
        ("5143868228008637404", 67108864, 7, 1),
        ("-9073992586687739851", 233217, 15, 96),
    ]
]
OTHERS = ["PacketResponder 1 for block terminating", "Verification succeeded for blk_42"]


def test_a_group_shows_every_member_when_it_fits_and_a_seeded_sample_when_it_does_not() -> None:
    small = GroupReview.of([5, 3, 3, 9], limit=8)
    assert small.rows.tolist() == [3, 5, 9] and small.shown.tolist() == [3, 5, 9]
    assert small.summary() == "3 points inside the drawn area"
    large = GroupReview.of(np.arange(100, 0, -1), limit=8, seed=1)
    assert len(large) == 100 and large.shown.size == 8
    assert large.shown.tolist() != sorted(large.shown.tolist())[:8] or large.shown.max() > 8
    assert set(large.shown.tolist()) <= set(range(1, 101))
    assert large.shown.tolist() == GroupReview.of(np.arange(1, 101), limit=8, seed=1).shown.tolist()
    assert "a random 8 of them shown" in large.summary()


def test_dropping_a_member_leaves_the_rest_and_gives_its_place_to_the_next() -> None:
    review = GroupReview.of(np.arange(20), limit=4, seed=0)
    first, fifth = int(review.shown[0]), int(review.order[4])
    after = review.without(first)
    assert len(after) == 19 and first not in after.rows.tolist()
    assert after.shown.tolist() == [*review.shown[1:].tolist(), fifth]
    assert after.summary().startswith("19 points inside the drawn area; 1 dropped")
    with pytest.raises(DashboardError, match="not in the group"):
        after.without(first)


def test_a_group_has_no_class_until_one_is_chosen() -> None:
    for unchosen in (CHOOSE_CLASS, None, ""):
        with pytest.raises(DashboardError, match="choose the group's class first"):
            group_target(unchosen)
    assert group_target(REMOVE) is None
    assert group_target("kernel") == "kernel"


def test_a_reviewed_group_labels_the_points_left_in_one_undo_step(tmp_path: Path) -> None:
    board, store = _board(tmp_path)
    review = GroupReview.of([2, 3, 4, 5]).without(4)
    with pytest.raises(DashboardError, match="choose the group's class"):
        board.label_group(review, CHOOSE_CLASS)
    assert dict(store.load()) == {}  # refused: nothing written
    update = board.label_group(review, "1")
    assert update.rows.tolist() == [2, 3, 5]
    assert dict(store.load()) == {2: "1", 3: "1", 5: "1"}
    board.label_group(GroupReview.of([3]), REMOVE)
    assert dict(store.load()) == {2: "1", 5: "1"}
    board.undo()
    board.undo()
    assert dict(store.load()) == {}


@pytest.mark.usefixtures("_bokeh")
def test_the_label_page_reviews_a_group_before_labelling_it(tmp_path: Path) -> None:
    from ssvae.entrypoints.dashboard.label_page import LabelPage

    board, store = _board(tmp_path)
    page = LabelPage(board, "image")
    page.group.show(np.array([2, 3, 4, 5]))
    assert page.group.view.visible and page.group.target.value == CHOOSE_CLASS
    cards = page.group.grid.cards
    assert [card["row"] for card in cards] == [2, 3, 4, 5]
    assert all("<img" in card["html"] for card in cards)  # thumbnails of the members
    page.group.ask()  # no class chosen: refused with a prompt, nothing labelled
    assert "choose the group&#x27;s class first" in page.group.prompt.object
    page.group.confirm()
    assert dict(store.load()) == {} and page.group.view.visible
    page.group.grid.dropped = [4, 1]  # a click on the card of row 4
    assert [card["row"] for card in page.group.grid.cards] == [2, 3, 5]
    page.group.target.value = "2"
    page.group.ask()
    assert page.group.confirm_text.object.startswith("label 3 points as &#x27;2&#x27;")
    page.group.confirm()
    assert dict(store.load()) == {2: "2", 3: "2", 5: "2"}
    assert not page.group.view.visible
    page.group.show(np.array([7, 8]))  # the next group starts unchosen again
    assert page.group.target.value == CHOOSE_CLASS
    page.group.cancel(say=True)
    assert "nothing was labelled" in page.status.object
    assert dict(store.load()) == {2: "2", 3: "2", 5: "2"}
    page.press("z", True)  # the group was one step
    assert dict(store.load()) == {}


def _text_board(
    tmp_path: Path, texts: list[str], vectors: np.ndarray, vocabulary: ClassVocabulary = NAMES
) -> tuple[LabelBoard, InMemoryLabelStore]:
    n = len(texts)
    source = InMemoryDataSource(vocabulary, vectors.astype(np.float32), np.arange(n) % 3)
    store = InMemoryLabelStore(vocabulary, source.serials("train"))
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never.csv")))
    # Every sample as uncertain as the next (margin ties go to the lower serial).
    probs = np.tile(np.array([0.4, 0.35, 0.25], np.float32), (n, 1))
    latent = np.column_stack([np.arange(n), np.zeros(n)]).astype(np.float32)
    predictions = Predictions(probs, latent, probs.max(axis=1))
    pool_map = build_pool_map(
        np.arange(n), predictions, vocabulary, np.arange(n) % 3, inputs=vectors
    )
    with app.data_source.override(source), app.label_store.override(store):
        service = app.label_service()
    board = LabelBoard(
        service,
        pool_map,
        lambda serials: source.load("train", serials).x,
        texts=PoolTexts(np.arange(n), texts),
    )
    return board, store


@pytest.mark.usefixtures("_bokeh")
def test_a_text_group_is_reviewed_by_its_messages(tmp_path: Path) -> None:
    from ssvae.entrypoints.dashboard.label_page import LabelPage

    texts = [*TEMPLATE, *OTHERS]
    board, _ = _text_board(tmp_path, texts, np.eye(len(texts)))
    page = LabelPage(board, "text")
    page.group.show(np.array([0, 6]))
    shown = [card["html"] for card in page.group.grid.cards]
    assert "blk_-1608999687919862906" in shown[0] and "PacketResponder" in shown[1]


@pytest.fixture
def _bokeh() -> None:
    import holoviews as hv

    hv.extension("bokeh", logo=False)
