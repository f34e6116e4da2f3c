"""A checkpoint saved by two processes on JAX's distributed runtime (gloo on CPU, 127.0.0.1):
each process calls `save` with the model's global arrays, one checkpoint appears, and it
restores in every process and in a process of its own to the same state."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from ssvae.adapters.model.ssvae_model import JaxSsvaeModel

SCRIPT = """
import json, sys
import numpy as np
from ssvae.adapters.model.distributed import JaxDistributedRuntime
from ssvae.domain.distributed import ClusterSettings

coordinator, index, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
JaxDistributedRuntime().start(ClusterSettings(coordinator, 2, index, init_timeout=60))

import jax
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.spec import ModelSpec

spec = ModelSpec.from_fields(
    input_shape=(6,), num_classes=3, latent_dim=2, hidden_sizes=(8,), prior="mixture",
    num_components=4, seed=5,
)
model = JaxSsvaeModel(spec)
model.tau = np.full((4, 3), 1 / 3, np.float32)
model.state.step = 9
for round in range(2):  # the second save replaces the first
    model.state.epoch = round
    model.save(f"{folder}/checkpoint")
restored = JaxSsvaeModel.restore(f"{folder}/checkpoint")
leaves = jax.tree_util.tree_leaves((restored.state.params, restored.state.opt_state))
with open(f"{folder}/process-{index}.json", "w") as out:
    json.dump({
        "processes": jax.process_count(),
        "step": restored.state.step,
        "epoch": restored.state.epoch,
        "leaves": [np.asarray(leaf).tolist() for leaf in leaves],
        "saved": [np.asarray(leaf).tolist() for leaf in jax.tree_util.tree_leaves(
            (model.state.params, model.state.opt_state))],
    }, out)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # two processes start JAX and orbax: about a minute on 2 shared cores
def test_two_processes_save_one_checkpoint_that_restores_everywhere(tmp_path: Path) -> None:
    script = tmp_path / "save.py"
    script.write_text(SCRIPT)
    coordinator = f"127.0.0.1:{free_port()}"
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), coordinator, str(index), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    results = [json.loads((tmp_path / f"process-{i}.json").read_text()) for i in range(2)]
    assert [r["processes"] for r in results] == [2, 2]
    for result in results:
        assert (result["step"], result["epoch"]) == (9, 1)
        for got, saved in zip(result["leaves"], result["saved"], strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(saved))
    # One checkpoint, nothing left beside it, and it restores in a process of its own.
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["checkpoint"]
    alone = JaxSsvaeModel.restore(tmp_path / "checkpoint")
    leaves = jax.tree_util.tree_leaves((alone.state.params, alone.state.opt_state))
    for got, saved in zip(leaves, results[0]["saved"], strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(saved))
    np.testing.assert_allclose(alone.tau, np.full((4, 3), 1 / 3, np.float32))
