"""JSON parsing with limits on nesting and on the digits of a number.

Python's json parser recurses in C once per level of arrays and objects: ~1,000 levels raise
RecursionError, and far fewer can overflow a thread's small stack (a crash, not an exception).
And int() refuses more than 4,300 digits with a ValueError whose advice,
sys.set_int_max_str_digits, is no use to someone with a file. Every file this tool writes as
JSON nests a few levels and holds numbers of at most ~20 digits, so a document is measured
before it is parsed (one regex pass, no recursion) and numbers are bounded as they are read.
Callers catch `JsonLimitError` (or any ValueError, which it is) and say which file was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ssvae.domain.echo import one_line

MAX_JSON_NESTING = 64
# Ids need 19 digits; a long number in a file is damage or hostility, not data.
MAX_JSON_DIGITS = 100
# A string (to its closing quote, or the end if unclosed: one pass, no backtracking) or a
# bracket. Brackets inside strings do not nest anything.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonLimitError(ValueError):
    """A JSON document that cannot be parsed, or is past the limits; the text is one line."""


class JsonNestingError(JsonLimitError):
    """Arrays and objects nested deeper than MAX_JSON_NESTING."""


class JsonNumberError(JsonLimitError):
    """A number with more than MAX_JSON_DIGITS digits."""


def load_json_bounded(data: str | bytes) -> Any:
    """The value `data` holds; JsonLimitError (one line) when it is invalid or past the limits.

    Bytes are read as UTF-8 (a leading byte-order mark is allowed).
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as error:
        raise JsonLimitError(f"not UTF-8 text ({one_line(error, 200)})") from None
    if json_nesting(text) > MAX_JSON_NESTING:
        raise JsonNestingError(f"values nest more than {MAX_JSON_NESTING} levels deep")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except _LongNumber as error:
        raise JsonNumberError(
            f"a number with {len(str(error)):,} characters; numbers have at most "
            f"{MAX_JSON_DIGITS} digits"
        ) from None
    except (ValueError, RecursionError) as error:  # RecursionError: defence in depth only
        raise JsonLimitError(f"not valid JSON ({one_line(error, 200)})") from None


def json_nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing it (no recursion).

    Brackets inside strings do not count; a text with few brackets needs no closer look.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_NESTING:
        return 0
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(text):
        depth += _BRACKET_STEP.get(match.group(), 0)  # strings step 0
        deepest = max(deepest, depth)
    return deepest


class _LongNumber(ValueError):
    """A JSON number with more than MAX_JSON_DIGITS digits."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise _LongNumber(text)
    return int(text)
