"""Two processes on JAX's distributed runtime (gloo on CPU, 127.0.0.1) train the parameters
and score the query of one process; a process that cannot reach its coordinator stops within
its timeout, in one line naming the address."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.distributed import ClusterSettings, DistributedError, ProcessPlace

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
import numpy as np
from ssvae.adapters.model.distributed import JaxDistributedRuntime
from ssvae.domain.distributed import ClusterSettings

coordinator, count, index, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
full = sys.argv[5] == "full"  # else a quick run: one epoch, no validation, no query
checkpoint = sys.argv[6]  # every process saves into the same folder: orbax is collective
settings = ClusterSettings(coordinator, count, index, init_timeout=60) if count > 1 else None
place = JaxDistributedRuntime().start(settings or ClusterSettings())

import jax
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.acquisition import margin
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.spec import ModelSpec

vocab = ClassVocabulary(("a", "b", "c"))
rng = np.random.default_rng(0)
n, width = 150, 8
y = np.arange(n) % 3
x = (rng.normal(size=(n, width)) * 0.3).astype(np.float32)
x[np.arange(n), y] += 2.0
labels = LabelSet.from_pairs(vocab, [(i, vocab.names[y[i]]) for i in range(12)])
spec = ModelSpec.from_fields(
    input_shape=(width,), num_classes=3, latent_dim=2, hidden_sizes=(16,), likelihood="gaussian",
    prior="mixture", num_components=4,
    batch_size=16, labeled_batch_size=8, patience=0, validation_split=0.2 if full else 0.0,
    seed=7,
)
model = JaxSsvaeModel(spec)
pool = Samples(np.arange(n, dtype=np.int64), x, y.astype(np.int64))
report = model.fit(pool, labels, epochs=2 if full else 1)
from pathlib import Path
model.save(Path(checkpoint))
result = {
    "place": [place.index, place.count, jax.process_count(), jax.device_count()],
    "params": [np.asarray(leaf).tolist() for leaf in jax.tree_util.tree_leaves(model.state.params)],
    "loss": [r.metrics["loss"] for r in report.history],
}
if full:
    predictions = model.predict(x)
    scores = model.model_scores(x, ["bald", "negative_elbo"], samples=4, seed=1)
    result.update(
        val_loss=[r.metrics["val_loss"] for r in report.history],
        probs=predictions.class_probs.tolist(),
        bald=scores["bald"].tolist(),
        elbo=scores["negative_elbo"].tolist(),
        query=np.argsort(margin(predictions.class_probs), kind="stable")[:10].tolist(),
    )
open(out, "w").write(json.dumps(result))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    return env


def run_processes(tmp_path: Path, count: int, variant: str) -> list[dict[str, object]]:
    coordinator = f"127.0.0.1:{free_port()}"
    outs = [tmp_path / f"{count}-{i}.json" for i in range(count)]
    checkpoint = tmp_path / f"checkpoint-{count}"
    run_args = [[str(out), variant, str(checkpoint)] for out in outs]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, coordinator, str(count), str(i), *run_args[i]],
            env=environment(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr[-3000:]
    return [json.loads(out.read_text()) for out in outs]


def assert_same_run(tmp_path: Path, variant: str) -> list[dict[str, object]]:
    """Both processes of the 2-process run end with the 1-process run's parameters."""
    (one,) = run_processes(tmp_path, 1, variant)
    first, second = run_processes(tmp_path, 2, variant)
    assert one["place"] == [0, 1, 1, 1]
    assert first["place"] == [0, 2, 2, 2] and second["place"] == [1, 2, 2, 2]
    for two in (first, second):
        for got, want in zip(two["params"], one["params"], strict=True):  # type: ignore[call-overload]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)  # type: ignore[arg-type]
    # The checkpoint the two processes saved together holds the parameters they trained.
    saved = JaxSsvaeModel.restore(tmp_path / "checkpoint-2")
    for got, want in zip(leaves(saved), first["params"], strict=True):  # type: ignore[call-overload]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    return [one, first, second]


def leaves(model: JaxSsvaeModel) -> list[np.ndarray]:
    import jax

    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(model.state.params)]


def test_two_processes_train_the_parameters_of_one(tmp_path: Path) -> None:
    """One epoch of 7 steps, each process reading half of every batch."""
    assert_same_run(tmp_path, "quick")


@pytest.mark.slow
def test_two_processes_train_validate_and_query_as_one(tmp_path: Path) -> None:
    """Two epochs with validation, then the pool scored (q(y|x), BALD, -ELBO) by both
    processes, each its half of every batch, gathered: the same scores and margin query."""
    one, *twos = assert_same_run(tmp_path, "full")
    for two in twos:
        np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-5)  # type: ignore[arg-type]
        for name in ("probs", "bald", "elbo"):
            np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-5)  # type: ignore[arg-type]
        assert two["query"] == one["query"]


UNREACHABLE = """
import sys, time
from ssvae.adapters.model.distributed import JaxDistributedRuntime
from ssvae.domain.distributed import ClusterSettings
from ssvae.domain.errors import SsvaeError

settings = ClusterSettings(sys.argv[1], 2, int(sys.argv[2]), init_timeout=2)
start = time.monotonic()
try:
    JaxDistributedRuntime().start(settings)
except SsvaeError as error:
    print(f"{time.monotonic() - start:.2f} {error}")
    sys.exit(1)
"""


@pytest.mark.parametrize("process_id", [0, 1])
def test_a_process_alone_stops_within_its_timeout_naming_the_address(process_id: int) -> None:
    """Process 1 finds nobody at the coordinator's port; process 0 waits for a peer that never
    comes. Each stops after its 2 s, in one line with the address, and no C++ stack trace."""
    coordinator = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", UNREACHABLE, coordinator, str(process_id)],
        env=environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.monotonic() - started
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(lines) == 1, lines
    assert coordinator in lines[0] and "within 2 s" in lines[0]
    if process_id == 1:
        waited = float(lines[0].split()[0])
        assert 2.0 <= waited < 3.5
        assert "cannot reach the coordinator" in lines[0]
    else:
        assert lines[0].startswith("error: the 2 processes did not all join")
    assert wall < 60  # Python and JAX start in seconds; the wait is the 2 s


def test_cluster_detection_outside_a_cluster_is_one_line() -> None:
    """--cluster where no SLURM, Open MPI or Kubernetes job says the processes."""
    script = (
        "from ssvae.adapters.model.distributed import JaxDistributedRuntime\n"
        "from ssvae.domain.distributed import ClusterSettings\n"
        "from ssvae.domain.errors import SsvaeError\n"
        "try:\n"
        "    JaxDistributedRuntime().start(ClusterSettings(detect=True, init_timeout=5))\n"
        "except SsvaeError as error:\n"
        "    print(error)\n"
    )
    env = {k: v for k, v in environment().items() if not k.startswith(("SLURM_", "OMPI_"))}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (done.stdout, done.stderr[-2000:])
    assert lines[0].startswith("the distributed runtime did not start at the address the cluster")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"coordinator": "nohost"}, r"'nohost' is not HOST:PORT"),
        ({"coordinator": "h:70000"}, r"is not HOST:PORT"),
        ({"coordinator": "h:1", "num_processes": 2, "process_id": 2}, r"process id 2 is invalid"),
        ({"coordinator": "h:1", "num_processes": 2}, r"without --process-id"),
        ({"init_timeout": 0}, r"wait at least 1 second"),
    ],
)
def test_bad_cluster_settings_are_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(DistributedError, match=message) as caught:
        ClusterSettings(**fields)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_one_process_starts_nothing_and_writes() -> None:
    from ssvae.adapters.model.distributed import JaxDistributedRuntime

    place = JaxDistributedRuntime().start(ClusterSettings())
    assert place == ProcessPlace(0, 1) and place.writes
    assert not ProcessPlace(1, 2).writes
