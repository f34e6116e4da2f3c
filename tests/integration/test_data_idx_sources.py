"""Where IdxDataSource takes its files from: folders that must exist, which file came from
where, and files accepted for now that fail their checksum on load."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import attrs
import numpy as np
import pytest

from ssvae.adapters.data import mnist
from ssvae.adapters.data.idx import encode_idx, write_idx
from ssvae.adapters.data.mnist import IdxDataSource, embedded_data_dir
from ssvae.domain.errors import DataError

TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _arrays(seed: int, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        TRAIN[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST[0]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        TEST[1]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(folder / (f"{stem}.gz" if gz else stem), array)


def _raw_md5s(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {stem: hashlib.md5(encode_idx(a)).hexdigest() for stem, a in arrays.items()}


def test_a_data_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    source = IdxDataSource(directories=[missing, embedded_data_dir()], cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="does not exist") as caught:
        source.describe()
    message = str(caught.value)
    assert str(missing) in message and "--data-dir" in message and "\n" not in message
    assert not (tmp_path / "c").exists()


def test_a_file_given_as_the_data_folder_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    source = IdxDataSource(directories=[afile, embedded_data_dir()], cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="is not a folder"):
        source.describe()


def test_describe_says_which_files_came_from_which_folder(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    _write(mine, {stem: a for stem, a in _arrays(0).items() if stem in TRAIN}, gz=True)
    source = IdxDataSource(directories=[mine, embedded_data_dir()], cache_dir=tmp_path / "c")
    sources = source.describe().sources
    assert sources == (
        f"{TRAIN[0]}.gz, {TRAIN[1]}.gz from {mine}",
        f"{TEST[0]}.gz, {TEST[1]}.gz from {embedded_data_dir()}",
    )


def test_fashion_mnist_checksums_hold_the_published_uncompressed_md5s() -> None:
    # Zalando's published md5s of the uncompressed files: recompressed copies pass by them.
    assert {stem: mnist.FASHION_MNIST_CHECKSUMS[stem] for stem in (*TRAIN, *TEST)} == {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }


def test_the_mnist_trailers_are_those_of_the_embedded_files() -> None:
    for stem, trailer in mnist.MNIST_TRAILERS.items():
        packed = (embedded_data_dir() / f"{stem}.gz").read_bytes()
        raw = gzip.decompress(packed)
        assert hashlib.md5(raw).hexdigest() == mnist.MNIST_CHECKSUMS[stem]
        assert trailer == (int.from_bytes(packed[-8:-4], "little"), len(raw))


def test_recompressed_fashion_mnist_files_pass_by_their_uncompressed_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-ins for the real files: the table is injected, the embedded MNIST comes after.
    arrays = _arrays(1)
    table = {**mnist.FASHION_MNIST_CHECKSUMS, **_raw_md5s(arrays)}
    fashion = attrs.evolve(mnist.DATASETS["fashion_mnist"], checksums=table)
    monkeypatch.setitem(mnist.DATASETS, "fashion_mnist", fashion)  # type: ignore[index]
    _write(tmp_path / "fashion", arrays, gz=True)  # recompressed: its gzip md5 is unknown
    source = IdxDataSource(
        name="fashion_mnist",
        directories=[tmp_path / "fashion", embedded_data_dir()],
        cache_dir=tmp_path / "c",
    )
    assert source.describe().size("train") == 12
    np.testing.assert_array_equal(source.load("train").y, arrays[TRAIN[1]])
    np.testing.assert_array_equal(source.load("test").y, arrays[TEST[1]])


def test_a_file_accepted_for_now_that_fails_its_md5_gives_way_to_the_next(tmp_path: Path) -> None:
    wrong, right = _arrays(2), _arrays(3)
    _write(tmp_path / "first", wrong, gz=True)  # same names and shapes, other contents
    _write(tmp_path / "second", right, gz=False)
    checksums = {f"{stem}.gz": "0" * 32 for stem in right} | _raw_md5s(right)
    source = IdxDataSource(
        directories=[tmp_path / "first", tmp_path / "second"],
        cache_dir=tmp_path / "c",
        checksums=checksums,
    )
    assert source.describe().sources == (
        f"{', '.join(f'{stem}.gz' for stem in (*TRAIN, *TEST))} from {tmp_path / 'first'}",
    )
    np.testing.assert_array_equal(source.load("train").y, right[TRAIN[1]])
    np.testing.assert_array_equal(source.load("test").x[..., 0] * 255, right[TEST[0]])
    assert source.describe().sources == (
        f"{', '.join((*TRAIN, *TEST))} from {tmp_path / 'second'}",
    )


def test_when_no_other_file_is_left_the_failed_one_is_named(tmp_path: Path) -> None:
    wrong, right = _arrays(2), _arrays(3)
    _write(tmp_path / "only", wrong, gz=True)
    checksums = _raw_md5s(right)
    source = IdxDataSource(
        directories=[tmp_path / "only"], cache_dir=tmp_path / "c", checksums=checksums
    )
    with pytest.raises(DataError, match=r"unusable: .*do not match the known MNIST") as caught:
        source.load("train")
    assert str(tmp_path / "only" / f"{TRAIN[0]}.gz") in str(caught.value)


def test_a_replacement_that_holds_other_shapes_is_refused(tmp_path: Path) -> None:
    wrong, right = _arrays(2), _arrays(3, n_train=7)
    _write(tmp_path / "first", wrong, gz=True)
    _write(tmp_path / "second", right, gz=False)
    source = IdxDataSource(
        directories=[tmp_path / "first", tmp_path / "second"],
        cache_dir=tmp_path / "c",
        checksums=_raw_md5s(right),
    )
    assert source.describe().size("train") == 12
    with pytest.raises(DataError) as caught:
        source.load("train")
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
