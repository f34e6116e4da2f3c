"""The cyclic garbage collector is paused while a file is read and embedded, and always
restored as it was: a library call must not leave the caller's process without it."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from ssvae.adapters.text.embed_file import embed_text_file
from ssvae.adapters.text.embed_pool import gc_paused
from ssvae.domain.errors import DataError


@pytest.fixture(autouse=True)
def _collector_enabled_after() -> object:
    yield None
    gc.enable()


def test_the_collector_is_paused_inside_and_restored_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(ValueError, match="inside"), gc_paused():
        assert not gc.isenabled()
        raise ValueError("inside")
    assert gc.isenabled()
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # a caller that had turned it off keeps it off


def test_an_embedding_leaves_the_collector_on_whether_it_succeeds_or_fails(
    tmp_path: Path,
) -> None:
    lines = [f"{i},event {i % 7} on host {i % 13} took {i % 97} ms" for i in range(60)]
    source = tmp_path / "m.csv"
    source.write_text("id,text\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert embed_text_file(source, tmp_path / "v.parquet", embedder_dim=4).rows == 60
    assert gc.isenabled()
    source.write_text("id,text\n" + "\n".join([*lines, "99,   "]) + "\n")  # read: refused
    with pytest.raises(DataError, match="the message is empty"):
        embed_text_file(source, tmp_path / "w.parquet", embedder_dim=4)
    assert gc.isenabled()
