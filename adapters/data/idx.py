"""Reader and writer for the IDX format of MNIST-style files (gzip or raw).

Layout: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per
dimension, then the data in big-endian C order.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ssvae.adapters.files import atomic_write_bytes
from ssvae.domain.errors import DataError

_DTYPES: dict[int, np.dtype[np.generic]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(dtype.kind, dtype.itemsize): code for code, dtype in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
# Deflate expands data at most about 1032-fold: a gzip file of n bytes cannot hold more, so a
# header that declares more is refused before anything is allocated for it.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20
_MAX_NDIM = 64  # numpy's limit on an array's dimensions
_FIX = "download it again or replace it with an intact copy"


class _Readable(Protocol):
    """A binary stream: a file, or a GzipFile over one."""

    def read(self, size: int = -1, /) -> bytes: ...


def is_gzip(data: bytes) -> bool:
    """Whether `data` starts with the gzip magic number."""
    return data[:2] == _GZIP_MAGIC


def read_idx_bytes(path: Path) -> bytes:
    """The uncompressed IDX bytes of `path` (gzip or raw); DataError naming the file."""
    data = _read_file(path)
    return decompress(data, path) if is_gzip(data) else data


def decompress(data: bytes, path: Path) -> bytes:
    """Gunzip the IDX bytes `data` read from `path`, never beyond what its header declares.

    The header is read first and its size checked against what `data` can hold, so a header
    that claims terabytes, or a small gzip bomb, is refused before anything is allocated for
    it; one byte past the declared size is kept so that `decode_idx` reports trailing bytes.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            head = _read_header(stream)
            dtype, shape, header = parse_idx_header(head, path)
            expected = _declared_bytes(dtype, shape)
            _check_gzip_can_hold(path, len(data), header + expected, shape)
            body = _read_at_most(stream, expected + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt or truncated gzip data ({error}); {_FIX}") from None
    return head + body


def parse_idx_header(data: bytes, path: Path) -> tuple[np.dtype[np.generic], tuple[int, ...], int]:
    """The dtype, shape and header length of the IDX bytes `data` (at least the header)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic number {data[:4].hex() or 'missing'}, expected "
            f"0000 then a dtype code among {', '.join(f'{c:02x}' for c in _DTYPES)}); {_FIX}"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or ndim > _MAX_NDIM:
        raise DataError(
            f"{path}: IDX header declares {ndim} dimensions, readable are 1 to {_MAX_NDIM}; {_FIX}"
        )
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} of {header} bytes); {_FIX}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[data[2]]
    # numpy refuses a shape whose non-zero dimensions multiply past its index range, even
    # with a zero among them.
    if math.prod(d for d in shape if d) * dtype.itemsize > np.iinfo(np.intp).max:
        raise DataError(f"{path}: IDX header shape {_shown(shape)} is too large; {_FIX}")
    return dtype, shape, header


def decode_idx(data: bytes, path: Path) -> npt.NDArray[np.generic]:
    """The array held by the uncompressed IDX bytes `data` read from `path`."""
    dtype, shape, header = parse_idx_header(data, path)
    _check_size(path, shape, _declared_bytes(dtype, shape), len(data) - header)
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # Native byte order so that callers can compute with it directly.
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path) -> npt.NDArray[np.generic]:
    """The array stored in the IDX file `path`; DataError naming the file if it is corrupt."""
    return decode_idx(read_idx_bytes(path), path)


def read_idx_shape(path: Path) -> tuple[np.dtype[np.generic], tuple[int, ...]]:
    """The dtype and shape in the header of `path`, checked against the file's length.

    Only the header is decompressed: callers size arrays (serial numbers, buffers) by the
    declared shape, so a raw file must hold exactly the declared bytes, and a gzip file no
    fewer compressed bytes than so much data needs.
    """
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == _GZIP_MAGIC
            length = os.fstat(raw.fileno()).st_size
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
            head = _read_header(stream)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read or decompressed ({error}); {_FIX}") from None
    dtype, shape, header = parse_idx_header(head, path)
    expected = _declared_bytes(dtype, shape)
    if gzipped:
        _check_gzip_can_hold(path, length, header + expected, shape)
    else:
        _check_size(path, shape, expected, length - header)
    return dtype, shape


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None


def _read_header(stream: _Readable) -> bytes:
    """The magic number and the dimensions (at most 4 + 4 * 255 bytes) of an IDX stream."""
    head = stream.read(4)
    if len(head) == 4:
        head += stream.read(4 * head[3])
    return head


def _read_at_most(stream: _Readable, limit: int) -> bytes:
    """Up to `limit` bytes of `stream`, read in chunks: memory follows what the stream holds,
    never `limit` itself (a read of n bytes allocates n bytes up front)."""
    body = bytearray()
    while len(body) < limit and (chunk := stream.read(min(_CHUNK, limit - len(body)))):
        body += chunk
    return bytes(body)


def _declared_bytes(dtype: np.dtype[np.generic], shape: tuple[int, ...]) -> int:
    # Python integers: a product of 255 dimensions near 2**32 overflows int64.
    return math.prod(shape) * dtype.itemsize


def _check_size(path: Path, shape: tuple[int, ...], expected: int, found: int) -> None:
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{path}: size mismatch: header shape {_shown(shape)} needs {expected} bytes of "
            f"data, file has {found} ({problem}); {_FIX}"
        )


def _check_gzip_can_hold(
    path: Path, compressed: int, uncompressed: int, shape: tuple[int, ...]
) -> None:
    if uncompressed > compressed * _MAX_DEFLATE_RATIO:
        raise DataError(
            f"{path}: size mismatch: header shape {_shown(shape)} needs {uncompressed} bytes, "
            f"more than a gzip file of {compressed} bytes can hold (truncated or corrupt); {_FIX}"
        )


def _shown(shape: tuple[int, ...]) -> str:
    """The shape for a message, cut short: a header may declare 255 dimensions."""
    text = str(shape)
    return text if len(text) <= 80 else text[:76] + " ...)"


def encode_idx(array: npt.ArrayLike) -> bytes:
    """The uncompressed IDX bytes of `array` (dtype uint8, int8, int16, int32, float32/64)."""
    values = np.asarray(array)
    code = _CODES.get((values.dtype.kind, values.dtype.itemsize))
    if code is None:
        raise DataError(
            f"IDX cannot store dtype {values.dtype}: use uint8, int8, int16, int32, "
            "float32 or float64"
        )
    if values.ndim == 0 or values.ndim > 255:
        raise DataError(f"IDX stores 1 to 255 dimensions, the array has {values.ndim}")
    if any(size >= 2**32 for size in values.shape):
        raise DataError(f"IDX dimensions must be below 2**32, got shape {values.shape}")
    header = bytes([0, 0, code, values.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in values.shape
    )
    body = np.ascontiguousarray(values, dtype=_DTYPES[code]).tobytes()
    return header + body


def write_idx(path: Path, array: npt.ArrayLike, compress: bool | None = None) -> None:
    """Write `array` to `path` as IDX atomically; gzip when `compress` (default: name ends .gz)."""
    data = encode_idx(array)
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        data = gzip.compress(data, mtime=0)  # mtime 0: identical arrays give identical bytes
    atomic_write_bytes(path, data)
