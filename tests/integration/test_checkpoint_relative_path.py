"""A checkpoint saved and loaded through a relative path (the CLI's default artifacts folder
is relative) loads: orbax itself accepts absolute paths only."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.spec import ModelSpec


def test_a_relative_checkpoint_folder_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = ModelSpec.from_fields(input_shape=(4,), num_classes=2, latent_dim=2, hidden_sizes=(8,))
    model = JaxSsvaeModel(spec)
    relative = Path("artifacts") / "models" / "w" / "checkpoint"
    model.save(relative)
    loaded = JaxSsvaeModel.restore(relative)
    pairs = zip(
        jax.tree_util.tree_leaves(loaded.state.params),
        jax.tree_util.tree_leaves(model.state.params),
        strict=True,
    )
    for got, want in pairs:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
