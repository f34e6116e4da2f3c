"""Samples.subset and the labelled samples that compare and simulate draw from a dataset."""

from __future__ import annotations

import numpy as np
import pytest

from ssvae.application.datasets import stratified_sample, true_classes
from ssvae.domain.data import Samples
from ssvae.domain.errors import DataError


def _samples(y: list[int] | None) -> Samples:
    count = 6 if y is None else len(y)
    x = np.arange(count * 2, dtype=np.float32).reshape(count, 2)
    labels = None if y is None else np.array(y, np.int64)
    return Samples(serials=np.arange(100, 100 + count, dtype=np.int64), x=x, y=labels)


def test_subset_keeps_serials_inputs_and_classes_together_in_the_order_given() -> None:
    samples = _samples([0, 1, 2, 0, 1, 2])
    rows = np.array([4, 0, 2])
    picked = samples.subset(rows)
    assert picked.serials.tolist() == [104, 100, 102]
    np.testing.assert_array_equal(picked.x, samples.x[rows])
    assert picked.y is not None and picked.y.tolist() == [1, 0, 2]
    assert _samples(None).subset(rows).y is None


def test_true_classes_names_the_split_and_the_reason_when_there_are_none() -> None:
    assert true_classes(_samples([0, -1, 1]), "train", "d", "why").tolist() == [0, -1, 1]
    for unlabelled in (_samples(None), _samples([-1, -1])):
        with pytest.raises(DataError, match="no true classes in its 'test' split; we measure"):
            true_classes(unlabelled, "test", "d", "we measure")


def test_stratified_sample_draws_per_class_by_seed_and_keeps_all_when_asked_for_all() -> None:
    samples = _samples([0, 0, 0, 1, 1, 1])
    picked = stratified_sample(samples, 2, seed=3)
    assert picked.y is not None and sorted(picked.y.tolist()) == [0, 1]
    again = stratified_sample(samples, 2, seed=3)
    assert again.serials.tolist() == picked.serials.tolist()
    assert stratified_sample(samples, 0, seed=3) is samples
    assert stratified_sample(samples, 6, seed=3) is samples
