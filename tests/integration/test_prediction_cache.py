"""The workspace's cache of a model's pool predictions: what is saved is read back for the
same model and pool only, and a damaged file is predicted again, never trusted or allowed to
ask for gigabytes."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.maps import PREDICTIONS_FILE, NpzPredictionCache
from ssvae.domain.model import Predictions


def _predictions(rows: int = 50, with_optional: bool = True) -> Predictions:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), rows).astype(np.float32)
    return Predictions(
        class_probs=probs,
        latent_mean=rng.normal(size=(rows, 3)).astype(np.float32),
        certainty=probs.max(axis=1),
        ood_score=rng.random(rows).astype(np.float32) if with_optional else None,
        encoding=rng.normal(size=(rows, 12)).astype(np.float32) if with_optional else None,
    )


@pytest.mark.parametrize("with_optional", [True, False])
def test_the_predictions_come_back_for_their_model_and_pool_only(
    tmp_path: Path, with_optional: bool
) -> None:
    cache = NpzPredictionCache()
    saved = _predictions(with_optional=with_optional)
    cache.save(tmp_path, "key-1", saved)
    loaded = cache.load(tmp_path, "key-1", 50)
    assert loaded is not None
    for field in ("class_probs", "latent_mean", "certainty", "ood_score", "encoding"):
        expected, got = getattr(saved, field), getattr(loaded, field)
        assert (got is None) == (expected is None)
        if expected is not None:
            np.testing.assert_array_equal(got, expected)
    assert loaded.tau_probs is None and loaded.reconstructions is None
    assert cache.load(tmp_path, "key-2", 50) is None  # another model
    assert cache.load(tmp_path, "key-1", 49) is None  # another pool
    assert cache.load(tmp_path / "elsewhere", "key-1", 50) is None  # none cached


def test_a_damaged_cache_is_predicted_again(tmp_path: Path) -> None:
    cache = NpzPredictionCache()
    cache.save(tmp_path, "key", _predictions())
    path = tmp_path / PREDICTIONS_FILE
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"not a zip", whole.replace(b"<f4", b"<i4", 1)):
        path.write_bytes(damaged)
        assert cache.load(tmp_path, "key", 50) is None


def test_a_header_declaring_a_huge_array_allocates_nothing_large(tmp_path: Path) -> None:
    # Each member's header says 10**11 rows (400 GB); the file holds a few bytes.
    rows = 10**11
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in ("class_probs", "latent_mean", "certainty"):
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": (rows,)}
            )
            archive.writestr(f"{name}.npy", header.getvalue() + b"\0" * 64)
        key = io.BytesIO()
        np.save(key, np.asarray("key"))
        archive.writestr("model_key.npy", key.getvalue())
    (tmp_path / PREDICTIONS_FILE).write_bytes(buffer.getvalue())
    tracemalloc.start()
    try:
        assert NpzPredictionCache().load(tmp_path, "key", rows) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
