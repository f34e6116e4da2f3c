"""`ssvae embed` at scale: a file read and written a chunk at a time, in bounded memory, and a
run killed part way that resumes from its last committed chunk."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.data.text_table import IdTally, TextColumns, iter_text_tables, read_text_table
from ssvae.adapters.text import embed_file, embed_pool
from ssvae.adapters.text.embed_file import _Reservoir, embed_text_file
from ssvae.adapters.text.tfidf import TfidfEmbedder
from ssvae.domain.errors import DataError

SYSTEMS = ("sshd", "kernel", "disk", "proxy")


def messages(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Log-like messages: a few templates, numbers varied, most with a class."""
    rows = []
    for i in range(start, start + count):
        system = SYSTEMS[i % 4]
        text = f"{system} event {i % 7} on host {i % 13}: code {1000 + 31 * i} took {i % 97} ms"
        rows.append({"id": 3 * i, "text": text, "label": system if i % 5 else None})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    lines = ["id,text,label"] + [f"{r['id']},{r['text']},{r['label'] or ''}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]], row_group: int = 1000) -> Path:
    table = pa.table({name: [row[name] for row in rows] for name in ("id", "text", "label")})
    pq.write_table(table, path, row_group_size=row_group)
    return path


def vectors_of(path: Path) -> tuple[list[int], np.ndarray, list[str | None]]:
    table = pq.read_table(path)
    x = np.array(table.column("vector").to_pylist(), np.float32)
    return table.column("id").to_pylist(), x, table.column("label").to_pylist()


@pytest.mark.parametrize("writer", [write_csv, write_jsonl, write_parquet])
def test_tables_read_in_parts_hold_the_rows_of_the_whole_file(tmp_path: Path, writer: Any) -> None:
    path = writer(tmp_path / f"m.{writer.__name__.split('_')[1]}", messages(50))
    whole = read_text_table(path)
    parts = list(iter_text_tables(path, TextColumns(), 7))
    assert [len(part.ids) for part in parts][:7] == [7] * 7 and sum(
        len(part.ids) for part in parts
    ) == 50
    np.testing.assert_array_equal(np.concatenate([part.ids for part in parts]), whole.ids)
    assert [t for part in parts for t in part.texts] == whole.texts
    assert [label for part in parts for label in part.labels or []] == whole.labels
    positions = np.concatenate([part.positions() for part in parts])
    expected = whole.lines if whole.lines is not None else np.arange(50)
    np.testing.assert_array_equal(positions, expected)


@pytest.mark.parametrize(
    ("writer", "where"),
    [(write_csv, "line 43"), (write_jsonl, "line 42"), (write_parquet, "row 41")],
)
def test_a_bad_row_far_into_the_file_is_named_where_the_file_has_it(
    tmp_path: Path, writer: Any, where: str
) -> None:
    rows = messages(50)
    rows[41]["id"] = -4
    path = writer(tmp_path / f"m.{writer.__name__.split('_')[1]}", rows)
    with pytest.raises(DataError) as caught:
        list(iter_text_tables(path, TextColumns(), 7))
    assert re.search(f": {where}: id '?-4'? is not an integer", str(caught.value))


def test_an_id_repeated_across_parts_is_refused_as_the_whole_file_refuses_it(
    tmp_path: Path,
) -> None:
    rows = messages(40)
    rows[33]["id"] = rows[2]["id"]
    rows[36]["id"] = rows[30]["id"]  # a repeat within one part, found later in the file
    path = write_csv(tmp_path / "m.csv", rows)
    with pytest.raises(DataError) as whole:
        read_text_table(path)
    tally = IdTally()
    for table in iter_text_tables(path, TextColumns(), 10):
        tally.add(table)
    with pytest.raises(DataError) as parts:
        tally.check()
    assert str(parts.value) == str(whole.value)
    assert "line 35: id 6 repeats line 4" in str(parts.value)


def test_the_reservoir_is_seeded_uniform_and_independent_of_the_chunks() -> None:
    texts = [str(i) for i in range(3000)]

    def sample(chunk: int, seed: int = 0) -> list[str]:
        reservoir = _Reservoir(50, seed)
        for start in range(0, len(texts), chunk):
            reservoir.add(texts[start : start + chunk])
        return reservoir.texts()

    assert sample(7) == sample(3000) == sample(1) and sample(7) != sample(7, seed=1)
    assert [int(t) for t in sample(7)] == sorted(int(t) for t in sample(7))  # file order
    counts = np.bincount([int(t) // 1000 for s in range(60) for t in sample(500, s)], minlength=3)
    assert counts.min() > 0.8 * counts.mean()  # every third of the file is sampled alike
    small = _Reservoir(50, 0)
    small.add(texts[:30])
    assert small.texts() == texts[:30]


def embed(tmp_path: Path, source: Path, out: str, **options: Any) -> embed_file.EmbedSummary:
    defaults: dict[str, Any] = {"embedder_dim": 8, "chunk_rows": 64}
    return embed_text_file(source, tmp_path / out, **{**defaults, **options})


def test_chunks_give_the_vectors_of_one_whole_pass_one_row_group_each(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "m.jsonl", messages(300))
    one = embed(tmp_path, source, "one.parquet", chunk_rows=10_000)
    parts = embed(tmp_path, source, "parts.parquet")
    assert (one.chunks, parts.chunks, parts.rows, parts.labelled) == (1, 5, 300, 240)
    ids, x, labels = vectors_of(tmp_path / "parts.parquet")
    assert (ids, labels) == vectors_of(tmp_path / "one.parquet")[::2]
    np.testing.assert_allclose(x, vectors_of(tmp_path / "one.parquet")[1], atol=1e-6)
    assert pq.ParquetFile(tmp_path / "parts.parquet").metadata.num_row_groups == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl", "one.parquet", "parts.parquet"]


def test_tfidf_is_fitted_on_a_seeded_sample_of_a_larger_file(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "m.csv", messages(400))
    stages: list[str] = []
    summary = embed(tmp_path, source, "v.parquet", fit_sample=100, stage=stages.append)
    assert stages[0] == "fitting tfidf (8 values) on a seeded sample of 100 of 400 messages"
    assert summary.fitted_on == 100
    again = embed(tmp_path, source, "w.parquet", fit_sample=100)
    np.testing.assert_array_equal(
        vectors_of(tmp_path / "v.parquet")[1], vectors_of(tmp_path / "w.parquet")[1]
    )
    assert again.fitted_on == 100


class Killed(BaseException):
    """Stands for SIGKILL: no except clause of the code under test may catch it."""


def kill_after(monkeypatch: pytest.MonkeyPatch, parts: int) -> None:
    """The run dies while writing the chunk after `parts` committed ones, its file half done."""
    real = embed_file._write_part
    written: list[Path] = []

    def write_part(path: Path, *args: Any) -> None:
        if len(written) == parts:
            path.with_name(f".{path.name}.tmp").write_bytes(b"PAR1 half")
            raise Killed
        real(path, *args)
        written.append(path)

    monkeypatch.setattr(embed_file, "_write_part", write_part)


def killed_partway(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: Path,
    parts: int,
    **options: Any,
) -> None:
    """Embed `source` to v.parquet in a run that dies after `parts` committed chunks."""
    with monkeypatch.context() as patch:
        kill_after(patch, parts=parts)
        with pytest.raises(Killed):
            embed(tmp_path, source, "v.parquet", **options)


def count_embedded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of texts tfidf embeds from now on, one entry per call."""
    calls: list[int] = []
    real = TfidfEmbedder.embed

    def counting(self: TfidfEmbedder, texts: Any) -> Any:
        calls.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(TfidfEmbedder, "embed", counting)
    return calls


def test_a_killed_run_resumes_without_redoing_committed_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "m.csv", messages(300))
    embed(tmp_path, source, "reference.parquet")
    killed_partway(tmp_path, monkeypatch, source, 2)
    work = tmp_path / ".v.parquet.parts"
    assert not (tmp_path / "v.parquet").exists()  # only a complete output ever appears
    assert sorted(p.name for p in work.glob("part-*")) == [
        "part-000000.arrow",
        "part-000001.arrow",
    ]
    calls = count_embedded(monkeypatch)
    stages: list[str] = []
    resumed = embed(tmp_path, source, "v.parquet", stage=stages.append)
    assert sum(calls) == 300 - 2 * 64  # the two committed chunks were not embedded again
    assert resumed.resumed_chunks == 2 and "resuming: 2 of 5 chunks were embedded before" in stages
    assert (
        vectors_of(tmp_path / "v.parquet")[::2] == vectors_of(tmp_path / "reference.parquet")[::2]
    )
    np.testing.assert_array_equal(
        vectors_of(tmp_path / "v.parquet")[1], vectors_of(tmp_path / "reference.parquet")[1]
    )
    assert not work.exists()


def test_unfinished_work_of_another_input_or_settings_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "m.csv", messages(300))
    killed_partway(tmp_path, monkeypatch, source, 1)
    committed = (tmp_path / ".v.parquet.parts" / "part-000000.arrow").stat().st_mtime_ns
    for change, what in [({"chunk_rows": 50}, "settings"), ({"embedder_dim": 6}, "settings")]:
        with pytest.raises(DataError, match=f"another {what}; rerun with --restart") as caught:
            embed(tmp_path, source, "v.parquet", **change)
        assert "\n" not in str(caught.value)
    write_csv(source, messages(300, start=1))
    with pytest.raises(DataError, match="unfinished embedding of another input file"):
        embed(tmp_path, source, "v.parquet")
    part = tmp_path / ".v.parquet.parts" / "part-000000.arrow"
    assert part.stat().st_mtime_ns == committed  # refused: the work is left as it was
    assert not (tmp_path / "v.parquet").exists()
    summary = embed(tmp_path, source, "v.parquet", restart=True)
    assert summary.rows == 300 and summary.resumed_chunks == 0
    assert vectors_of(tmp_path / "v.parquet")[0][:2] == [3, 6]


def test_a_bad_row_in_a_late_chunk_is_one_line_before_anything_is_written(
    tmp_path: Path,
) -> None:
    rows = messages(300)
    rows[290]["text"] = "   "
    source = write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(DataError) as caught:
        embed(tmp_path, source, "v.parquet")
    assert (
        str(caught.value)
        == f"{source}: line 291: the message is empty; remove the row or give it a text"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Four times the messages, the same peak: chunks, not the file, are held."""
    peaks = []
    for count in (2_000, 8_000):
        source = write_csv(tmp_path / f"m{count}.csv", messages(count))
        tracemalloc.start()
        embed(tmp_path, source, f"v{count}.parquet", chunk_rows=500, fit_sample=500)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # What grows is the id check's 16 bytes a row; holding the file would add ~2 MB per 6,000.
    assert peaks[1] < peaks[0] + 6_000 * 64, peaks


SLOW_RUN = """
import sys, time
from pathlib import Path
from ssvae.adapters.text import tfidf
from ssvae.entrypoints.cli.main import main

real = tfidf.TfidfEmbedder.embed
def slow(self, texts):
    time.sleep(0.4)  # room for the test to kill the run between two chunks
    return real(self, texts)
tfidf.TfidfEmbedder.embed = slow
main(sys.argv[1:])
"""


def test_a_process_killed_with_sigkill_resumes_to_the_same_output(tmp_path: Path) -> None:
    """A real `ssvae embed` process, stderr on a terminal (so its bar shows a rate), is killed
    with SIGKILL once its first chunk is committed; the command run again resumes there."""
    import fcntl
    import pty
    import struct
    import termios

    source = write_csv(tmp_path / "m.csv", messages(600))
    args = ["embed", "--input", str(source), "--embedder-dim", "8", "--chunk-rows", "100"]
    args += ["--cache-dir", str(tmp_path / "cache")]
    reference = embed(tmp_path, source, "reference.parquet", chunk_rows=100)
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(SLOW_RUN))
    work = tmp_path / ".v.parquet.parts"
    terminal, stderr = pty.openpty()
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    process = subprocess.Popen(
        [sys.executable, str(script), *args, "--out", str(tmp_path / "v.parquet")],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    os.close(stderr)
    try:
        deadline = time.monotonic() + 120
        while not (work / "part-000000.arrow").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        shown = b""
        while True:
            try:
                block = os.read(terminal, 65536)
            except OSError:
                break
            if not block:
                break
            shown += block
    finally:
        os.close(terminal)
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert b"msg/s" in shown or b"s/msg" in shown  # the bar showed a rate
    committed = sorted(p.name for p in work.glob("part-*"))
    assert 1 <= len(committed) < 6 and not (tmp_path / "v.parquet").exists()
    from click.testing import CliRunner

    from ssvae.entrypoints.cli.main import main

    resumed = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "v.parquet")])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming: {len(committed)} of 6 chunks were embedded before" in resumed.stderr
    assert "msg/s" not in resumed.stderr  # not a terminal: no bar
    ids, x, labels = vectors_of(tmp_path / "v.parquet")
    expected = vectors_of(tmp_path / "reference.parquet")
    assert (ids, labels) == (expected[0], expected[2]) and reference.rows == 600
    np.testing.assert_array_equal(x, expected[1])


def test_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ssvae.entrypoints.cli.main import main

    source = write_csv(tmp_path / "m.csv", messages(120))
    args = ["embed", "--input", str(source), "--out", str(tmp_path / "v.parquet")]
    args += ["--embedder-dim", "8", "--chunk-rows", "50", "--cache-dir", str(tmp_path / "c")]
    quiet = CliRunner().invoke(main, [*args, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and quiet.stdout.startswith("wrote 120 vectors of 8 values")
    told = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "w.parquet")])
    assert "fitting tfidf (8 values) on 120 messages..." in told.stderr


def test_a_pool_of_processes_writes_the_bytes_one_process_writes_and_resumes_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker processes embed chunks side by side; the output keeps the file's order, and a
    run killed part way resumes under a pool to the same bytes."""
    source = write_csv(tmp_path / "m.csv", messages(300))
    alone = embed(tmp_path, source, "alone.parquet", workers=1)
    pooled = embed(tmp_path, source, "pooled.parquet", workers=2, cache_dir=tmp_path / "c")
    assert (pooled.chunks, pooled.rows, pooled.labelled) == (alone.chunks, 300, alone.labelled)
    expected = (tmp_path / "alone.parquet").read_bytes()
    assert (tmp_path / "pooled.parquet").read_bytes() == expected
    # the values are named as Parquet names them, whatever the chunks were committed as
    assert pq.read_schema(tmp_path / "alone.parquet").field("vector").type.value_field.name == (
        "element"
    )
    killed_partway(tmp_path, monkeypatch, source, 2, workers=1)
    resumed = embed(tmp_path, source, "v.parquet", workers=2)
    assert resumed.resumed_chunks == 2 and (tmp_path / "v.parquet").read_bytes() == expected
    assert not (tmp_path / ".v.parquet.parts").exists()
    # a small file is embedded in this process: a worker costs about a second to start
    assert embed_pool.worker_pool("tfidf", tmp_path, None, embed_pool.POOL_ROWS - 1) is None


def test_a_worker_process_that_dies_is_one_line_and_keeps_the_committed_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    class Dying(ProcessPoolExecutor):
        """Its workers start, then die with their first chunk."""

        def submit(self, *_args: Any, **_kwargs: Any) -> Any:
            return super().submit(os._exit, 1)

    def dying_pool(*_args: Any) -> ProcessPoolExecutor:
        return Dying(2, multiprocessing.get_context("spawn"))

    source = write_csv(tmp_path / "m.csv", messages(300))
    monkeypatch.setattr(embed_file, "_worker_pool", dying_pool)
    with pytest.raises(DataError, match="died") as caught:
        embed(tmp_path, source, "v.parquet")
    assert "\n" not in str(caught.value) and not (tmp_path / "v.parquet").exists()
    assert not (tmp_path / ".v.parquet.parts" / embed_file.STAGING).exists()
    monkeypatch.undo()
    assert embed(tmp_path, source, "v.parquet").rows == 300  # the rerun resumes


def test_the_workers_of_a_main_process_killed_with_sigkill_end_too(tmp_path: Path) -> None:
    """A pool cannot be shut down by a process killed with SIGKILL: its workers notice."""
    script = tmp_path / "pool.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from pathlib import Path
            from ssvae.adapters.text import embed_file
            from ssvae.adapters.text.tfidf import TfidfEmbedder

            if __name__ == "__main__":
                work = Path(sys.argv[1])
                texts = [f"event {i} on host {i % 7}" for i in range(40)]
                TfidfEmbedder(dim=4).fit(texts).save(work / embed_file.TFIDF_FILE)
                pool = embed_file._worker_pool("tfidf", work, 2, 0)
                pids = [pool.submit(os.getpid).result() for _ in range(4)]
                print(" ".join(map(str, set(pids))), flush=True)
                time.sleep(60)
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    workers = [int(pid) for pid in process.stdout.readline().split()]
    assert workers and all(_alive(pid) for pid in workers)
    process.kill()
    process.wait(30)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_input_is_read_once_and_a_resumed_run_does_not_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "m.csv", messages(300))
    reads: list[Path] = []
    real = embed_file.iter_text_tables

    def counted(path: Path, *args: Any) -> Any:
        reads.append(path)
        return real(path, *args)

    monkeypatch.setattr(embed_file, "iter_text_tables", counted)
    embed(tmp_path, source, "reference.parquet")
    assert reads == [source]
    killed_partway(tmp_path, monkeypatch, source, 2)
    reads.clear()
    assert embed(tmp_path, source, "v.parquet").resumed_chunks == 2 and reads == []
    expected = (tmp_path / "reference.parquet").read_bytes()
    assert (tmp_path / "v.parquet").read_bytes() == expected


def test_kept_messages_that_are_gone_are_one_line_naming_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "m.csv", messages(300))
    killed_partway(tmp_path, monkeypatch, source, 1)
    (tmp_path / ".v.parquet.parts" / "messages-000003.arrow").write_bytes(b"ARROW1 cut")
    with pytest.raises(DataError, match=r"missing or damaged .*rerun with --restart") as caught:
        embed(tmp_path, source, "v.parquet")
    assert "\n" not in str(caught.value) and not (tmp_path / "v.parquet").exists()
    assert embed(tmp_path, source, "v.parquet", restart=True).rows == 300
