"""Message examples per class and per component, checked against a slow reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.text_examples import text_examples, top_rows

NAMES = ("sshd", "kernel", "disk")


def _lookup_counter() -> tuple[list[list[int]], object]:
    calls: list[list[int]] = []

    def lookup(serials: np.ndarray) -> list[str]:
        calls.append([int(s) for s in serials])
        return [f"message {int(s)}" for s in serials]

    return calls, lookup


def test_classes_show_their_surest_predictions_and_components_their_members() -> None:
    serials = np.array([10, 11, 12, 13, 14, 15])
    probs = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.95, 0.03, 0.02],
            [0.1, 0.1, 0.8],
            [0.1, 0.85, 0.05],
        ]
    )
    resp = np.array([[1, 0], [0.8, 0.2], [0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    truth = np.array([0, 1, 1, 0, 2, -1])
    calls, lookup = _lookup_counter()
    examples = text_examples(serials, probs, resp, truth, NAMES, lookup, source="test", count=2)
    sshd, kernel, disk = examples.per_class
    assert [e.serial for e in sshd.examples] == [13, 10]
    assert [e.score for e in sshd.examples] == [0.95, 0.9]
    assert (sshd.members, sshd.majority, sshd.purity) == (3, "sshd", 2 / 3)
    assert sshd.share == 0.5
    assert [e.serial for e in kernel.examples] == [15, 12]
    assert [e.true_class for e in kernel.examples] == [None, "kernel"]  # 15 has no truth
    assert (kernel.majority, kernel.purity) == ("kernel", 1.0)
    assert [e.text for e in disk.examples] == ["message 14"]
    first, second = examples.per_component
    assert first.name == "component 0" and [e.serial for e in first.examples] == [10, 11]
    assert [e.serial for e in second.examples] == [12, 15]
    assert second.members == 3
    assert len(calls) == 1  # every message looked up at once
    assert sorted(calls[0]) == [10, 11, 12, 13, 14, 15]


def test_a_text_repeated_word_for_word_is_shown_once() -> None:
    texts = {1: "disk full", 2: "disk full", 3: "disk full", 4: "disk nearly full", 5: "ok"}
    probs = np.array([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.8, 0.2, 0.0]])
    probs = np.vstack([probs, [0.7, 0.3, 0.0]])
    examples = text_examples(
        list(texts),
        probs,
        None,
        None,
        NAMES,
        lambda s: [texts[int(v)] for v in s],
        source="t",
        count=2,
    )
    shown = examples.per_class[0].examples
    assert [(e.serial, e.text) for e in shown] == [(1, "disk full"), (4, "disk nearly full")]
    assert examples.per_class[0].members == 5  # the count still covers every member


def test_one_component_and_no_truth_give_class_groups_only() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    _, lookup = _lookup_counter()
    examples = text_examples(
        [1, 2], probs, np.ones((2, 1)), None, NAMES, lookup, source="pool", count=5
    )
    assert examples.per_component == ()
    sshd, kernel, _ = examples.per_class
    assert sshd.majority is None and sshd.purity is None
    assert kernel.members == 0 and kernel.examples == () and kernel.share == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=0, max_size=30),
    st.integers(0, 6),
    st.integers(0, 2**31 - 1),
)
def test_top_rows_matches_a_sort_of_every_member(members: list[int], count: int, seed: int) -> None:
    scores = np.random.default_rng(seed).integers(0, 4, 40).astype(np.float64)  # many ties
    chosen = np.array(sorted(set(members)), np.int64)
    reference = sorted(chosen.tolist(), key=lambda row: (-scores[row], row))[:count]
    assert top_rows(chosen, scores, count).tolist() == reference
