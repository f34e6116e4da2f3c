"""The training loop around one pure, jitted step.

`StepKit` splits nothing itself: it receives the network's graphdef once and jits pure
functions of (params, opt_state, batch, key, step, scalars). Every array argument has a fixed
shape per run (drop-last batches, a fixed labelled batch with a mask), so the step compiles
once per input shape; `trace_count` lets a test prove it. Every random draw derives from the
spec's seed: the data order from (seed, epoch), the step's key from fold_in(key, step), so a
resumed run repeats the straight run exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from ssvae.adapters.model import sharding
from ssvae.adapters.model.batches import RowSource, take
from ssvae.adapters.model.likelihoods import mean_of, sigma_of
from ssvae.adapters.model.losses import (
    entropy,
    negative_elbo,
    responsibilities,
    total_loss,
)
from ssvae.adapters.model.modules import SsvaeNetwork
from ssvae.adapters.model.scores import score_batch
from ssvae.domain.model import DIVERGED_STOPS, EpochRecord, TrainingCallback, TrainingReport
from ssvae.domain.spec import ModelSpec

Array = jax.Array
PyTree = Any
EVAL_BATCH = 1000


@attrs.define
class TrainState:
    """Everything that evolves during training and is checkpointed."""

    params: PyTree
    opt_state: PyTree
    key: Array  # the root PRNG key, from spec.training.seed
    step: int = 0
    epoch: int = 0


def decay_mask(params: PyTree) -> PyTree:
    """True where weight decay applies: kernels only, never biases or prior parameters."""

    def decays(path: tuple[Any, ...], _: Any) -> bool:
        names = [str(getattr(p, "key", getattr(p, "name", p))) for p in path]
        return "kernel" in names and "prior" not in names

    return jax.tree_util.tree_map_with_path(decays, params)


def build_optimizer(spec: ModelSpec, params: PyTree) -> optax.GradientTransformation:
    """Adam (L2 decay) or AdamW (decoupled decay), both masked, after global-norm clipping."""
    parts: list[optax.GradientTransformation] = []
    if spec.optimiser.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(spec.optimiser.grad_clip_norm))
    mask = decay_mask(params)
    if spec.optimiser.optimizer == "adamw":
        parts.append(
            optax.adamw(
                spec.optimiser.learning_rate, weight_decay=spec.optimiser.weight_decay, mask=mask
            )
        )
    else:
        if spec.optimiser.weight_decay > 0:
            parts.append(optax.add_decayed_weights(spec.optimiser.weight_decay, mask))
        parts.append(optax.adam(spec.optimiser.learning_rate))
    return optax.chain(*parts)


def init_state(spec: ModelSpec, network: SsvaeNetwork) -> tuple[Any, TrainState]:
    """(graphdef, a fresh TrainState) for `network`."""
    graphdef, params = nnx.split(network)
    optimizer = build_optimizer(spec, params)
    key = jax.random.key_data(jax.random.key(spec.training.seed))
    return graphdef, TrainState(params, optimizer.init(params), key)


class StepKit:
    """The jitted pure functions of one model: train, evaluate, predict, score."""

    def __init__(self, spec: ModelSpec, graphdef: Any, params: PyTree) -> None:
        self.spec = spec
        self.graphdef = graphdef
        self.optimizer = build_optimizer(spec, params)
        self.trace_count = 0
        self.train_step = jax.jit(self._train_step)
        self.eval_step = jax.jit(self._eval_step)
        self.predict_step = jax.jit(self._predict_step, static_argnames=("reconstruct",))
        self.score_step = jax.jit(self._score_step, static_argnames=("names", "samples"))

    def network(self, params: PyTree) -> SsvaeNetwork:
        return nnx.merge(self.graphdef, params)  # type: ignore[no-any-return]

    def _train_step(
        self,
        params: PyTree,
        opt_state: PyTree,
        batch: Mapping[str, Array],
        key: Array,
        step: Array,
        scalars: Mapping[str, Array],
    ) -> tuple[PyTree, PyTree, dict[str, Array]]:
        self.trace_count += 1  # Python runs only while tracing: counts compilations
        step_key = jax.random.fold_in(jax.random.wrap_key_data(key), step)

        def loss_fn(p: PyTree) -> tuple[Array, dict[str, Array]]:
            return total_loss(self.network(p), self.spec, batch, step_key, scalars)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        grad_norm = optax.tree.norm(grads)
        updates, new_opt = self.optimizer.update(grads, opt_state, params)
        # Adam's update is linear in the step size: scaling it is the learning-rate schedule.
        lr_scale = scalars.get("lr_scale", 1.0)
        updates = jax.tree.map(lambda u: u * lr_scale, updates)
        new_params = optax.apply_updates(params, updates)
        # A non-finite loss or gradient leaves parameters and optimizer state untouched, so
        # the state after a bad step is still the last good one.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

        def keep(new: Array, old: Array) -> Array:
            return jnp.where(finite, new, old)

        new_params = jax.tree.map(keep, new_params, params)
        new_opt = jax.tree.map(keep, new_opt, opt_state)
        metrics = {**metrics, "grad_norm": grad_norm, "finite": finite.astype(jnp.float32)}
        return new_params, new_opt, metrics

    def _eval_step(self, params: PyTree, batch: Mapping[str, Array]) -> dict[str, Array]:
        """Sums over a validation batch: -ELBO (all classes) and its terms, labelled CE, hits."""
        net = self.network(params)
        spec = self.spec
        x, y, mask, labelled = batch["x"], batch["y"], batch["mask"], batch["labelled"]
        logits = net.classifier(x)
        probs = jax.nn.softmax(logits)
        y_all = jnp.broadcast_to(
            jnp.eye(spec.network.num_classes), (x.shape[0],) + (spec.network.num_classes,) * 2
        )
        nelbo, parts = negative_elbo(
            net,
            spec,
            x.reshape(x.shape[0], -1),
            net.encoder.embed(x),
            y_all,
            jax.random.key(0),
            1.0,
        )
        h = entropy(probs)
        per_sample = jnp.sum(probs * nelbo, -1) - spec.objective.component_kl_weight * h
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], -1)[:, 0]
        hits = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
        return {
            "nelbo": jnp.sum(mask * per_sample),
            "reconstruction": jnp.sum(mask * jnp.sum(probs * parts["rec"], -1)),
            "kl": jnp.sum(mask * jnp.sum(probs * parts["kl"], -1)),
            "entropy": jnp.sum(mask * h),
            "count": jnp.sum(mask),
            "ce": jnp.sum(labelled * ce),
            "hits": jnp.sum(labelled * hits),
            "labelled": jnp.sum(labelled),
        }

    def _predict_step(self, params: PyTree, x: Array, *, reconstruct: bool) -> dict[str, Array]:
        """Per-sample outputs for one batch (see `Predictions`)."""
        net = self.network(params)
        spec = self.spec
        probs = jax.nn.softmax(net.classifier(x))
        y_all = jnp.broadcast_to(
            jnp.eye(spec.network.num_classes), (x.shape[0],) + (spec.network.num_classes,) * 2
        )
        means, _ = net.encoder.head(net.encoder.embed(x)[:, None, :], y_all)  # (B, C, D)
        resp = responsibilities(means, net.prior_components())  # (B, C, K)
        out = {
            "class_probs": probs,
            "latent_mean": jnp.einsum("bc,bcd->bd", probs, means),
            "encoding": means.reshape(means.shape[0], -1),
            "responsibilities": jnp.einsum("bc,bck->bk", probs, resp),
        }
        if reconstruct or spec.network.likelihood == "heteroscedastic":
            best = jnp.argmax(probs, -1)
            z = jnp.take_along_axis(means, best[:, None, None], 1)[:, 0]
            decoded = net.decode(z, jax.nn.one_hot(best, spec.network.num_classes))
            if reconstruct:
                out["reconstructions"] = mean_of(spec, decoded).reshape(x.shape)
            if spec.network.likelihood == "heteroscedastic":
                # Data noise, apart from the model's uncertainty over y (certainty) and z.
                out["noise_sigma"] = sigma_of(spec, decoded).mean(axis=-1)
        return out

    def _score_step(
        self,
        params: PyTree,
        x: Array,
        rows: Array,
        key: Array,
        tau: Array | None,
        *,
        names: tuple[str, ...],
        samples: int,
    ) -> dict[str, Array]:
        """Per-sample acquisition scores for one batch (see `ssvae.adapters.model.scores`)."""
        network = self.network(params)
        wrapped = jax.random.wrap_key_data(key)
        return score_batch(network, self.spec, x, rows, wrapped, tau, names, samples)


@attrs.frozen(eq=False)
class TrainingData:
    """The pool's rows and row indices for one training call."""

    x: RowSource  # the whole pool (N, *input_shape), in memory or read from a file
    train_rows: np.ndarray  # rows trained on (unlabelled term)
    labelled_rows: np.ndarray  # rows with a training label
    labelled_classes: np.ndarray  # their class indices
    val_rows: np.ndarray  # held-out rows
    val_classes: np.ndarray  # their class index, -1 when unlabelled

    def alpha(self, spec: ModelSpec) -> float:
        """alpha_eff: the classification weight, scaled by pool size / labelled count."""
        n_lab = len(self.labelled_rows)
        if not spec.objective.scale_classification_by_ratio or n_lab == 0:
            return spec.objective.classification_weight
        return spec.objective.classification_weight * (len(self.train_rows) + n_lab) / n_lab


MONITOR_MODES = {"val_loss": "min", "val_elbo": "max", "val_accuracy": "max"}


class EarlyStopping:
    """Tracks the monitored metric; says when patience ran out."""

    def __init__(self, monitor: str, patience: int) -> None:
        self.monitor = monitor
        self.patience = patience
        self.best: float | None = None
        self.best_epoch = -1
        self.waited = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record `value`; True when it is the best so far."""
        better = self.best is None or (
            value < self.best if MONITOR_MODES[self.monitor] == "min" else value > self.best
        )
        if better:
            self.best, self.best_epoch, self.waited = value, epoch, 0
        else:
            self.waited += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.waited >= self.patience


def _mean_metrics(collected: Sequence[Mapping[str, Array]]) -> dict[str, float]:
    host = jax.device_get(list(collected))
    keys = [k for k in host[0] if k != "finite"]
    return {k: float(np.mean([m[k] for m in host])) for k in keys}


def evaluate(kit: StepKit, mesh: Mesh, params: PyTree, data: TrainingData) -> dict[str, float]:
    """Validation metrics over the held-out rows, in fixed-size padded batches."""
    rows = data.val_rows
    if len(rows) == 0:
        return {}
    size = min(EVAL_BATCH, len(rows))
    size = math.ceil(size / mesh.size) * mesh.size
    part = sharding.local_rows(mesh, size)
    starts = range(0, len(rows), size)

    def padded(start: int) -> np.ndarray:
        chunk = rows[start : start + size]
        return np.concatenate([chunk, np.repeat(chunk[:1], size - len(chunk))])

    totals: dict[str, float] = {}
    xs = data.x.gather(padded(start)[part] for start in starts)
    for start, x in zip(starts, xs, strict=True):
        classes = data.val_classes[start : start + size]
        pad = size - len(classes)
        y = np.concatenate([np.maximum(classes, 0), np.zeros(pad, np.int64)]).astype(np.int32)
        mask = np.concatenate([np.ones(len(classes)), np.zeros(pad)]).astype(np.float32)
        labelled = mask * np.concatenate([classes >= 0, np.zeros(pad, bool)]).astype(np.float32)
        local = {"x": x, "y": y[part], "mask": mask[part], "labelled": labelled[part]}
        batch = sharding.put_batch(mesh, local, size)
        for name, value in jax.device_get(kit.eval_step(params, batch)).items():
            totals[name] = totals.get(name, 0.0) + float(value)
    count = totals["count"]
    elbo = -totals["nelbo"] / count
    # val_<term> pairs with the training metric <term> (the report plots them together); the
    # validation terms enumerate every class, weighted by q(y|x), with the KL weight at 1.
    out = {
        "val_elbo": elbo,
        "val_loss": -elbo,
        "val_unlabelled_loss": -elbo,
        "val_reconstruction": totals["reconstruction"] / count,
        "val_kl": totals["kl"] / count,
        "val_entropy": totals["entropy"] / count,
    }
    if totals["labelled"] > 0:
        out["val_loss"] = -elbo + totals["ce"] / totals["labelled"]
        out["val_classification"] = totals["ce"] / totals["labelled"]
        out["val_accuracy"] = totals["hits"] / totals["labelled"]
    return out


def monitored_metric(spec: ModelSpec, data: TrainingData) -> tuple[str, str]:
    """(the metric early stopping watches, a note for the user when it is not the spec's monitor).

    Validation holds out unlabelled samples only, so val_accuracy has nothing to measure;
    early stopping then watches val_loss, and the report says so.
    """
    watching = spec.training.patience > 0 and len(data.val_rows) > 0
    if spec.training.monitor == "val_accuracy" and not np.any(data.val_classes >= 0):
        return "val_loss", "" if not watching else (
            "monitor val_accuracy needs labelled validation samples, but every label trains "
            "(validation holds out unlabelled samples only); early stopping watched val_loss"
        )
    return spec.training.monitor, ""


# How far above its running level a step's loss must rise to count as diverged, in units of
# the loss's own scale (see DivergenceGuard). Across the MNIST and the text presets as
# shipped no step loss rose more than 0.03 scales above the running minimum, while a run
# with learning_rate=1.0 and no clipping reached 7e6 scales (benchmarks/README.md,
# "Divergence"). 100 sits over three orders of magnitude from either.
DIVERGENCE_FACTOR = 100.0
# The smallest scale: a loss near zero (a Gaussian likelihood crossing it) says nothing of
# how large a blow-up is; one nat per sample is negligible beside any real one.
MIN_LOSS_SCALE = 1.0


class DivergenceGuard:
    """Says when the training loss has blown up: NaN or Inf, or far above its running level.

    The level is the lowest step loss of the run so far; the scale is the largest of |level|,
    |the run's first step loss| (the loss at the parameters the run starts from, computed
    before any update) and MIN_LOSS_SCALE. A step loss above level + factor * scale has
    diverged. The first loss anchors the scale, so a run that blows up in its first epoch,
    before any epoch's mean exists, is caught too; the minimum, not a mean, is the level, so
    a slow climb cannot drag the level up with it.
    """

    def __init__(self, factor: float = DIVERGENCE_FACTOR) -> None:
        self.factor = factor
        self.first: float | None = None
        self.level = math.inf

    @property
    def limit(self) -> float:
        """The highest step loss that has not diverged."""
        if self.first is None:
            return math.inf
        scale = max(abs(self.level), abs(self.first), MIN_LOSS_SCALE)
        return self.level + self.factor * scale

    def diverged(self, loss: float) -> bool:
        """Record one step's loss; True when it is non-finite or above the limit."""
        if not math.isfinite(loss):
            return True
        if self.first is None:
            self.first = loss
        if loss > self.limit:
            return True
        self.level = min(self.level, loss)
        return False


@attrs.frozen
class Blowup:
    """Where an epoch diverged: its step (0-based) and loss (NaN: not finite)."""

    step: int
    loss: float
    limit: float


@attrs.define
class Trainer:
    """Runs epochs of the jitted step with early stopping, NaN guard and callbacks."""

    spec: ModelSpec
    kit: StepKit
    mesh: Mesh
    callbacks: Sequence[TrainingCallback] = ()
    progress_every: int = 20

    def kl_scale(self, epoch: int) -> float:
        warm = self.spec.objective.kl_warmup_epochs
        return 1.0 if warm == 0 else min(1.0, (epoch + 1) / warm)

    def lr_scale(self, epoch: int) -> float:
        """The step size's factor in `epoch` (0-based, counted over every fit of the model).

        cosine: from 1 down to lr_min_fraction over max_epochs, then held there, so resumed
        training repeats the straight run and later rounds (fit_more) train at the low end.
        """
        if self.spec.optimiser.lr_schedule == "constant":
            return 1.0
        low = self.spec.optimiser.lr_min_fraction
        progress = min(epoch / max(self.spec.training.max_epochs - 1, 1), 1.0)
        return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def epoch_batches(self, epoch: int, data: TrainingData) -> tuple[np.ndarray, np.ndarray, int]:
        """(unlabelled rows (steps, B), labelled picks (steps, L), steps) for `epoch`."""
        rng = np.random.default_rng([self.spec.training.seed, epoch])
        size = min(self.spec.training.batch_size, len(data.train_rows))
        steps = len(data.train_rows) // size
        order = rng.permutation(data.train_rows)[: steps * size].reshape(steps, size)
        n_lab = max(len(data.labelled_rows), 1)
        picks = rng.integers(0, n_lab, size=(steps, self.spec.training.labeled_batch_size))
        return order, picks, steps

    def run(self, state: TrainState, data: TrainingData, epochs: int) -> TrainingReport:
        """Train `state` in place for at most `epochs` epochs; the report says why it stopped.

        A diverged run (see DivergenceGuard) puts `state` back where it was after its last
        good epoch (or at the start), and reports "diverged" or "non_finite_loss"."""
        start = time.perf_counter()
        monitor, note = monitored_metric(self.spec, data)
        stopper = EarlyStopping(monitor, self.spec.training.patience)
        guard = DivergenceGuard()
        use_best = self.spec.training.patience > 0 and len(data.val_rows) > 0
        best = (state.params, state.opt_state)
        last_good = attrs.evolve(state)  # arrays are immutable: a snapshot costs no copy
        history: list[EpochRecord] = []
        reason, message = "max_epochs", ""
        try:
            for _ in range(epochs):
                outcome = self._epoch(state, data, guard)
                if isinstance(outcome, Blowup):
                    reason, message = self._diverged(outcome, state, last_good)
                    break
                record = outcome
                last_good = attrs.evolve(state)
                history.append(record)
                for callback in self.callbacks:
                    callback.on_epoch_end(record)
                if monitor in record.metrics and stopper.update(
                    record.epoch, record.metrics[monitor]
                ):
                    best = (state.params, state.opt_state)
                if use_best and stopper.should_stop:
                    reason = "early_stopping"
                    message = (
                        f"early stopping: {monitor} did not improve for {stopper.patience} "
                        f"epochs; the best epoch ({stopper.best_epoch}) is restored"
                    )
                    break
        except KeyboardInterrupt:
            reason, message = "interrupted", "training interrupted; the last finished step is kept"
        if use_best and stopper.best_epoch > 0 and reason not in DIVERGED_STOPS:
            state.params, state.opt_state = best
        report = TrainingReport(
            epochs_run=len(history),
            history=tuple(history),
            stop_reason=reason,
            best_epoch=stopper.best_epoch if use_best and stopper.best_epoch > 0 else state.epoch,
            seconds=time.perf_counter() - start,
            message="; ".join(part for part in (message, note) if part),
        )
        for callback in self.callbacks:
            callback.on_train_end(report)
        return report

    @staticmethod
    def _diverged(blowup: Blowup, state: TrainState, last_good: TrainState) -> tuple[str, str]:
        """Put `state` back to `last_good`; (the stop reason, the one line that says so)."""
        where = f"in epoch {state.epoch + 1} near step {blowup.step + 1}"
        kept = (
            f"the state after epoch {last_good.epoch} is kept"
            if last_good.epoch > 0
            else "the starting state is kept"
        )
        state.params, state.opt_state = last_good.params, last_good.opt_state
        state.step, state.epoch = last_good.step, last_good.epoch
        if not math.isfinite(blowup.loss):
            return "non_finite_loss", (
                f"training stopped {where}: the loss became NaN or Inf; {kept}. Check the data "
                "for NaN/Inf values, or lower learning_rate or set grad_clip_norm (e.g. 1.0)"
            )
        return "diverged", (
            f"training diverged {where}: the loss reached {blowup.loss:.3g}, far above its "
            f"running level (limit {blowup.limit:.3g}); {kept}. Lower learning_rate or set "
            "grad_clip_norm (e.g. 1.0)"
        )

    def _epoch(
        self, state: TrainState, data: TrainingData, guard: DivergenceGuard
    ) -> EpochRecord | Blowup:
        """One epoch: its record, or where it diverged (`state` is then left mid-epoch)."""
        epoch = state.epoch
        epoch_start = time.perf_counter()
        order, picks, steps = self.epoch_batches(epoch, data)
        has_labels = len(data.labelled_rows) > 0
        lab_rows = data.labelled_rows if has_labels else np.zeros(1, np.int64)
        lab_classes = data.labelled_classes if has_labels else np.zeros(1, np.int64)
        # A fixed-size labelled batch with a mask keeps one compiled step, labels or none.
        mask = np.full(self.spec.training.labeled_batch_size, float(has_labels), np.float32)
        scalars = {
            "kl_scale": np.float32(self.kl_scale(epoch)),
            "lr_scale": np.float32(self.lr_scale(epoch)),
            "alpha": np.float32(data.alpha(self.spec)),
        }
        # Each process reads only its part of every batch (all of it on one process).
        part = sharding.local_rows(self.mesh, order.shape[1])
        lab_part = sharding.local_rows(self.mesh, picks.shape[1])
        lab_x = take(data.x, lab_rows)
        rows_read = data.x.gather(order[s][part] for s in range(steps))
        collected: list[dict[str, Array]] = []
        checked = 0  # steps whose loss the guard has seen
        for s, x_u in enumerate(rows_read):
            mine = picks[s][lab_part]
            labelled = {
                "x_l": lab_x[mine],
                "y_l": lab_classes[mine].astype(np.int32),
                "mask_l": mask[lab_part],
            }
            batch = {
                **sharding.put_batch(self.mesh, {"x_u": x_u}, order.shape[1]),
                **sharding.put_batch(self.mesh, labelled, picks.shape[1]),
            }
            state.params, state.opt_state, metrics = self.kit.train_step(
                state.params, state.opt_state, batch, state.key, np.int32(state.step), scalars
            )
            state.step += 1
            collected.append(metrics)
            if (s + 1) % self.progress_every == 0 or s + 1 == steps:
                # Syncing only every few steps keeps dispatch asynchronous in between.
                recent = jax.device_get([(m["finite"], m["loss"]) for m in collected[checked:]])
                for offset, (finite, loss) in enumerate(recent):
                    value = float(loss) if float(finite) == 1.0 else math.nan
                    if guard.diverged(value):
                        return Blowup(checked + offset, value, guard.limit)
                checked = len(collected)
                for callback in self.callbacks:
                    callback.on_step(epoch, s + 1, steps, float(metrics["loss"]))
        record_metrics = _mean_metrics(collected)
        record_metrics.update(evaluate(self.kit, self.mesh, state.params, data))
        seconds = time.perf_counter() - epoch_start
        record_metrics["seconds"] = seconds
        record_metrics["samples_per_second"] = steps * order.shape[1] / seconds
        state.epoch += 1
        return EpochRecord(epoch=state.epoch, metrics=record_metrics)
