"""A small file of messages on the defaults, as a user runs it: `init --input` narrows the
tfidf width and says so, and a later `train` and `query` rebuild the same embedder.

About 35 s of real training and compiling on 2 cores: with the benchmarks (`make bench`). The
same commands run in the default suite in-process with fake models
(tests/integration/test_text_small_default_width.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SSVAE = str(Path(sys.executable).parent / "ssvae")
SMALL = ("--set", "hidden_sizes=[16]", "--set", "latent_dim=2")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd), "JAX_COMPILATION_CACHE_DIR": str(cwd / "jax-cache")}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=240
    )


@pytest.mark.slow
def test_init_train_and_query_64_messages_on_the_defaults(tmp_path: Path) -> None:
    rows = ["id,text,label"]
    for i in range(64):
        system = ("sshd", "kernel", "disk")[i % 3]
        rows.append(f"{i},{system} event {i % 7} on host {i % 5}: code {1000 + 31 * i},{system}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    created = run(tmp_path, "init", "--input", "m.csv", "--id", "w", *SMALL)
    assert created.returncode == 0, created.stderr
    (note,) = [line for line in created.stderr.splitlines() if line.startswith("note: ")]
    metadata = json.loads((tmp_path / "artifacts/models/w/metadata.json").read_text())
    width = metadata["dataset"]["embedder_dim"]
    assert 2 <= width < 256 and f"have {width} instead of 256" in note

    trained = run(tmp_path, "train", "--model", "w", "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    queried = run(tmp_path, "query", "--model", "w", "--k", "3", "--json")
    assert queried.returncode == 0, queried.stderr
    document = json.loads(queried.stdout)
    assert document["trained"] and len(document["rows"]) == 3
    assert {row["predicted"] for row in document["rows"]} <= {"sshd", "kernel", "disk"}
