"""The IDX reader and writer on real files: round trips, every kind of damage, shipped MNIST."""

from __future__ import annotations

import gzip
import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssvae.adapters.data.idx import (
    decode_idx,
    encode_idx,
    read_idx,
    read_idx_bytes,
    read_idx_shape,
    write_idx,
)
from ssvae.adapters.data.mnist import MNIST_CHECKSUMS, embedded_data_dir
from ssvae.domain.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _sample(dtype: type, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_gzip_and_raw(tmp_path: Path, suffix: str, dtype: type) -> None:
    array = _sample(dtype, (5, 3, 4))
    path = tmp_path / f"array-idx3{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, array)
    header_dtype, header_shape = read_idx_shape(path)
    assert header_shape == (5, 3, 4)
    assert header_dtype.newbyteorder("=") == np.dtype(dtype)


def test_header_is_big_endian_with_the_mnist_magic(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1"
    write_idx(path, np.arange(7, dtype=np.uint8))
    raw = path.read_bytes()
    assert int.from_bytes(raw[:4], "big") == 2049  # MNIST labels magic
    assert int.from_bytes(raw[4:8], "big") == 7
    assert raw[8:] == bytes(range(7))
    assert int.from_bytes(encode_idx(np.zeros((2, 28, 28), np.uint8))[:4], "big") == 2051


def test_compress_flag_overrides_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "plain-name"
    write_idx(path, np.arange(4, dtype=np.int32), compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path), np.arange(4))


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.dtype(d) for d in DTYPES]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
        elements={"allow_nan": False},
    )
)
def test_encode_decode_round_trip_property(array: np.ndarray) -> None:
    back = decode_idx(encode_idx(array), Path("mem.idx"))
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("dtype", [np.uint16, np.int64, np.bool_, np.complex64])
def test_write_rejects_dtypes_idx_cannot_store(tmp_path: Path, dtype: type) -> None:
    with pytest.raises(DataError, match="IDX cannot store dtype"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_a_scalar(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "x.idx", np.uint8(3))


def _valid_bytes() -> bytes:
    return encode_idx(np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4))


def _damage(path: Path, data: bytes, compress: bool) -> None:
    path.write_bytes(gzip.compress(data) if compress else data)


DAMAGE = {
    "truncated data": (_valid_bytes()[:-5], "truncated"),
    "trailing bytes": (_valid_bytes() + b"\x00\x01", "trailing"),
    "truncated header": (_valid_bytes()[:9], "truncated IDX header"),
    "bad magic": (b"\x01\x02" + _valid_bytes()[2:], "not an IDX file"),
    "unknown dtype code": (b"\x00\x00\x07" + _valid_bytes()[3:], "not an IDX file"),
    "zero dimensions": (b"\x00\x00\x08\x00", "0 dimensions"),
    "empty file": (b"", "not an IDX file"),
    "wrong size in header": (
        _valid_bytes()[:4] + (3).to_bytes(4, "big") + _valid_bytes()[8:],
        "size mismatch",
    ),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_files_raise_data_error_naming_the_file(
    tmp_path: Path, case: str, compress: bool
) -> None:
    data, message = DAMAGE[case]
    path = tmp_path / "damaged-idx3-ubyte"
    _damage(path, data, compress)
    with pytest.raises(DataError, match=message) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_truncated_gzip_stream_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(_valid_bytes())[:-12])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_corrupt_gzip_payload_names_the_file(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(bytes(range(256)) * 40))
    for offset in range(12, 40):  # scramble the deflate stream itself
        packed[offset] ^= 0x5A
    path = tmp_path / "scrambled.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_non_gzip_garbage_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage-idx1-ubyte.gz"
    path.write_bytes(np.random.default_rng(3).bytes(300).replace(b"\x00", b"\x01"))
    with pytest.raises(DataError, match="not an IDX file") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_missing_file_and_folder_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "absent")
    with pytest.raises(DataError, match="cannot be read") as caught:
        read_idx(tmp_path)
    assert str(tmp_path) in str(caught.value)
    with pytest.raises(DataError, match="file not found"):
        read_idx_shape(tmp_path / "absent")


def test_read_shape_checks_the_declared_size_against_a_raw_file(tmp_path: Path) -> None:
    # Callers size arrays by the header: a raw file cut in its data is refused at once.
    path = tmp_path / "cut"
    path.write_bytes(_valid_bytes()[:20])
    with pytest.raises(DataError, match="truncated") as caught:
        read_idx_shape(path)
    assert str(path) in str(caught.value)
    path.write_bytes(_valid_bytes())
    assert read_idx_shape(path) == (np.dtype(np.uint8), (2, 4, 4))


def _claiming(count: int, compress: bool) -> bytes:
    """An image file whose header declares `count` 28x28 images but holds one."""
    data = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (count, 28, 28))
    data += bytes(28 * 28)
    return gzip.compress(data) if compress else data


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_a_header_declaring_2_to_the_32_samples_is_refused_without_allocating(
    tmp_path: Path, compress: bool
) -> None:
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(_claiming(2**32 - 1, compress))
    tracemalloc.start()
    try:
        for read in (read_idx_shape, read_idx):
            with pytest.raises(DataError, match="size mismatch") as caught:
                read(path)
            assert str(path) in str(caught.value) and "\n" not in str(caught.value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_gzip_bomb_is_decompressed_no_further_than_its_header_declares(
    tmp_path: Path,
) -> None:
    # 64 MiB of zeros compress to 64 KiB; the header declares one 28x28 image.
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (1, 28, 28))
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(64 << 20)))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="trailing bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


SHIPPED = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}


@pytest.mark.parametrize("stem", list(SHIPPED))
def test_shipped_mnist_files_have_the_right_shapes_and_checksums(stem: str) -> None:
    path = embedded_data_dir() / f"{stem}.gz"
    raw = read_idx_bytes(path)
    assert hashlib.md5(raw).hexdigest() == MNIST_CHECKSUMS[stem]
    array = decode_idx(raw, path)
    assert array.shape == SHIPPED[stem]
    assert array.dtype == np.uint8
    assert read_idx_shape(path) == (np.dtype(np.uint8), SHIPPED[stem])
    if array.ndim == 1:
        assert set(np.unique(array)) == set(range(10))


def test_embedded_folder_is_the_repository_data_folder() -> None:
    folder = embedded_data_dir()
    assert folder.parts[-2:] == ("data", "mnist")
    assert (folder.parent.parent / "pyproject.toml").is_file()
