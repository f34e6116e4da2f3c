"""`ssvae query --policy bald` as a user runs it, on small vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SSVAE = str(Path(sys.executable).parent / "ssvae")
# A small network on 8-wide vectors: these tests check the commands, not the accuracy.
SMALL = ("--set", "hidden_sizes=[16]", "--set", "latent_dim=2", "--set", "batch_size=16")
NAMES = ("low", "mid", "high")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=240
    )


def _vectors(path: Path) -> None:
    """90 vectors in three clusters, with their class names."""
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = (np.eye(3, 8)[y] * 4 + rng.normal(size=(90, 8))).astype(np.float32)
    np.savez(path, x=x, y=np.asarray(NAMES)[y])


def test_query_bald_after_training_and_a_clear_error_before(tmp_path: Path) -> None:
    _vectors(tmp_path / "v.npz")
    created = run(tmp_path, "init", "--preset", "mixture_k5", "--vectors", "v.npz",
                  "--id", "demo", *SMALL)  # fmt: skip
    assert created.returncode == 0, created.stderr
    model = "artifacts/models/demo"

    refused = run(tmp_path, "query", "--model", model, "--policy", "bald", "--k", "5")
    assert refused.returncode != 0
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in refused.stderr
    assert "component-to-label map" in message and "ssvae train" in message

    labelled = run(tmp_path, "label", "--model", model, "set", "0", "3", "6", "--class", "low")
    assert labelled.returncode == 0, labelled.stderr
    trained = run(tmp_path, "train", "--model", model, "--epochs", "1")
    assert trained.returncode == 0, trained.stderr

    # (elbo runs the same path; its scores are checked in tests/integration/test_al_scores_*.)
    answer = run(tmp_path, "query", "--model", model, "--policy", "bald", "--k", "5", "--json")
    assert answer.returncode == 0, answer.stderr
    document = json.loads(answer.stdout)
    assert document["policy"] == "bald" and document["trained"] is True
    rows = document["rows"]
    assert len(rows) == 5 and not {0, 3, 6} & {r["serial"] for r in rows}
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= np.log(3) + 1e-6 for s in scores)  # nats, at most log C
    assert all(r["predicted"] in NAMES for r in rows)
