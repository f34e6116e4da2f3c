"""Training speed of one epoch over the 60,000 MNIST images, per spec variant.

Times the jitted train step alone (after its compilation) over one full epoch of batches and
reports samples/s, seconds per epoch, the step's FLOPs (XLA's cost analysis) and the achieved
FLOP/s, with the CPU model. Usage:

    .venv/bin/python benchmarks/mnist_speed.py [--variants plain_m2 top3 preset ...]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import jax
import numpy as np
from benchmarks_common import cpu_model, load_mnist

from ssvae.adapters.model import sharding
from ssvae.adapters.model.modules import build_network
from ssvae.adapters.model.trainer import StepKit, init_state
from ssvae.domain.spec import ModelSpec, preset

# The shipped `standard` preset carries top-3 enumeration, the consistency term with 2-pixel
# shifts and a conv q(y|x); each variant below changes named fields of it.
PLAIN_M2: dict[str, Any] = {
    "enumerate_top_k": 0,  # all 10 classes enumerated
    "consistency_weight": 0.0,
    "augment_shift": 0,
    "classifier_type": "dense",
}
VARIANTS: dict[str, dict[str, Any]] = {
    "plain_m2": PLAIN_M2,
    "plain_m2_bf16": {**PLAIN_M2, "compute_dtype": "bfloat16"},
    "top3": {**PLAIN_M2, "enumerate_top_k": 3},
    "top3_consistency_dense_clf": {"classifier_type": "dense"},
    "preset": {},  # what `ssvae compare` and the 100-label benchmark train
    "preset_bf16": {"compute_dtype": "bfloat16"},
}


def time_epoch(spec: ModelSpec, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    mesh = sharding.data_mesh()
    graphdef, state = init_state(spec, build_network(spec))
    params = sharding.put_replicated(mesh, state.params)
    opt_state = sharding.put_replicated(mesh, state.opt_state)
    key = sharding.put_replicated(mesh, state.key)
    kit = StepKit(spec, graphdef, params)
    rng = np.random.default_rng(0)
    b, l_ = spec.training.batch_size, spec.training.labeled_batch_size
    steps = len(x) // b
    order = rng.permutation(len(x))[: steps * b].reshape(steps, b)
    labelled = rng.choice(len(x), 100, replace=False)
    scalars = {"kl_scale": np.float32(1.0), "alpha": np.float32(60.0)}

    def batch(s: int) -> dict[str, jax.Array]:
        picks = labelled[rng.integers(0, 100, l_)]
        return sharding.put_batch(
            mesh,
            {
                "x_u": x[order[s]],
                "x_l": x[picks],
                "y_l": y[picks].astype(np.int32),
                "mask_l": np.ones(l_, np.float32),
            },
        )

    first = batch(0)
    compiled = kit.train_step.lower(params, opt_state, first, key, np.int32(0), scalars).compile()
    cost = compiled.cost_analysis()
    flops = float((cost[0] if isinstance(cost, list) else cost).get("flops", float("nan")))
    params, opt_state, _ = kit.train_step(params, opt_state, first, key, np.int32(0), scalars)
    jax.block_until_ready(params)
    start = time.perf_counter()
    for s in range(steps):
        params, opt_state, metrics = kit.train_step(
            params, opt_state, batch(s), key, np.int32(s), scalars
        )
    jax.block_until_ready(metrics["loss"])
    seconds = time.perf_counter() - start
    return {
        "epoch_seconds": seconds,
        "samples_per_second": steps * b / seconds,
        "step_gflop": flops / 1e9,
        "achieved_gflop_per_second": flops * steps / seconds / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    x, y = load_mnist("train")
    print(json.dumps({"cpu": cpu_model(), "devices": jax.device_count()}))
    for name in args.variants:
        spec = preset("standard", **VARIANTS[name])
        print(json.dumps({"variant": name, **time_epoch(spec, x, y)}), flush=True)


if __name__ == "__main__":
    main()
