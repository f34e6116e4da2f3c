"""The trainer: one compilation, resume, NaN guard, early stopping, fit_more, predict, I/O."""

from __future__ import annotations

import io
from pathlib import Path

import jax
import numpy as np
import pytest

from ssvae.adapters.model import sharding
from ssvae.adapters.model.callbacks import ConsoleProgress, CsvHistory, LossCurvePlot
from ssvae.adapters.model.checkpoint import CheckpointError
from ssvae.adapters.model.repository import JaxModelRepository
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel, validation_rows
from ssvae.adapters.model.trainer import EarlyStopping, Trainer
from ssvae.domain.data import Samples
from ssvae.domain.errors import DataError, LabelError, SsvaeError
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.spec import ModelSpec

VOCAB = ClassVocabulary(("a", "b", "c"))


def tiny_spec(**overrides: object) -> ModelSpec:
    base: dict[str, object] = dict(
        input_shape=(6, 6, 1),
        num_classes=3,
        latent_dim=2,
        hidden_sizes=(16,),
        batch_size=16,
        labeled_batch_size=8,
        max_epochs=2,
        patience=0,
        validation_split=0.25,
        enumerate_top_k=2,
        seed=3,
    )
    base.update(overrides)
    return ModelSpec.from_fields(**base)


def tiny_pool(n: int = 80, seed: int = 0) -> Samples:
    """Three classes: a bright block in a different third of the image."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.random((n, 6, 6, 1), dtype=np.float32) * 0.2
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2, :, 0] += 0.8
    return Samples(serials=np.arange(100, 100 + n, dtype=np.int64), x=x, y=y.astype(np.int64))


def labels_for(pool: Samples, count: int) -> LabelSet:
    assert pool.y is not None
    return LabelSet.from_pairs(
        VOCAB, [(int(pool.serials[i]), VOCAB.names[int(pool.y[i])]) for i in range(count)]
    )


def params_of(model: JaxSsvaeModel) -> list[np.ndarray]:
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(model.state.params)]


def test_step_compiles_once_across_epochs_and_label_changes() -> None:
    pool = tiny_pool()
    model = JaxSsvaeModel(tiny_spec(hidden_sizes=(15,)))  # a fresh compiled step
    assert model.kit.trace_count == 0
    model.fit(pool, LabelSet(VOCAB), epochs=2)  # no labels at all: masked labelled batch
    model.fit_more(1, labels_for(pool, 5))
    model.fit_more(1, labels_for(pool, 11))
    assert model.kit.trace_count == 1
    assert model.state.step == 4 * (60 // 16)


def test_resume_from_a_checkpoint_matches_a_straight_run(tmp_path: Path) -> None:
    pool, labels = tiny_pool(), labels_for(pool := tiny_pool(), 12)
    straight = JaxSsvaeModel(tiny_spec(kl_warmup_epochs=3))
    straight.fit(pool, labels, epochs=4)
    first = JaxSsvaeModel(tiny_spec(kl_warmup_epochs=3))
    first.fit(pool, labels, epochs=2)
    repo = JaxModelRepository()
    repo.save(first, tmp_path / "ckpt")
    resumed = repo.load(tmp_path / "ckpt")
    assert isinstance(resumed, JaxSsvaeModel)
    assert resumed.state.step == first.state.step and resumed.state.epoch == 2
    resumed.fit(pool, labels, epochs=2)
    for a, b in zip(params_of(straight), params_of(resumed), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    np.testing.assert_allclose(
        straight.history[-1].metrics["loss"], resumed.history[-1].metrics["loss"], rtol=1e-4
    )


def test_checkpoint_holds_spec_fingerprint_and_predictions(tmp_path: Path) -> None:
    pool = tiny_pool()
    model = JaxSsvaeModel(tiny_spec(prior="mixture", num_components=3))
    model.fit(pool, labels_for(pool, 9), epochs=1)
    model.save(tmp_path / "m")
    model.save(tmp_path / "m")  # overwriting is atomic and leaves no temporary folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    loaded = JaxSsvaeModel.restore(tmp_path / "m")
    assert loaded.spec == model.spec and loaded.fingerprint == model.fingerprint
    assert len(model.fingerprint) == 32
    a, b = model.predict(pool.x), loaded.predict(pool.x)
    np.testing.assert_allclose(a.class_probs, b.class_probs, rtol=1e-6)
    assert a.tau_probs is not None and b.tau_probs is not None
    np.testing.assert_allclose(a.tau_probs, b.tau_probs, rtol=1e-6)


def test_loading_a_missing_or_broken_checkpoint_says_why(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no model checkpoint"):
        JaxModelRepository().load(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{not json")
    (tmp_path / "bad" / "arrays.npz").write_bytes(b"")
    with pytest.raises(SsvaeError, match="unreadable"):
        JaxModelRepository().load(tmp_path / "bad")


def test_nan_in_the_data_stops_training_and_keeps_the_last_good_state(tmp_path: Path) -> None:
    pool = tiny_pool()
    labels = labels_for(pool, 9)
    model = JaxSsvaeModel(tiny_spec())
    model.fit(pool, labels, epochs=1)
    model.save(tmp_path / "good")
    before = params_of(model)
    bad_x = pool.x.copy()
    bad_x[7, 0, 0, 0] = np.nan
    report = model.fit(Samples(pool.serials, bad_x, pool.y), labels, epochs=3)
    assert report.stop_reason == "non_finite_loss"
    assert "NaN" in report.message and report.epochs_run == 0
    after = params_of(model)
    assert all(np.all(np.isfinite(a)) for a in after)
    assert np.all(np.isfinite(model.predict(pool.x).class_probs))
    reloaded = JaxSsvaeModel.restore(tmp_path / "good")
    for a, b in zip(before, params_of(reloaded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_the_best_epoch() -> None:
    stopper = EarlyStopping("val_loss", patience=2)
    assert [stopper.update(e, v) for e, v in enumerate([3.0, 2.0, 2.5, 2.1], 1)] == [
        True,
        True,
        False,
        False,
    ]
    assert stopper.should_stop and stopper.best_epoch == 2
    rising = EarlyStopping("val_accuracy", patience=1)
    assert rising.update(1, 0.5) and rising.update(2, 0.6) and not rising.update(3, 0.6)

    pool, labels = tiny_pool(), labels_for(tiny_pool(), 12)
    spec = tiny_spec(patience=1, max_epochs=6, kl_warmup_epochs=2)
    model = JaxSsvaeModel(spec)
    report = model.fit(pool, labels)
    assert 1 <= report.best_epoch <= report.epochs_run
    val = [r.metrics["val_loss"] for r in report.history]
    assert report.best_epoch == int(np.argmin(val)) + 1
    if report.stop_reason == "early_stopping":
        assert report.epochs_run == report.best_epoch + 1
    again = JaxSsvaeModel(spec.evolve(patience=0))
    again.fit(pool, labels, epochs=report.best_epoch)
    for a, b in zip(params_of(again), params_of(model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fit_more_keeps_state_and_accepts_changed_labels() -> None:
    pool = tiny_pool()
    model = JaxSsvaeModel(tiny_spec(prior="mixture", num_components=4))
    model.fit(pool, labels_for(pool, 6), epochs=1)
    step, tau_before = model.state.step, model.tau
    fresh = JaxSsvaeModel(tiny_spec(prior="mixture", num_components=4))
    report = model.fit_more(1, labels_for(pool, 30))
    assert report.epochs_run == 1 and model.state.step == 2 * step
    assert model.state.epoch == 2 and [r.epoch for r in model.history] == [1, 2]
    assert tau_before is not None and model.tau is not None and model.tau.shape == (4, 3)
    assert not np.allclose(tau_before, model.tau)
    assert any(
        not np.allclose(a, b) for a, b in zip(params_of(model), params_of(fresh), strict=True)
    )
    with pytest.raises(SsvaeError, match="call fit"):
        JaxSsvaeModel(tiny_spec()).fit_more(1, labels_for(pool, 3))


def test_user_errors_are_one_line_domain_errors() -> None:
    pool = tiny_pool()
    model = JaxSsvaeModel(tiny_spec())
    stranger = LabelSet.from_pairs(VOCAB, [(5, "a")])
    with pytest.raises(LabelError, match="not in the pool"):
        model.fit(pool, stranger, epochs=1)
    with pytest.raises(DataError, match="expects"):
        model.predict(np.zeros((2, 5, 5, 1), np.float32))
    with pytest.raises(LabelError, match="classes"):
        model.fit(pool, LabelSet(ClassVocabulary(("x", "y"))), epochs=1)


def test_predictions_are_batched_consistently_and_well_formed() -> None:
    pool = tiny_pool()
    spec = tiny_spec(prior="vamp", num_components=4, likelihood="heteroscedastic")
    model = JaxSsvaeModel(spec, predict_batch_size=8)
    model.fit(pool, labels_for(pool, 9), epochs=1)
    small = model.predict(pool.x[:21], reconstructions=True)
    model.predict_batch_size = 1024
    whole = model.predict(pool.x[:21], reconstructions=True)
    np.testing.assert_allclose(small.class_probs, whole.class_probs, rtol=1e-5, atol=1e-6)
    assert small.class_probs.shape == (21, 3) and small.latent_mean.shape == (21, 2)
    np.testing.assert_allclose(small.class_probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(small.certainty, small.class_probs.max(1))
    assert small.responsibilities is not None and small.responsibilities.shape == (21, 4)
    np.testing.assert_allclose(small.responsibilities.sum(1), 1.0, rtol=1e-5)
    assert small.tau_probs is not None and small.tau_probs.shape == (21, 3)
    assert small.ood_score is not None and np.all((small.ood_score >= 0) & (small.ood_score <= 1))
    assert small.reconstructions is not None and small.reconstructions.shape == (21, 6, 6, 1)
    low, high = np.exp(spec.network.log_sigma_min), np.exp(spec.network.log_sigma_max)
    assert small.noise_sigma is not None and small.noise_sigma.shape == (21,)
    assert np.all((small.noise_sigma >= low) & (small.noise_sigma <= high))


def test_the_encoding_holds_the_mean_of_q_z_given_x_and_each_class() -> None:
    pool = tiny_pool()
    model = JaxSsvaeModel(tiny_spec())
    model.fit(pool, labels_for(pool, 9), epochs=1)
    x = pool.x[:7]
    predictions = model.predict(x)
    assert predictions.encoding is not None and predictions.encoding.shape == (7, 3 * 2)
    blocks = predictions.encoding.reshape(7, 3, 2)
    net = model.kit.network(model.state.params)
    embedded = net.encoder.embed(jax.numpy.asarray(x))
    for c in range(3):  # block c is the encoder's mean for class c, computed one class at a time
        one_hot = jax.numpy.broadcast_to(jax.numpy.eye(3)[c], (7, 3))
        mean, _ = net.encoder.head(embedded, one_hot)
        np.testing.assert_allclose(blocks[:, c], np.asarray(mean), rtol=1e-5, atol=1e-6)
    # latent_mean is the q(y|x)-weighted mean of the blocks.
    weighted = np.einsum("nc,ncd->nd", predictions.class_probs, blocks)
    np.testing.assert_allclose(predictions.latent_mean, weighted, rtol=1e-5, atol=1e-6)
    assert np.ptp(blocks, axis=1).max() > 1e-4  # the class moves the mean: blocks differ


def test_the_classifier_ood_signal_reads_q_y_once_labels_are_trained() -> None:
    pool = tiny_pool()
    model = JaxSsvaeModel(tiny_spec(prior="mixture", num_components=3, ood_signal="classifier"))
    model.fit(pool, LabelSet(VOCAB), epochs=1)
    assert model.predict(pool.x[:5]).ood_score is None
    model.fit_more(1, labels_for(pool, 9))
    predictions = model.predict(pool.x[:5])
    assert predictions.ood_score is not None
    np.testing.assert_allclose(predictions.ood_score, 1 - predictions.class_probs.max(1), 1e-6)


def test_callbacks_write_progress_history_and_curve(tmp_path: Path) -> None:
    pool = tiny_pool()
    console = io.StringIO()
    callbacks = [
        ConsoleProgress(console),
        CsvHistory(tmp_path / "history.csv"),
        LossCurvePlot(tmp_path / "loss.png"),
    ]
    model = JaxModelRepository(callbacks).create(tiny_spec())
    model.fit(pool, labels_for(pool, 6), epochs=2)
    assert "loss" in console.getvalue() and "epoch 2" in console.getvalue()
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and "val_loss" in rows[0] and len(rows) == 3
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weight_decay_applies_to_kernels_only() -> None:
    from flax import nnx

    from ssvae.adapters.model.modules import build_network
    from ssvae.adapters.model.trainer import decay_mask

    _, params = nnx.split(build_network(tiny_spec(prior="mixture", num_components=2)))
    flags = {
        jax.tree_util.keystr(path): flag
        for path, flag in jax.tree_util.tree_leaves_with_path(decay_mask(params))
    }
    assert flags["['encoder']['embed_x']['kernel'].value"] is True
    assert flags["['encoder']['embed_x']['bias'].value"] is False
    assert flags["['prior']['means'].value"] is False
    assert sum(flags.values()) == sum("kernel" in name for name in flags)


def test_validation_holds_out_unlabelled_rows_only_and_stays_stable() -> None:
    labelled = np.array([0, 3, 5, 7, 11, 13, 17, 19, 23, 29], np.int64)
    val = validation_rows(40, labelled, 0.5, seed=2)
    assert len(val) == 20 and not np.isin(val, labelled).any()
    # Labelling one validation row moves it to training; the rest of the set stays.
    moved = int(val[0])
    again = validation_rows(40, np.append(labelled, moved), 0.5, seed=2)
    assert moved not in again and len(again) == 20 and len(np.setdiff1d(val, again)) == 1
    # Too few unlabelled rows: all of them validate, but never the whole pool.
    assert len(validation_rows(12, labelled, 0.9, seed=2)) == 12 - 5
    assert len(validation_rows(5, np.zeros(0, np.int64), 0.9, seed=2)) == 4

    pool = tiny_pool()
    labels = labels_for(pool, 30)  # with 80 rows and validation_split 0.25: 20 would be held
    data = JaxSsvaeModel(tiny_spec())._training_data(pool, labels)
    assert len(data.labelled_rows) == 30 and len(data.val_rows) == 20
    assert not np.isin(data.val_rows, data.labelled_rows).any()
    assert len(data.train_rows) == 60 and np.isin(data.labelled_rows, data.train_rows).all()


def test_validation_reports_each_loss_term_beside_its_training_curve() -> None:
    pool = tiny_pool()
    report = JaxSsvaeModel(tiny_spec(max_epochs=1)).fit(pool, labels_for(pool, 9))
    metrics = report.history[0].metrics
    for term in ("reconstruction", "kl", "entropy", "unlabelled_loss"):
        assert term in metrics and f"val_{term}" in metrics
    assert "val_accuracy" not in metrics  # no label is held out
    # With unit weights: -ELBO = rec + KL - log p(y) summed over q(y|x), minus H(q(y|x)).
    expected = (
        metrics["val_reconstruction"] + metrics["val_kl"] + np.log(3) - metrics["val_entropy"]
    )
    np.testing.assert_allclose(metrics["val_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["val_elbo"], -metrics["val_loss"], rtol=1e-6)


def test_monitoring_val_accuracy_without_held_out_labels_watches_val_loss() -> None:
    pool = tiny_pool()
    spec = tiny_spec(monitor="val_accuracy", patience=3, max_epochs=2)
    report = JaxSsvaeModel(spec).fit(pool, labels_for(pool, 9))
    assert "early stopping watched val_loss" in report.message
    val = [r.metrics["val_loss"] for r in report.history]
    assert report.best_epoch == int(np.argmin(val)) + 1
    quiet = JaxSsvaeModel(spec.evolve(patience=0)).fit(pool, labels_for(pool, 9))
    assert quiet.message == ""


def test_cosine_schedule_decays_per_epoch_and_a_flat_one_equals_constant() -> None:
    def trainer(**overrides: object) -> Trainer:
        spec = tiny_spec(**overrides)
        return Trainer(spec, JaxSsvaeModel(spec).kit, sharding.data_mesh())

    cosine = trainer(lr_schedule="cosine", lr_min_fraction=0.1, max_epochs=5)
    scales = [cosine.lr_scale(e) for e in range(7)]
    np.testing.assert_allclose(
        scales[:5], [1.0, 0.1 + 0.45 * (1 + 2**-0.5), 0.55, 0.1 + 0.45 * (1 - 2**-0.5), 0.1]
    )
    assert scales[5] == scales[6] == pytest.approx(0.1)  # held after max_epochs
    assert trainer().lr_scale(3) == 1.0
    # A schedule that never decays trains exactly like the constant step size.
    pool, labels = tiny_pool(), labels_for(tiny_pool(), 9)
    flat = JaxSsvaeModel(tiny_spec(lr_schedule="cosine", lr_min_fraction=1.0))
    flat.fit(pool, labels)
    constant = JaxSsvaeModel(tiny_spec())
    constant.fit(pool, labels)
    for a, b in zip(params_of(flat), params_of(constant), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
