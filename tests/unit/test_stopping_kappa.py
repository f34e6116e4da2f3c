"""Cohen's kappa against hand-computed values, a float reference and its properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssvae.domain.stopping import StoppingError, cohens_kappa

FAST = settings(max_examples=80, deadline=None)


def from_table(table: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Two labellings whose confusion table (rows: first, columns: second) is `table`."""
    first: list[int] = []
    second: list[int] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            first += [i] * count
            second += [j] * count
    return np.array(first), np.array(second)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        # Wikipedia's example: p_o = 0.7, p_e = 0.5.
        ([[20, 5], [10, 15]], 0.4),
        # Wikipedia's pair with equal p_o = 0.6: p_e = 0.54 and 0.46.
        ([[45, 15], [25, 15]], 0.06 / 0.46),
        ([[25, 35], [5, 35]], 0.14 / 0.54),
        # Chance level: p_o = p_e = 0.5.
        ([[1, 1], [1, 1]], 0.0),
        # Complete disagreement with balanced classes.
        ([[0, 1], [1, 0]], -1.0),
        # Three classes, by hand: p_o = 7/10, p_e = (4*3 + 3*4 + 3*3) / 100 = 0.33.
        ([[3, 1, 0], [0, 2, 1], [0, 1, 2]], (0.7 - 0.33) / 0.67),
    ],
)
def test_hand_computed_examples(table: list[list[int]], expected: float) -> None:
    first, second = from_table(table)
    assert cohens_kappa(first, second, len(table)) == pytest.approx(expected, rel=1e-12)


def test_perfect_agreement_is_one_including_the_degenerate_single_class_case() -> None:
    labels = np.array([0, 2, 1, 2, 0])
    assert cohens_kappa(labels, labels, 3) == 1.0
    # Both always say class 1: p_o = p_e = 1, kappa = 0/0, taken as perfect agreement.
    assert cohens_kappa(np.ones(6, int), np.ones(6, int), 3) == 1.0


def test_constant_labellings_of_different_classes_have_kappa_zero() -> None:
    assert cohens_kappa(np.zeros(5, int), np.ones(5, int), 2) == 0.0


def reference_kappa(first: np.ndarray, second: np.ndarray, classes: int) -> float:
    confusion = np.zeros((classes, classes))
    np.add.at(confusion, (first, second), 1.0)
    confusion /= confusion.sum()
    observed = np.trace(confusion)
    expected = float(confusion.sum(axis=1) @ confusion.sum(axis=0))
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


@st.composite
def labelling_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    classes = draw(st.integers(1, 6))
    n = draw(st.integers(1, 40))
    elements = st.integers(0, classes - 1)
    first = draw(hnp.arrays(np.int64, n, elements=elements))
    second = draw(hnp.arrays(np.int64, n, elements=elements))
    return first, second, classes


@FAST
@given(labelling_pairs())
def test_matches_the_confusion_matrix_formula_is_symmetric_and_bounded(
    pair: tuple[np.ndarray, np.ndarray, int],
) -> None:
    first, second, classes = pair
    kappa = cohens_kappa(first, second, classes)
    assert kappa == pytest.approx(reference_kappa(first, second, classes), abs=1e-12)
    assert kappa == cohens_kappa(second, first, classes)
    assert -1.0 <= kappa <= 1.0
    assert cohens_kappa(first, first, classes) == 1.0


@FAST
@given(labelling_pairs())
def test_unchanged_by_renaming_classes_or_adding_unused_ones(
    pair: tuple[np.ndarray, np.ndarray, int],
) -> None:
    first, second, classes = pair
    renaming = np.random.default_rng(classes).permutation(classes)
    kappa = cohens_kappa(first, second, classes)
    assert cohens_kappa(renaming[first], renaming[second], classes) == pytest.approx(kappa)
    assert cohens_kappa(first, second, classes + 3) == kappa


@pytest.mark.parametrize(
    ("first", "second", "classes", "message"),
    [
        ([0, 1], [0], 2, "same samples"),
        ([], [], 2, "empty"),
        ([0, 2], [0, 1], 2, "\\[0, 2\\)"),
        ([0, -1], [0, 1], 2, "\\[0, 2\\)"),
        ([0.5, 1.0], [0, 1], 2, "class indices"),
        ([0, 1], [0, 1], 0, "num_classes"),
    ],
)
def test_invalid_labellings_are_reported(
    first: list[float], second: list[int], classes: int, message: str
) -> None:
    with pytest.raises(StoppingError, match=message):
        cohens_kappa(np.array(first), np.array(second, dtype=np.int64), classes)
