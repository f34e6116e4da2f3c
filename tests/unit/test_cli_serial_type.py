"""The CLI serial argument takes every int64 serial and refuses longer digit runs in one line."""

from __future__ import annotations

import pytest

from ssvae.domain.errors import LabelError
from ssvae.domain.labels import MAX_SERIAL
from ssvae.entrypoints.cli.label import SERIAL


def test_the_largest_serial_is_accepted() -> None:
    assert SERIAL.convert(str(MAX_SERIAL), None, None) == MAX_SERIAL
    assert SERIAL.convert("000" + str(MAX_SERIAL), None, None) == MAX_SERIAL


def test_one_digit_more_than_any_serial_is_one_line() -> None:
    with pytest.raises(LabelError) as caught:
        SERIAL.convert("1" + "0" * len(str(MAX_SERIAL)), None, None)
    assert "\n" not in str(caught.value)
    assert f"at most {len(str(MAX_SERIAL))}" in str(caught.value)
