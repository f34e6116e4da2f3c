"""Values quoted in error messages, cut short.

A message quotes what the user gave so that they can find it, but that value can be anything
a file can express: a few hundred bytes of nested YAML aliases stand for billions of items,
a list can nest thousands deep, an integer can have more digits than `repr` converts. A plain
`repr` would build all of it (gigabytes, or a RecursionError, or a ValueError instead of the
message). `short_repr` visits a bounded number of items on a bounded number of levels, so a
message costs the same whatever the value.
"""

from __future__ import annotations

import reprlib
from typing import Any

ECHO_LENGTH = 80  # characters of a quoted value; a message stays one readable line
_ITEMS = 6  # items shown per container level, the rest as '...'
_LEVELS = 3  # container levels shown, deeper ones as '...'
_INT_BITS = 256  # larger integers are described by their size (repr of 4,300+ digits raises)
_LOG10_2 = 0.30102999566398120


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, with integers and bytes that never convert in full."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = _LEVELS
        self.maxtuple = self.maxlist = self.maxarray = _ITEMS
        self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = _ITEMS
        self.maxstring = self.maxother = self.maxlong = ECHO_LENGTH

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > _INT_BITS:
            digits = int(x.bit_length() * _LOG10_2) + 1
            sign = "-" if x < 0 else ""
            return f"<{sign}an integer of about {digits:,} digits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x: bytes, level: int) -> str:
        text = repr(x[: self.maxstring])
        return text if len(x) <= self.maxstring else text + "..."


_SHORT = _ShortRepr()


def one_line(value: object, limit: int = ECHO_LENGTH) -> str:
    """`value` as text for a message: on one line, cut to about `limit` characters (a value
    read from a file can be a megabyte long, or a library's error span several lines)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def short_repr(value: Any, limit: int = ECHO_LENGTH) -> str:
    """`repr(value)` for a message: at most `limit` characters, built in bounded time and memory."""
    try:
        text = _SHORT.repr(value)
    except Exception:  # a foreign object whose repr fails must not replace the message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
