"""The queue says why it proposes a sample, leaves near-duplicates out, names the keys of
named classes, fills itself and suggests cold_start before training: the Queue page and its
view model on in-memory fakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_dashboard_groups import OTHERS, TEMPLATE, _bokeh, _text_board  # noqa: F401
from test_dashboard_label import DIGITS, NAMES, N, _board

from ssvae.entrypoints.dashboard.viewmodels.queue import (
    COLD_START,
    DUPLICATE_COSINE,
    SCORE_MEANINGS,
    QueueBoard,
    distinct,
    key_legend,
    masked,
)


def test_messages_of_one_template_mask_to_one_text() -> None:
    assert len({masked(text) for text in TEMPLATE}) == 1
    assert masked(OTHERS[0]) != masked(OTHERS[1])
    assert masked("Took  10 ms") == masked("took 250 MS")
    assert masked("connection from 210.245.165.136 () at Wed Jun 22 13:16:30 2005") == masked(
        "connection from 216.12.111.241 () at Thu Jul 21 09:04:41 2005"
    )
    assert masked("monitor online") != masked("monitor offline")  # words stay words


def test_distinct_keeps_the_ranking_and_drops_what_is_close_to_a_kept_one() -> None:
    texts = [TEMPLATE[0], OTHERS[0], TEMPLATE[1], OTHERS[1], TEMPLATE[2]]
    assert distinct(5, 5, texts=texts) == [0, 1, 3]
    assert distinct(2, 5, texts=texts) == [0, 1]
    assert distinct(3, 5) == [0, 1, 2]  # nothing to compare: the ranking as it is
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [1.0, 1.0]])
    cosine = float(vectors[0] @ vectors[3] / np.linalg.norm(vectors[3]))
    assert distinct(4, 4, vectors) == [0, 1, 3]  # row 2 is a near-copy of row 0
    assert distinct(4, 4, vectors, threshold=cosine) == [0, 1]  # row 3 as close as the threshold
    assert cosine < DUPLICATE_COSINE  # two directions 45 degrees apart are no duplicates


def test_six_copies_of_one_log_template_make_one_queue_item(tmp_path: Path) -> None:
    texts = [*TEMPLATE, *OTHERS]
    rng = np.random.default_rng(0)
    board, _ = _text_board(tmp_path, texts, rng.normal(size=(len(texts), 8)))
    queue = QueueBoard(board)
    items = queue.refresh("margin", 3)
    assert [item.row.serial for item in items] == [0, 6, 7]
    assert queue.left_out == 5


def test_near_identical_images_make_one_queue_item(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = rng.random(16)
    vectors = np.vstack([base + rng.normal(0, 0.01, 16) for _ in range(4)] + [rng.random((4, 16))])
    texts = [f"sample {chr(97 + i)}" for i in range(8)]  # distinct words: vectors decide
    board, _ = _text_board(tmp_path, texts, vectors)
    board.texts = None  # image-like data: inputs alone
    items = QueueBoard(board).refresh("margin", 4)
    assert [item.row.serial for item in items] == [0, 4, 5, 6]


def test_each_item_names_the_runner_up_class_and_the_score_is_explained(tmp_path: Path) -> None:
    board, _ = _board(tmp_path, NAMES)
    queue = QueueBoard(board)
    item = queue.refresh("margin", 1)[0]
    probs = board.pool_map.class_probs[board.pool_map.rows_of([item.row.serial])[0]]
    order = np.argsort(-probs)
    assert item.row.predicted == NAMES.names[order[0]]
    assert item.runner_up == NAMES.names[order[1]]
    assert item.runner_up_probability == pytest.approx(float(probs[order[1]]))
    assert "two likeliest classes" in queue.meaning()
    assert set(QueueBoard.policies) <= set(SCORE_MEANINGS)


def test_named_classes_get_a_key_legend_and_digit_classes_need_none(tmp_path: Path) -> None:
    named, _ = _board(tmp_path, NAMES)
    assert key_legend(named) == (("0", "OpenSSH"), ("1", "kernel"), ("2", "disk"))
    digits, _ = _board(tmp_path, DIGITS)
    assert key_legend(digits) == ()


def test_before_training_the_queue_suggests_cold_start(tmp_path: Path) -> None:
    board, _ = _board(tmp_path)
    queue = QueueBoard(board, trained=False)
    assert queue.policy == COLD_START
    assert len(queue.refresh()) == min(queue.k, N)
    assert queue.untrained_warning() == ""
    queue.refresh("margin")
    assert "not trained yet" in queue.untrained_warning()
    queue.refresh(COLD_START)
    queue.new_predictions(board, trained=True)  # trained now: margin
    assert queue.policy == "margin" and not queue.asked
    assert QueueBoard(board).policy == "margin"


def test_the_queue_says_when_its_batch_is_done_and_when_the_pool_is_exhausted(
    tmp_path: Path,
) -> None:
    board, _ = _board(tmp_path)
    queue = QueueBoard(board)
    queue.refresh("margin", 2)
    assert not queue.finished
    queue.press("1")
    queue.press("2")
    assert queue.finished
    board.assign(list(range(N)), "0")
    assert queue.refresh("margin", 2) == () and queue.asked


@pytest.mark.usefixtures("_bokeh")
def test_the_queue_page_fills_itself_and_prompts_at_its_end(tmp_path: Path) -> None:
    from ssvae.entrypoints.dashboard.queue_page import QueuePage

    board, _ = _board(tmp_path, NAMES)
    page = QueuePage(QueueBoard(board, trained=False), "vector")
    assert page.policy.value == COLD_START
    assert page.strip.object.count("ssvae-queue-item") == page.board.k  # filled, no refresh
    assert "cold_start:" in page.info.object
    assert "<b>0</b> OpenSSH" in page.legend.object
    for _ in range(page.board.k):
        page.press("0", False)
    assert "ssvae-queue-end" in page.info.object and "refresh queue" in page.info.object
    page.new_predictions(board, trained=True)
    assert page.policy.value == "margin" and "runner-up" in page.strip.object
