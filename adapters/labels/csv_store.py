"""Labels in a CSV file: header `Serial,label`, one row per labelled sample, class names."""

from __future__ import annotations

import csv
import io
import re

from ssvae.adapters.labels._store import LabelFile, LabelFileStore, LabelRows
from ssvae.domain.echo import one_line
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import LabelSet
from ssvae.domain.serials import MAX_SERIAL_DIGITS

HEADER = ("Serial", "label")
_SERIAL = re.compile(r"[0-9]+")


class CsvLabelFile(LabelFile):
    """The CSV label format; a UTF-8 byte order mark, CRLF and blank lines are tolerated."""

    def parse(self, data: bytes, origin: str) -> LabelRows:
        """The rows of a CSV label file; LabelError naming the line of the first bad row."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise LabelError(
                f"{origin} is not UTF-8 text (bad byte at offset {error.start}); "
                "save it as a UTF-8 CSV file with the header Serial,label"
            ) from None
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        serials: list[int] = []
        names: list[str] = []
        lines: list[int] = []
        try:
            header = next(reader, [])
            if tuple(header) != HEADER:
                raise LabelError(
                    f"{origin} line 1: the header is {one_line(repr(','.join(header)))}; "
                    "the first line must be exactly Serial,label"
                )
            for row in reader:
                if not row:
                    continue  # a blank line, often left at the end by editors
                where = f"{origin} line {reader.line_num}"
                if len(row) != 2:
                    raise LabelError(
                        f"{where}: expected 2 fields (serial,label), found {len(row)}; "
                        "quote class names that contain commas"
                    )
                serial_text, name = row[0].strip(), row[1].strip()
                if not _SERIAL.fullmatch(serial_text):
                    raise LabelError(
                        f"{where}: serial {one_line(repr(row[0]))} is not a non-negative integer; "
                        "correct it or remove the row"
                    )
                if len(serial_text.lstrip("0")) > MAX_SERIAL_DIGITS:
                    raise LabelError(
                        f"{where}: serial {serial_text[:20]}... has {len(serial_text)} digits, "
                        f"more than any serial (at most {MAX_SERIAL_DIGITS}); correct it or "
                        "remove the row"
                    )
                serials.append(int(serial_text))
                names.append(name)
                lines.append(reader.line_num)
        except csv.Error as error:
            raise LabelError(
                f"{origin} line {reader.line_num}: not valid CSV ({one_line(error)}); "
                "correct the quoting on that line"
            ) from None
        return LabelRows(serials, names, lambda row: f"line {lines[row]}")

    def encode(self, labels: LabelSet) -> bytes:
        """CSV text with the header and one row per label, sorted by serial."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(labels)
        return buffer.getvalue().encode("utf-8")


class CsvLabelStore(LabelFileStore):
    """A label store in a CSV file, with its history and lock beside it."""

    label_file = CsvLabelFile()
