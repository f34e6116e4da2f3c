"""Data parallelism: 4 simulated CPU devices give the losses of 1 device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = """
import json, jax, numpy as np
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.spec import ModelSpec

vocab = ClassVocabulary(("a", "b", "c"))
rng = np.random.default_rng(0)
n = 96
y = np.arange(n) % 3
x = rng.random((n, 6, 6, 1), dtype=np.float32) * 0.2
for i, c in enumerate(y):
    x[i, 2 * c : 2 * c + 2, :, 0] += 0.8
pool = Samples(np.arange(n, dtype=np.int64), x, y.astype(np.int64))
labels = LabelSet.from_pairs(vocab, [(i, vocab.names[y[i]]) for i in range(12)])
spec = ModelSpec.from_fields(input_shape=(6, 6, 1), num_classes=3, latent_dim=2, hidden_sizes=(16,),
                 batch_size=16, labeled_batch_size=8, patience=0, validation_split=0.25,
                 consistency_weight=1.0, augment_shift=1, seed=5)
model = JaxSsvaeModel(spec)
report = model.fit(pool, labels, epochs=3)
leaf = jax.tree_util.tree_leaves(model.state.params)[0]
print(json.dumps({
    "devices": jax.device_count(),
    "mesh": model.mesh.size,
    "sharded": str(leaf.sharding),
    "loss": [r.metrics["loss"] for r in report.history],
    "val_loss": [r.metrics["val_loss"] for r in report.history],
    "probs": model.predict(x[:10]).class_probs.tolist(),
}))
"""


def _run(devices: int) -> dict[str, object]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_four_devices_match_one_device() -> None:
    one, four = _run(1), _run(4)
    assert one["devices"] == 1 and four["devices"] == 4 and four["mesh"] == 4
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-4)  # type: ignore[arg-type]
    np.testing.assert_allclose(four["val_loss"], one["val_loss"], rtol=1e-4)  # type: ignore[arg-type]
    np.testing.assert_allclose(four["probs"], one["probs"], atol=1e-4)  # type: ignore[arg-type]
