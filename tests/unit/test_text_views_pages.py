"""The Label and Queue pages built for a fake text dataset (Panel objects, no server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import InMemoryLabelStore
from text_fakes import SYSTEMS, system_source

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, LabelSettings
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.label_page import CHOOSE_MATCH, LabelPage, counters_html
from ssvae.entrypoints.dashboard.queue_page import QueuePage, generated_html
from ssvae.entrypoints.dashboard.sample_detail import probability_bars
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard
from ssvae.entrypoints.dashboard.viewmodels.map import build_pool_map
from ssvae.entrypoints.dashboard.viewmodels.queue import QueueBoard
from ssvae.entrypoints.dashboard.viewmodels.text import PoolTexts, pool_examples

N = 12


@pytest.fixture(autouse=True, scope="module")
def _bokeh() -> None:
    import holoviews as hv

    hv.extension("bokeh", logo=False)


def _board(tmp_path: Path, vocabulary: ClassVocabulary = SYSTEMS) -> LabelBoard:
    source = system_source(train=N)
    serials = source.serials("train")
    store = InMemoryLabelStore(vocabulary, serials)
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never.csv")))
    classes = len(vocabulary)
    probs = np.eye(classes, dtype=np.float32)[np.arange(N) % 3] * 0.9 + 0.1 / classes
    latent = np.column_stack([np.arange(N), np.arange(N) % 3]).astype(np.float32)
    resp = np.eye(2, dtype=np.float32)[np.arange(N) % 2]
    predictions = Predictions(probs, latent, probs.max(axis=1), responsibilities=resp)
    pool_map = build_pool_map(serials, predictions, vocabulary, np.arange(N) % 3)
    with app.data_source.override(source), app.label_store.override(store):
        service = app.label_service()
    texts = PoolTexts.from_catalog(source, serials)
    return LabelBoard(service, pool_map, lambda s: source.load("train", s).x, texts=texts)


def test_a_search_selects_the_matches_as_a_group_and_a_match_shows_its_message(
    tmp_path: Path,
) -> None:
    page = LabelPage(_board(tmp_path), "text")
    page.find("SECTOR")
    assert page.group.review is not None and page.group.review.rows.tolist() == [2, 5, 8, 11]
    assert page.group.view.visible
    assert "ssvae-group-count'>4<" in page.group.info.object
    messages = " ".join(card["html"] for card in page.group.grid.cards)
    assert messages.count("ssvae-review-text") == 4
    assert "&lt;bad block&gt;" in messages  # messages are escaped
    options = page.matches.options
    assert list(options.items())[:2] == [
        (CHOOSE_MATCH, None),
        ("2: EXT4-fs error (device sda2): <bad block> at sector 2", 2),
    ]
    assert list(options.values())[1:] == [2, 5, 8, 11]
    page.matches.value = 5
    assert page.selected == 5
    assert "EXT4-fs error (device sda5): &lt;bad block&gt; at sector 5" in page.detail.object
    assert "host-1" in page.detail.object  # the extra column
    review = page.group.review
    assert review is not None and len(review) == 4  # still there for a group label
    page.press("2", ctrl=False)
    assert dict(page.board.labels()) == {5: "disk"}
    page.find("no such message")
    assert not page.group.view.visible and not page.matches.visible


def test_the_hover_carries_the_messages_and_the_queue_shows_them(tmp_path: Path) -> None:
    board = _board(tmp_path)
    page = LabelPage(board, "text")
    assert page.map._texts is not None and len(page.map._texts) == N
    board.assign([4], "kernel")
    page.refresh_labels()
    assert page.map.labelled.data["text"] == [board.sample_text(4)]
    queue = QueuePage(QueueBoard(board), "text", pool_examples(board.pool_map, board.texts))
    queue.refresh()
    first = queue.board.rows[0]
    assert first.text is not None and "ssvae-text" in queue.strip.object
    assert first.text.split(" ")[0] in queue.strip.object
    assert "component 0" in queue.generated.object and "component 1" in queue.generated.object


def test_many_classes_get_the_picker_and_the_most_probable_bars(tmp_path: Path) -> None:
    many = ClassVocabulary(tuple(f"HDFS:E{i}" for i in range(30)))
    page = LabelPage(_board(tmp_path, many), "text")
    assert page.class_buttons == []  # no wall of 30 buttons: the picker instead
    assert page.picker.options[:2] == ["HDFS:E0", "HDFS:E1"]
    page.picker.value = "HDFS:E17"
    assert "click a point first" in page.status.object and page.picker.value == ""
    page.selected = 3
    page.picker.value = "HDFS:E17"  # choosing a class labels the clicked point
    assert dict(page.board.labels()) == {3: "HDFS:E17"}
    assert page.picker.value == ""  # ready for the next point
    queue = QueuePage(QueueBoard(page.board), "text")
    assert queue.picker.visible
    first, second = (row.serial for row in queue.board.rows[:2])  # filled on opening
    queue.picker.value = "HDFS:E2"
    assert page.board.labels().get(first) == "HDFS:E2"
    assert queue.board.highlighted == second and queue.picker.value == ""
    counters = counters_html(page.board.counts())
    assert counters.count("ssvae-chip") == 2 and "HDFS:E17: <b" in counters
    assert "2 of 30 classes labelled" in counters and "total: <b>2</b>" in counters
    probs = np.linspace(0, 1, 30)
    bars = probability_bars(many.names, probs, "q(y|x)")
    assert "top 10 of 30" in bars
    assert bars.index("HDFS:E29") < bars.index("HDFS:E28") and "HDFS:E19<" not in bars


def test_ten_classes_keep_their_digit_buttons_and_image_pages_their_images(
    tmp_path: Path,
) -> None:
    page = LabelPage(_board(tmp_path, ClassVocabulary.digits(10)), "text")
    assert [b.label for b in page.class_buttons][:2] == ["0", "1"]
    page = LabelPage(_board(tmp_path), "text")
    assert [b.label for b in page.class_buttons] == ["[0] sshd", "[1] kernel", "[2] disk"]
    assert not QueuePage(QueueBoard(page.board), "text").picker.visible  # keys suffice
    assert "generated samples are shown for image data" in generated_html(None, ("a",), "vector")
    bars = probability_bars(("0", "1"), [0.25, 0.75], "q")
    assert bars.index(">0<") < bars.index(">1<")  # ten classes or fewer keep their order


def test_a_class_button_names_the_key_that_labels_its_class(tmp_path: Path) -> None:
    # "3" is a class of its own: key 3 labels it, so the fourth class's button claims no key.
    page = LabelPage(_board(tmp_path, ClassVocabulary(("sshd", "3", "kernel", "disk"))), "text")
    assert [b.label for b in page.class_buttons] == ["[0] sshd", "3", "[2] kernel", "disk"]
    page.selected = 4
    page.press("3", ctrl=False)
    assert dict(page.board.labels()) == {4: "3"}


def test_matches_are_listed_by_serial_and_message_on_one_line_and_the_caption_names_the_view(
    tmp_path: Path,
) -> None:
    board = _board(tmp_path)
    texts = board.texts
    assert texts is not None
    listed = texts.listed(np.array([5, 2]), 20)
    assert [serial for _, serial in listed] == [5, 2]
    assert listed[0][0] == f"5: {texts.text(5)[:19]}…" and "\n" not in listed[0][0]
    assert board.pool_map.projection == "the 2-D latent"
