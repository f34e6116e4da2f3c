"""The range of a serial, in a module without numpy so that the CLI can check an argument
before anything heavy is imported."""

from __future__ import annotations

MAX_SERIAL = 2**63 - 1  # serials are stored as int64
MAX_SERIAL_DIGITS = len(str(MAX_SERIAL))  # a longer run of digits cannot be a serial
