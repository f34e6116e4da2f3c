"""How far ordinary training's step losses rise above their running level, against a blow-up.

The trainer calls a run diverged when a step loss exceeds level + DIVERGENCE_FACTOR * scale
(`ssvae.adapters.model.trainer.DivergenceGuard`). This script trains each preset as shipped
on MNIST and on the Loghub text sample and prints, per run, the highest excess over the
level seen at any step, in units of the scale ("peak"), next to a run with learning_rate=1.0
and no gradient clipping. The factor must sit far above every ordinary peak and far below
the blow-up's.

    .venv/bin/python benchmarks/divergence_margin.py --num-samples 3000 --epochs 5
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
from benchmarks_common import cpu_model, load_mnist
from text_common import add_text_options, labels_per_class, load_splits, open_loghub

from ssvae.adapters.model import trainer
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.spec import ModelSpec, preset

IMAGE_PRESETS = ("standard", "mixture_k10", "vamp_k10")
TEXT_PRESETS = ("text_standard", "text_mixture_k20", "text_vamp_k20", "text_standard_hetero")


class PeakGuard(trainer.DivergenceGuard):
    """The trainer's guard with an infinite factor, recording the highest excess it saw."""

    def __init__(self, factor: float = math.inf) -> None:
        super().__init__(math.inf)
        self.peak = 0.0
        runs.append(self)

    def diverged(self, loss: float) -> bool:
        if self.first is not None and math.isfinite(loss):
            scale = max(abs(self.level), abs(self.first), trainer.MIN_LOSS_SCALE)
            self.peak = max(self.peak, (loss - self.level) / scale)
        return super().diverged(loss)


runs: list[PeakGuard] = []


def peak_of(spec: ModelSpec, pool: Samples, labels: LabelSet, epochs: int) -> tuple[float, str]:
    runs.clear()
    model = JaxSsvaeModel(spec)
    report = model.fit(pool, labels, epochs)
    return max(guard.peak for guard in runs), report.stop_reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=5)
    add_text_options(parser)
    args = parser.parse_args()
    trainer.DivergenceGuard = PeakGuard  # type: ignore[misc]
    print(f"CPU: {cpu_model()}; factor in use: {trainer.DIVERGENCE_FACTOR:g}")
    x, y = load_mnist("train")
    rows = np.random.default_rng(0).choice(len(x), args.num_samples, replace=False)
    images = Samples(serials=rows.astype(np.int64), x=x[rows], y=y[rows])
    image_labels = labels_per_class(images, ClassVocabulary.digits(10), 10, seed=0)
    source = open_loghub("event", args)
    texts, _, _ = load_splits(source)
    text_labels = labels_per_class(texts, source.describe().vocabulary, 5, seed=0)
    cases: list[tuple[str, Any, Samples, LabelSet]] = []
    for name in IMAGE_PRESETS:
        cases.append((f"mnist {name}", preset(name, validation_split=0.0), images, image_labels))
    dim = int(np.prod(texts.x.shape[1:]))
    for name in TEXT_PRESETS:
        spec = preset(name, input_shape=(dim,), num_classes=len(text_labels.vocabulary))
        cases.append((f"loghub {name}", spec.evolve(validation_split=0.0), texts, text_labels))
    blowup = preset("mixture_k10", validation_split=0.0, learning_rate=1.0, grad_clip_norm=0.0)
    cases.append(("mnist mixture_k10 lr=1.0 no clipping", blowup, images, image_labels))
    for name, spec, pool, labels in cases:
        start = time.perf_counter()
        peak, reason = peak_of(spec, pool, labels, args.epochs)
        seconds = time.perf_counter() - start
        print(f"{name:<40} peak {peak:10.3g} scales  ({reason}, {seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
