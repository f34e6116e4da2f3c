"""One model in `ssvae compare`'s default regime: test accuracy, wall and CPU time.

The data are the comparison's defaults (5,000 training images drawn stratified by seed 0, 50
of them labelled balanced per class, the 10,000 test images); the model is fitted, then
predicts the test set. Usage (spec overrides as name=value, YAML scalars; n= and nl= change
the pool size and label count):

    .venv/bin/python benchmarks/compare_tuning.py standard max_epochs=10 validation_split=0
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from benchmarks_common import load_mnist, overrides_of

from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.comparison import select_labelled, select_subset
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.spec import preset


def main() -> None:
    name = sys.argv[1]
    overrides = overrides_of(sys.argv[2:])
    pool_size = int(overrides.pop("n", 5000))
    labelled = int(overrides.pop("nl", 50))
    x, y = load_mnist("train")
    x_test, y_test = load_mnist("t10k")
    rows = select_subset(y, pool_size, "stratified", 0)
    pool = Samples(serials=rows.astype(np.int64), x=x[rows], y=y[rows])
    chosen = select_labelled(y[rows], labelled, 0)
    labels = LabelSet.from_pairs(
        ClassVocabulary.digits(10), [(int(rows[i]), str(y[rows][i])) for i in chosen]
    )
    model = JaxSsvaeModel(preset(name, **overrides))
    wall, cpu = time.perf_counter(), time.process_time()
    report = model.fit(pool, labels)
    predictions = model.predict(x_test)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tau = predictions.tau_probs
    result = {
        "preset": name,
        "overrides": overrides,
        "test_accuracy": float(np.mean(predictions.class_probs.argmax(1) == y_test)),
        "tau_accuracy": None if tau is None else float(np.mean(tau.argmax(1) == y_test)),
        "epochs": report.epochs_run,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
