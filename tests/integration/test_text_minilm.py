"""MiniLmEmbedder against the sentence-transformers reference vectors, and its folder errors."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from reference_data import shared_dir

from ssvae.adapters.text.minilm import (
    LENGTH_BUCKETS,
    MiniLmEmbedder,
    _pool,
    bucket_length,
    padded_rows,
    plan_batches,
    read_config,
)
from ssvae.domain.errors import DataError

MODELS = shared_dir() / "models"
FOLDER = MODELS / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    with np.load(MODELS / "reference-embeddings.npz", allow_pickle=False) as archive:
        return [str(t) for t in archive["texts"]], archive["embeddings"]


@pytest.fixture(scope="module")
def embedder() -> MiniLmEmbedder:
    return MiniLmEmbedder(FOLDER, batch_size=64)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_every_reference_row_matches(
    embedder: MiniLmEmbedder, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, expected = reference
    vectors = embedder.embed(texts)
    assert vectors.shape == (64, 384) and vectors.dtype == np.float32
    cosines = _cosines(vectors, expected)
    assert cosines.min() >= 0.999, (int(np.argmin(cosines)), float(cosines.min()))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_longest_reference_text_is_truncated_to_the_folders_max_length(
    embedder: MiniLmEmbedder, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, _ = reference
    lengths = [len(ids) for ids in embedder.token_ids(texts)]
    assert embedder.config.max_length == 256 and max(lengths) == 256
    assert min(lengths) >= 2  # [CLS] and [SEP] are always there


def test_order_and_repeats_are_kept(
    embedder: MiniLmEmbedder, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, expected = reference
    picked = [texts[5], texts[60], texts[5], texts[0]]
    vectors = embedder.embed(picked)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert _cosines(vectors, expected[[5, 60, 5, 0]]).min() >= 0.999
    assert embedder.embed([]).shape == (0, 384)


def test_fingerprint_is_stable_and_depends_on_settings(embedder: MiniLmEmbedder) -> None:
    assert embedder.fingerprint() == MiniLmEmbedder(FOLDER).fingerprint()
    assert embedder.fingerprint() != MiniLmEmbedder(FOLDER, max_length=128).fingerprint()


def test_plan_covers_every_row_once_within_budget() -> None:
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(2, 60, 500), [256, 256, 200, 9]]).astype(np.int64)
    plan = plan_batches(lengths, batch_size=64, max_length=256)
    rows = np.concatenate([r for r, _ in plan])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for batch, padded in plan:
        assert padded == bucket_length(int(lengths[batch].max()), 256) <= 256
        assert len(batch) <= 64 and len(batch) * padded <= 64 * 128
    # The four long texts do not drag short ones to 256 tokens.
    assert sum(len(b) for b, p in plan if p == 256) <= 3
    # Very short texts (padding > tokens inside the smallest bucket) still fill whole batches.
    short = plan_batches(np.full(130, 3, np.int64), batch_size=64, max_length=256)
    assert [(len(b), p) for b, p in short] == [(64, 8), (64, 8), (2, 8)]


def test_buckets_and_padded_rows() -> None:
    assert [bucket_length(n, 256) for n in (1, 8, 9, 33, 255, 256)] == [8, 8, 16, 40, 256, 256]
    assert bucket_length(600, 512) == 512 and max(LENGTH_BUCKETS) == 512
    assert [padded_rows(n, 64) for n in (1, 2, 3, 5, 33, 64)] == [1, 2, 4, 8, 64, 64]


def test_pooling_modes_against_closed_forms() -> None:
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2) - 5.0
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.int32)
    mean = np.array([[-4.0, -3.0], [1.0, 2.0]])
    np.testing.assert_allclose(_pool("mean_tokens", jnp.asarray(x), jnp.asarray(mask)), mean)
    np.testing.assert_allclose(_pool("cls_token", jnp.asarray(x), jnp.asarray(mask)), x[:, 0])
    maxima = np.array([[-3.0, -2.0], [1.0, 2.0]])
    np.testing.assert_allclose(_pool("max_tokens", jnp.asarray(x), jnp.asarray(mask)), maxima)
    sqrt_len = mean * np.sqrt([[2.0], [1.0]])
    np.testing.assert_allclose(
        _pool("mean_sqrt_len_tokens", jnp.asarray(x), jnp.asarray(mask)), sqrt_len, rtol=1e-6
    )


def _partial_folder(tmp_path: Path, leave_out: str) -> Path:
    """A folder of links to the real files, without `leave_out` (no 90 MB copies)."""
    folder = tmp_path / "model"
    for source in FOLDER.rglob("*"):
        relative = source.relative_to(FOLDER)
        if source.is_file() and relative.as_posix() != leave_out:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).symlink_to(source)
    (folder / "1_Pooling").mkdir(parents=True, exist_ok=True)
    return folder


def test_missing_folder_says_how_to_provide_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such folder.*--embedder-folder"):
        MiniLmEmbedder(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "leave_out", ["model.safetensors", "tokenizer.json", "config.json", "1_Pooling/config.json"]
)
def test_missing_file_is_named(tmp_path: Path, leave_out: str) -> None:
    folder = _partial_folder(tmp_path, leave_out)
    with pytest.raises(DataError, match=rf"missing file {leave_out}.*--embedder-folder"):
        MiniLmEmbedder(folder)


def test_unsupported_pooling_and_modules_are_refused(tmp_path: Path) -> None:
    folder = _partial_folder(tmp_path, "1_Pooling/config.json")
    pooling = json.loads((FOLDER / "1_Pooling" / "config.json").read_text())
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({**pooling, "pooling_mode_weightedmean_tokens": True})
    )
    with pytest.raises(DataError, match=r"weightedmean.*not supported"):
        read_config(folder)
    (folder / "modules.json").unlink()
    (folder / "modules.json").write_text(
        json.dumps([{"type": "x.Transformer"}, {"type": "x.Dense"}])
    )
    with pytest.raises(DataError, match="expected Transformer, Pooling"):
        read_config(folder)


def test_cls_and_max_pooling_configs_are_read(tmp_path: Path) -> None:
    folder = _partial_folder(tmp_path, "1_Pooling/config.json")
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True})
    )
    config = read_config(folder)
    assert config.pooling_modes == ("cls_token", "max_tokens") and config.normalize


def test_corrupt_tokenizer_is_named(tmp_path: Path) -> None:
    folder = _partial_folder(tmp_path, "tokenizer.json")
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match=r"tokenizer\.json cannot be read"):
        MiniLmEmbedder(folder)


def test_bad_settings_are_refused() -> None:
    for max_length in (0, 1000):
        with pytest.raises(DataError, match=r"outside 2\.\.512"):
            read_config(FOLDER, max_length=max_length)
    with pytest.raises(DataError, match="compute dtype"):
        MiniLmEmbedder(FOLDER, compute_dtype="float16")


def test_bfloat16_products_stay_within_tolerance(reference: tuple[list[str], np.ndarray]) -> None:
    texts, expected = reference
    rows = [0, 1, 2, 3, 60]  # short texts and the longest (1,494 tokens before truncation)
    vectors = MiniLmEmbedder(FOLDER, compute_dtype="bfloat16").embed([texts[i] for i in rows])
    assert _cosines(vectors, expected[rows]).min() >= 0.999
