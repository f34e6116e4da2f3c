"""texts_fingerprint: equal lists give equal digests; any change to the list changes it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ssvae.domain.text import texts_fingerprint


def test_known_edge_cases_differ() -> None:
    digests = {
        texts_fingerprint(texts)
        for texts in ([], [""], ["", ""], ["ab"], ["a", "b"], ["b", "a"], ["a\x00b"])
    }
    assert len(digests) == 7
    assert len(texts_fingerprint(["x"])) == 64


@given(st.lists(st.text(max_size=8), max_size=6), st.lists(st.text(max_size=8), max_size=6))
def test_equal_exactly_when_lists_are_equal(a: list[str], b: list[str]) -> None:
    assert (texts_fingerprint(a) == texts_fingerprint(b)) == (a == b)
    assert texts_fingerprint(a) == texts_fingerprint(list(a))


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=5), max_size=4))
def test_lone_surrogates_do_not_crash(texts: list[str]) -> None:
    assert texts_fingerprint([*texts, "\ud800"]) != texts_fingerprint(texts)
