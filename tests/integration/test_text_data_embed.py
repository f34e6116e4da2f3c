"""Embedding files of messages: `embed_text_file` and the minilm path of TextDataSource."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from reference_data import shared_dir

from ssvae.adapters.data.text_source import TextDataSource, TextSourceSettings
from ssvae.adapters.text.cache import ProgressEmbedder
from ssvae.adapters.text.embed_file import DEFAULT_DIM, embed_text_file
from ssvae.domain.errors import DataError

MODELS = shared_dir() / "models"


class _Doubler:
    """A fake embedder: each text's length and twice it."""

    dimension = 2

    def embed(self, texts: list[str]) -> np.ndarray:
        lengths = np.array([len(t) for t in texts], np.float32)
        return np.stack([lengths, 2 * lengths], axis=1) if texts else np.zeros((0, 2), np.float32)

    def fingerprint(self) -> str:
        return "doubler"


def test_the_progress_embedder_reports_each_chunk_and_gives_the_same_vectors() -> None:
    seen: list[tuple[int, int]] = []
    chunked = ProgressEmbedder(_Doubler(), lambda done, total: seen.append((done, total)), 3)
    texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
    np.testing.assert_array_equal(chunked.embed(texts), _Doubler().embed(texts))
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert chunked.fingerprint() == "doubler" and chunked.dimension == 2
    assert chunked.embed([]).shape == (0, 2)


def _messages(path: Path, count: int = 60) -> Path:
    systems = ("sshd", "kernel", "disk")
    lines = []
    for i in range(count):
        text = f"{systems[i % 3]} event {i % 7} on host {i % 5}: code {1000 + 31 * i} failed"
        label = systems[i % 3] if i % 4 else None  # some messages without a class
        lines.append(json.dumps({"serial": 7 * i, "message": text, "label": label}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_embed_text_file_writes_ids_vectors_and_labels(tmp_path: Path) -> None:
    stages: list[str] = []
    seen: list[tuple[int, int]] = []
    summary = embed_text_file(
        _messages(tmp_path / "m.jsonl"),
        tmp_path / "out.parquet",
        embedder_dim=8,
        cache_dir=tmp_path / "cache",
        stage=stages.append,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (summary.rows, summary.dimension, summary.labelled) == (60, 8, 45)
    assert stages == ["fitting tfidf (8 values) on 60 messages", "embedding 60 messages"]
    assert seen[-1] == (60, 60)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["id", "vector", "label"]
    assert table.column("id").to_pylist() == [7 * i for i in range(60)]
    assert table.column("label").to_pylist()[:2] == [None, "kernel"]
    x = np.array(table.column("vector").to_pylist(), np.float32)
    assert x.shape == (60, 8)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_embed_text_file_refuses_bad_requests_before_writing(tmp_path: Path) -> None:
    path = _messages(tmp_path / "m.jsonl")
    with pytest.raises(DataError, match=r"write embeddings to a \.parquet file"):
        embed_text_file(path, tmp_path / "out.csv")
    with pytest.raises(DataError, match="--embedder-folder PATH"):
        embed_text_file(path, tmp_path / "out.parquet", embedder="minilm")
    with pytest.raises(DataError, match="embedder 'bert' is unknown"):
        embed_text_file(path, tmp_path / "out.parquet", embedder="bert")
    assert not (tmp_path / "out.parquet").exists()


def test_a_minilm_text_dataset_gives_the_reference_vectors(tmp_path: Path) -> None:
    with np.load(MODELS / "reference-embeddings.npz", allow_pickle=False) as archive:
        ids, texts, expected = archive["ids"][:8], archive["texts"][:8], archive["embeddings"][:8]
    path = tmp_path / "m.jsonl"
    rows = [{"id": int(i), "text": str(t)} for i, t in zip(ids, texts, strict=True)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    source = TextDataSource(
        TextSourceSettings(
            train_path=path,
            classes=["a", "b"],
            embedder="minilm",
            embedder_folder=MODELS / "all-MiniLM-L6-v2",
            cache_dir=tmp_path / "cache",
        )
    )
    assert source.describe().sample_shape == (384,)  # from the folder's config alone
    samples = source.load("train", np.array(ids, dtype=np.int64))
    np.testing.assert_allclose(np.linalg.norm(samples.x, axis=1), np.sqrt(384), rtol=1e-5)
    cosines = np.sum(samples.x * expected, axis=1) / np.sqrt(384)  # reference rows: unit
    assert cosines.min() >= 0.999
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 1


def test_without_a_width_a_small_file_gets_as_many_values_as_it_allows(tmp_path: Path) -> None:
    # 64 messages cannot support the default 256 values: the width follows the data.
    summary = embed_text_file(_messages(tmp_path / "m.jsonl", count=64), tmp_path / "v.parquet")
    assert summary.narrowed_from == DEFAULT_DIM
    assert 2 <= summary.dimension <= 64
    x = np.array(pq.read_table(tmp_path / "v.parquet").column("vector").to_pylist())
    assert x.shape == (64, summary.dimension)
    wide = embed_text_file(
        _messages(tmp_path / "n.jsonl", count=64), tmp_path / "w.parquet", embedder_dim=8
    )
    assert (wide.dimension, wide.narrowed_from) == (8, None)


def test_a_width_the_user_chose_is_kept_and_explained_when_too_wide(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"--embedder-dim \d+ or less") as caught:
        embed_text_file(
            _messages(tmp_path / "m.jsonl", count=64), tmp_path / "v.parquet", embedder_dim=256
        )
    assert "\n" not in str(caught.value) and "min_df" not in str(caught.value)
    assert not (tmp_path / "v.parquet").exists()


def test_an_output_path_under_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out in (afile / "x.parquet", afile / "deeper" / "x.parquet"):
        with pytest.raises(DataError, match=f"{afile} is a file, not a folder"):
            embed_text_file(tmp_path / "absent.jsonl", out)  # refused before reading input
    assert afile.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_an_unwritable_output_folder_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    real_access = os.access
    # Root may write anywhere: the test asks the permission check what a user would get.
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == folder else real_access(path, mode)
    )
    with pytest.raises(DataError, match="permission denied"):
        embed_text_file(tmp_path / "absent.jsonl", folder / "x.parquet")
    assert list(folder.iterdir()) == []


def test_a_failing_write_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    # /proc takes no new files, even from root: the write itself fails.
    with pytest.raises(DataError, match="cannot be written") as caught:
        embed_text_file(_messages(tmp_path / "m.jsonl"), Path("/proc/x.parquet"), embedder_dim=8)
    assert "\n" not in str(caught.value)
    assert not Path("/proc/x.parquet").exists()


def test_the_embed_command_says_in_one_line_that_it_narrowed_the_width(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ssvae.entrypoints.cli.main import main

    messages = _messages(tmp_path / "m.jsonl", count=64)
    out = tmp_path / "v.parquet"
    args = ["embed", "--input", str(messages), "--out", str(out), "--cache-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "--embedder-dim" in notes[0] and "64 messages" in notes[0]
    assert out.is_file()
    chosen = CliRunner().invoke(main, [*args, "--embedder-dim", "8"])
    assert chosen.exit_code == 0 and "note: " not in chosen.stderr
