"""IdxDataSource on local files: the embedded MNIST, checksums in both forms, damaged files."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.data.idx import encode_idx, write_idx
from ssvae.adapters.data.mnist import IdxDataSource, embedded_data_dir
from ssvae.domain.errors import DataError

# Published per-class counts of MNIST: a closed check on the whole decoding path.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def embedded() -> IdxDataSource:
    return IdxDataSource(directories=[embedded_data_dir()], cache_dir=Path("/nonexistent-cache"))


def test_embedded_mnist_describe(embedded: IdxDataSource) -> None:
    info = embedded.describe()
    assert info.name == "mnist" and info.kind == "image" and info.has_true_labels
    assert info.sample_shape == (28, 28, 1)
    assert info.split_sizes == (("train", 60000), ("test", 10000))
    assert info.vocabulary.names == tuple("0123456789")
    np.testing.assert_array_equal(embedded.serials("test"), np.arange(10000))


@pytest.mark.parametrize(
    ("split", "first_labels", "counts"),
    [
        ("train", [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], MNIST_TRAIN_COUNTS),
        ("test", [7, 2, 1, 0, 4, 1, 4, 9, 5, 9], MNIST_TEST_COUNTS),
    ],
)
def test_embedded_mnist_load(
    embedded: IdxDataSource, split: str, first_labels: list[int], counts: list[int]
) -> None:
    samples = embedded.load(split)
    assert samples.x.dtype == np.float32 and samples.y is not None
    assert samples.x.shape == (sum(counts), 28, 28, 1)
    assert samples.x.min() == 0.0 and samples.x.max() == 1.0
    assert samples.y.dtype == np.int64
    assert samples.y[:10].tolist() == first_labels
    assert np.bincount(samples.y, minlength=10).tolist() == counts
    np.testing.assert_array_equal(samples.serials, np.arange(sum(counts)))


def test_load_by_serials_keeps_their_order(embedded: IdxDataSource) -> None:
    everything = embedded.load("test")
    picked = embedded.load("test", np.array([9999, 0, 5, 5], dtype=np.int64))
    np.testing.assert_array_equal(picked.serials, [9999, 0, 5, 5])
    np.testing.assert_array_equal(picked.x, everything.x[[9999, 0, 5, 5]])
    assert picked.y is not None and everything.y is not None
    np.testing.assert_array_equal(picked.y, everything.y[[9999, 0, 5, 5]])
    # Callers may scale or mutate what they get; the cache must not change.
    picked.x[:] = 7.0
    assert embedded.load("test", np.array([0])).x.max() <= 1.0


@pytest.mark.parametrize("serials", [[10000], [-1], [3, 12000]])
def test_unknown_serials_are_rejected(embedded: IdxDataSource, serials: list[int]) -> None:
    with pytest.raises(DataError, match="is not in split 'test'"):
        embedded.load("test", np.array(serials, dtype=np.int64))


def test_unknown_split_and_name_are_rejected(embedded: IdxDataSource) -> None:
    with pytest.raises(DataError, match="no split 'valid'"):
        embedded.load("valid")
    with pytest.raises(DataError, match="no split 'valid'"):
        embedded.serials("valid")
    with pytest.raises(DataError, match="built-in ones are mnist, fashion_mnist"):
        IdxDataSource(name="cifar10")


def _small(seed: int = 0, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> None:
    for stem, array in arrays.items():
        write_idx(folder / (f"{stem}.gz" if gz else stem), array)


def _raw_md5s(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {stem: hashlib.md5(encode_idx(a)).hexdigest() for stem, a in arrays.items()}


def _gz_md5s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.glob("*.gz")}


@pytest.mark.parametrize(
    ("gz", "known"),
    [(True, "gz"), (True, "raw"), (False, "raw"), (True, "none"), (False, "none")],
)
def test_local_files_verified_by_either_checksum(tmp_path: Path, gz: bool, known: str) -> None:
    arrays = _small()
    _write(tmp_path, arrays, gz)
    checksums = {"gz": _gz_md5s(tmp_path), "raw": _raw_md5s(arrays), "none": {}}[known]
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums=checksums)
    train = source.load("train")
    assert train.y is not None
    np.testing.assert_array_equal(train.y, arrays["train-labels-idx1-ubyte"])
    assert source.describe().split_sizes == (("train", 12), ("test", 5))


def test_recompressed_gzip_passes_by_its_uncompressed_checksum(tmp_path: Path) -> None:
    # The repository ships recompressed MNIST files: the same bytes inside, another gzip.
    arrays = _small()
    _write(tmp_path, arrays, gz=True)
    checksums = {f"{stem}.gz": "0" * 32 for stem in arrays} | _raw_md5s(arrays)
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums=checksums)
    np.testing.assert_array_equal(source.load("test").y, arrays["t10k-labels-idx1-ubyte"])


def test_altered_contents_fail_on_load_naming_the_file(tmp_path: Path) -> None:
    arrays = _small()
    checksums = _raw_md5s(arrays)
    altered = dict(arrays)
    altered["t10k-images-idx3-ubyte"] = arrays["t10k-images-idx3-ubyte"] ^ np.uint8(1)
    _write(tmp_path, altered, gz=False)
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums=checksums)
    assert source.describe().size("test") == 5  # headers are intact
    source.load("train")
    with pytest.raises(DataError, match="do not match the known MNIST checksum") as caught:
        source.load("test")
    assert str(tmp_path / "t10k-images-idx3-ubyte") in str(caught.value)


def test_earlier_folder_wins_and_later_folder_fills_gaps(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    mine, theirs = _small(seed=1), _small(seed=2)
    _write(first, {k: v for k, v in mine.items() if k.startswith("train")}, gz=True)
    _write(second, theirs, gz=False)
    source = IdxDataSource(directories=[first, second], cache_dir=tmp_path / "c", checksums={})
    np.testing.assert_array_equal(source.load("train").y, mine["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(source.load("test").y, theirs["t10k-labels-idx1-ubyte"])


def test_label_outside_the_classes_names_the_row(tmp_path: Path) -> None:
    arrays = _small()
    arrays["train-labels-idx1-ubyte"][7] = 10
    _write(tmp_path, arrays, gz=True)
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums={})
    with pytest.raises(DataError, match=r"row 7 has label 10, outside 0\.\.9"):
        source.load("train")


def test_images_and_labels_of_different_lengths(tmp_path: Path) -> None:
    arrays = _small()
    arrays["t10k-labels-idx1-ubyte"] = arrays["t10k-labels-idx1-ubyte"][:4]
    _write(tmp_path, arrays, gz=True)
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums={})
    with pytest.raises(DataError, match="do not belong together") as caught:
        source.describe()
    assert "t10k-labels-idx1-ubyte.gz" in str(caught.value)


def test_labels_in_place_of_images_are_rejected(tmp_path: Path) -> None:
    arrays = _small()
    arrays["train-images-idx3-ubyte"] = arrays["train-labels-idx1-ubyte"]
    _write(tmp_path, arrays, gz=True)
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums={})
    with pytest.raises(DataError, match="not an IDX image file"):
        source.describe()


def test_truncated_local_file_names_it(tmp_path: Path) -> None:
    arrays = _small()
    _write(tmp_path, arrays, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums={})
    with pytest.raises(DataError, match="truncated") as caught:
        source.load("train")
    assert str(path) in str(caught.value)


def test_real_mnist_uncompressed_files_pass_by_their_published_md5(tmp_path: Path) -> None:
    # A folder mixing uncompressed (test) and gzipped (train) copies of the real files.
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem in ("t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        with gzip.open(embedded_data_dir() / f"{stem}.gz") as packed:
            (folder / stem).write_bytes(packed.read())
    for stem in ("train-labels-idx1-ubyte", "train-images-idx3-ubyte"):
        shutil.copy(embedded_data_dir() / f"{stem}.gz", folder)
    source = IdxDataSource(directories=[folder], cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(source.load("test").y[:3], [7, 2, 1])  # type: ignore[index]


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_a_header_declaring_2_to_the_32_images_is_refused_before_serials_are_made(
    tmp_path: Path, gz: bool
) -> None:
    # serials() sizes an array by the headers: 2**32 - 1 samples would take 32 GiB.
    _write(tmp_path, _small(), gz=gz)
    for stem, array in (
        ("train-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8)),
        ("train-labels-idx1-ubyte", np.zeros(1, np.uint8)),
    ):
        data = encode_idx(array)
        data = data[:4] + (2**32 - 1).to_bytes(4, "big") + data[8:]
        (tmp_path / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    source = IdxDataSource(directories=[tmp_path], cache_dir=tmp_path / "c", checksums={})
    with pytest.raises(DataError, match="size mismatch") as caught:
        source.describe()
    assert "train-images-idx3-ubyte" in str(caught.value)
