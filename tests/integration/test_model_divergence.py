"""A blown-up run stops as diverged and puts the model back at its last good state."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from test_model_training import labels_for, tiny_pool, tiny_spec

from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.adapters.model.trainer import DIVERGENCE_FACTOR, MIN_LOSS_SCALE, DivergenceGuard


def params_of(model: JaxSsvaeModel) -> list[np.ndarray]:
    return [np.asarray(p) for p in jax.tree_util.tree_leaves(model.state.params)]


def test_the_guard_trips_far_above_the_running_level_and_on_nan_only() -> None:
    guard = DivergenceGuard()
    assert not guard.diverged(500.0)  # the first loss anchors the scale
    assert not guard.diverged(120.0) and not guard.diverged(160.0)
    assert guard.limit == 120.0 + DIVERGENCE_FACTOR * 500.0
    assert not guard.diverged(guard.limit) and guard.diverged(guard.limit * 1.001)
    assert guard.diverged(math.nan) and guard.diverged(math.inf)

    negative = DivergenceGuard()  # Gaussian likelihoods reach negative losses
    for loss in (300.0, -50.0, -700.0, -650.0):
        assert not negative.diverged(loss)
    assert negative.limit == -700.0 + DIVERGENCE_FACTOR * 700.0
    assert negative.diverged(1e6)

    near_zero = DivergenceGuard()  # a loss near zero does not shrink the scale to nothing
    assert not near_zero.diverged(0.01) and not near_zero.diverged(0.001)
    assert near_zero.limit == 0.001 + DIVERGENCE_FACTOR * MIN_LOSS_SCALE


def test_a_huge_learning_rate_diverges_and_keeps_the_starting_state() -> None:
    pool = tiny_pool()
    model = JaxSsvaeModel(tiny_spec(learning_rate=1.0, grad_clip_norm=0.0, max_epochs=4))
    before = params_of(model)
    report = model.fit(pool, labels_for(pool, 9))
    assert report.stop_reason == "diverged" and report.diverged
    assert report.epochs_run == 0 and report.history == ()
    assert "training diverged in epoch 1" in report.message
    assert "the starting state is kept" in report.message and "grad_clip_norm" in report.message
    assert model.state.epoch == 0 and model.state.step == 0
    for a, b in zip(before, params_of(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_later_blow_up_keeps_the_state_of_the_last_good_epoch() -> None:
    pool = tiny_pool()
    labels = labels_for(pool, 9)
    model = JaxSsvaeModel(tiny_spec(max_epochs=3))
    steps_per_epoch = len(model._training_data(pool, labels).train_rows) // 16
    real_step = model.kit.train_step
    calls = []

    def blows_up_in_epoch_2(*args: Any) -> Any:
        """The real step; from the second step of epoch 2 on its loss reads 1e12."""
        params, opt_state, metrics = real_step(*args)
        calls.append(1)
        if len(calls) > steps_per_epoch + 1:
            metrics = {**metrics, "loss": jnp.float32(1e12)}
        return params, opt_state, metrics

    snapshots = []
    model.kit.train_step = blows_up_in_epoch_2  # type: ignore[method-assign]
    model.callbacks = [Snapshot(model, snapshots)]
    report = model.fit(pool, labels)
    assert report.stop_reason == "diverged" and report.epochs_run == 1
    assert "in epoch 2 near step 2" in report.message and "1e+12" in report.message
    assert "the state after epoch 1 is kept" in report.message
    assert len(calls) > steps_per_epoch + 1  # the blown-up steps did change the parameters
    assert model.state.epoch == 1 and model.state.step == steps_per_epoch
    [after_epoch_1] = snapshots
    for a, b in zip(after_epoch_1, params_of(model), strict=True):
        np.testing.assert_array_equal(a, b)


class Snapshot:
    """A TrainingCallback that copies the parameters after every finished epoch."""

    def __init__(self, model: JaxSsvaeModel, into: list[list[np.ndarray]]) -> None:
        self.model, self.into = model, into

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        """Nothing per step."""

    def on_epoch_end(self, record: Any) -> None:
        self.into.append(params_of(self.model))

    def on_train_end(self, report: Any) -> None:
        """Nothing at the end."""
