"""Labels in a Parquet file: columns `Serial` (int64) and `label` (string, class names)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from ssvae.adapters.labels._store import LabelFile, LabelFileStore, LabelRows
from ssvae.domain.echo import one_line
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import LabelSet

_FIX = "write it with exactly the columns Serial (int64) and label (string)"


class ParquetLabelFile(LabelFile):
    """The Parquet label format."""

    def parse(self, data: bytes, origin: str) -> LabelRows:
        """The rows of a Parquet label file; LabelError naming the first bad row."""
        try:
            # ParquetFile, not read_table: read_table imports pandas (almost a second).
            table = pq.ParquetFile(pa.BufferReader(data)).read()
        except (pa.ArrowException, OSError) as error:
            raise LabelError(
                f"{origin} is not a readable Parquet file ({one_line(error, 160)}); {_FIX}"
            ) from None
        except UnicodeDecodeError:  # Arrow decodes column names as UTF-8 when it opens a file
            raise LabelError(
                f"{origin} is not a readable Parquet file (a column name is not UTF-8 text); {_FIX}"
            ) from None
        if sorted(table.column_names) != ["Serial", "label"]:
            shown = one_line(", ".join(table.column_names[:10]), 160)
            raise LabelError(f"{origin} has the columns {shown}; {_FIX}")
        serial_type = table.schema.field("Serial").type
        label_type = table.schema.field("label").type
        if not pa.types.is_integer(serial_type):
            raise LabelError(f"{origin}: column Serial has type {serial_type}; {_FIX}")
        if pa.types.is_dictionary(label_type):
            label_type = label_type.value_type
        if not (pa.types.is_string(label_type) or pa.types.is_large_string(label_type)):
            raise LabelError(f"{origin}: column label has type {label_type}; {_FIX}")
        serials = table.column("Serial").to_pylist()
        names = table.column("label").cast(pa.string()).to_pylist()
        for row, (serial, name) in enumerate(zip(serials, names, strict=True)):
            if serial is None or name is None:
                raise LabelError(
                    f"{origin} row {row + 1}: the serial or the label is empty; "
                    "fill it in or remove the row"
                )
        return LabelRows(serials, [name.strip() for name in names], lambda row: f"row {row + 1}")

    def encode(self, labels: LabelSet) -> bytes:
        """A Parquet file with one row per label, sorted by serial."""
        table = pa.Table.from_arrays(
            [_int64_array(labels.serials()), _string_array([name for _, name in labels])],
            names=["Serial", "label"],
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return bytes(sink.getvalue().to_pybytes())


# Arrays are built from buffers because pa.array() imports pandas (almost a second per process).


def _int64_array(values: npt.NDArray[np.int64]) -> pa.Array:
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _string_array(values: list[str]) -> pa.Array:
    encoded = [value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), data])


class ParquetLabelStore(LabelFileStore):
    """A label store in a Parquet file, with its history and lock beside it."""

    label_file = ParquetLabelFile()
