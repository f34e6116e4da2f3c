"""A one-epoch smoke run of the default preset on a small MNIST subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssvae.adapters.data.idx import read_idx
from ssvae.adapters.model.repository import JaxModelRepository
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.spec import preset

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"


def test_one_epoch_on_a_small_mnist_subset() -> None:
    n = 1024
    x = read_idx(MNIST / "train-images-idx3-ubyte.gz")[:n].astype(np.float32)[..., None] / 255
    y = read_idx(MNIST / "train-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    vocab = ClassVocabulary.digits(10)
    labels = LabelSet.from_pairs(vocab, [(i, str(y[i])) for i in range(100)])
    model = JaxModelRepository().create(preset("standard", max_epochs=1))
    report = model.fit(Samples(np.arange(n, dtype=np.int64), x, y), labels)
    assert report.epochs_run == 1 and report.stop_reason == "max_epochs"
    metrics = report.history[0].metrics
    assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["val_elbo"])
    pred = model.predict(x[:200])
    np.testing.assert_allclose(pred.class_probs.sum(1), 1.0, rtol=1e-5)
    assert pred.latent_mean.shape == (200, 16)
    # One epoch on 100 labels already beats chance (10%) clearly.
    assert np.mean(pred.class_probs.argmax(1) == y[:200]) > 0.3
