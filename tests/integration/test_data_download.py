"""Downloads against a real HTTP server on 127.0.0.1 serving small generated IDX files."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.data.download import download_verified
from ssvae.adapters.data.idx import encode_idx
from ssvae.adapters.data.mnist import IdxDataSource, embedded_data_dir
from ssvae.domain.errors import DataError

N_TRAIN, N_TEST = 20, 8


class Server:
    """A threaded HTTP server whose routes (path -> status, body) tests change freely."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self.lies_about_length: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, body = server.routes.get(self.path, (404, b"not found"))
                self.send_response(status)
                extra = 100 if self.path in server.lies_about_length else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Keep test output quiet."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()
    running.thread.join(timeout=5)


def _dataset(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def _publish(server: Server, mirror: str, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Serve the arrays as gzipped IDX files under `mirror`; their md5s, keyed by file name."""
    checksums = {}
    for stem, array in arrays.items():
        body = gzip.compress(encode_idx(array), mtime=0)
        server.routes[f"{mirror}{stem}.gz"] = (200, body)
        checksums[f"{stem}.gz"] = hashlib.md5(body).hexdigest()
    return checksums


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_verifies_and_loads(server: Server, tmp_path: Path) -> None:
    arrays = _dataset()
    checksums = _publish(server, "/m1/", arrays)
    cache = tmp_path / "cache"
    (tmp_path / "empty").mkdir()
    source = IdxDataSource(
        name="mnist",
        directories=[tmp_path / "empty"],
        cache_dir=cache,
        download=True,
        mirrors=[server.url("/m1/")],
        checksums=checksums,
    )
    info = source.describe()
    assert info.split_sizes == (("train", N_TRAIN), ("test", N_TEST))
    assert info.sample_shape == (28, 28, 1)
    train = source.load("train")
    np.testing.assert_array_equal(train.y, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_allclose(
        train.x[..., 0], arrays["train-images-idx3-ubyte"] / 255.0, rtol=0, atol=1e-7
    )
    assert [p.name for p in _files(cache)] == sorted(f"{stem}.gz" for stem in arrays)
    assert all(p.parent == cache / "mnist" for p in _files(cache))
    assert len(server.requests) == 4

    # A second source finds the verified files in the cache and downloads nothing.
    again = IdxDataSource(name="mnist", cache_dir=cache, download=True, checksums=checksums)
    np.testing.assert_array_equal(again.load("test").y, arrays["t10k-labels-idx1-ubyte"])
    assert len(server.requests) == 4


def test_corrupt_download_is_rejected_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    checksums = _publish(server, "/m1/", _dataset())
    status, body = server.routes["/m1/train-images-idx3-ubyte.gz"]
    middle = len(body) // 2
    corrupt = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
    server.routes["/m1/train-images-idx3-ubyte.gz"] = (status, corrupt)
    cache = tmp_path / "cache"
    source = IdxDataSource(
        cache_dir=cache, download=True, mirrors=[server.url("/m1/")], checksums=checksums
    )
    with pytest.raises(DataError, match="md5 checksum mismatch") as caught:
        source.describe()
    assert "train-images-idx3-ubyte.gz" in str(caught.value)
    assert not cache.exists(), _files(cache)


def test_first_mirror_missing_second_serves(server: Server, tmp_path: Path) -> None:
    arrays = _dataset(seed=1)
    checksums = _publish(server, "/good/", arrays)
    source = IdxDataSource(
        cache_dir=tmp_path / "cache",
        download=True,
        mirrors=[server.url("/gone/"), server.url("/good")],  # with and without a final slash
        checksums=checksums,
    )
    np.testing.assert_array_equal(source.load("test").y, arrays["t10k-labels-idx1-ubyte"])
    assert server.requests[:2] == [
        "/gone/train-images-idx3-ubyte.gz",
        "/good/train-images-idx3-ubyte.gz",
    ]


def test_every_mirror_failing_names_each_one(server: Server, tmp_path: Path) -> None:
    server.routes["/a/file.gz"] = (500, b"boom")
    destination = tmp_path / "cache" / "sub" / "file.gz"
    with pytest.raises(DataError) as caught:
        download_verified(
            [server.url("/a/file.gz"), server.url("/b/file.gz")], destination, md5="0" * 32
        )
    message = str(caught.value)
    assert "HTTP 500" in message and "HTTP 404" in message
    assert server.url("/a/file.gz") in message and server.url("/b/file.gz") in message
    assert not (tmp_path / "cache").exists()


def test_short_body_is_rejected(server: Server, tmp_path: Path) -> None:
    body = b"x" * 1000
    server.routes["/short.bin"] = (200, body)
    server.lies_about_length.add("/short.bin")
    destination = tmp_path / "short.bin"
    with pytest.raises(
        DataError, match=r"could not download short\.bin .*incomplete: 1000 of 1100"
    ):
        download_verified(
            server.url("/short.bin"), destination, md5=hashlib.md5(body).hexdigest(), timeout=5
        )
    assert list(tmp_path.iterdir()) == []


def test_sha256_download_replaces_a_stale_file(server: Server, tmp_path: Path) -> None:
    body = b"payload" * 100
    server.routes["/p.bin"] = (200, body)
    destination = tmp_path / "p.bin"
    destination.write_bytes(b"stale")
    download_verified(server.url("/p.bin"), destination, sha256=hashlib.sha256(body).hexdigest())
    assert destination.read_bytes() == body
    assert list(tmp_path.iterdir()) == [destination]


def test_download_needs_a_checksum(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no checksum is known"):
        download_verified("http://127.0.0.1:9/x.gz", tmp_path / "x.gz")


def test_missing_files_without_download_name_every_folder(tmp_path: Path) -> None:
    first, second = tmp_path / "mine", tmp_path / "other"
    first.mkdir()
    second.mkdir()
    source = IdxDataSource(directories=[first, second], cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as caught:
        source.describe()
    message = str(caught.value)
    for folder in (first, second, tmp_path / "cache" / "mnist"):
        assert str(folder) in message
    assert "--download" in message and "--data-dir" in message
    assert "\n" not in message
    assert not (tmp_path / "cache").exists()


def test_fashion_mnist_skips_the_embedded_mnist_files_and_downloads(
    server: Server, tmp_path: Path
) -> None:
    # Both datasets use the same file names: the MNIST copy must not pass for Fashion-MNIST.
    arrays = _dataset(seed=2)
    checksums = _publish(server, "/fashion/", arrays)
    cache = tmp_path / "cache"
    source = IdxDataSource(
        name="fashion_mnist",
        directories=[embedded_data_dir()],
        cache_dir=cache,
        download=True,
        mirrors=[server.url("/fashion/")],
        checksums=checksums,
    )
    info = source.describe()
    assert info.vocabulary.names[0] == "T-shirt/top" and len(info.vocabulary) == 10
    assert info.split_sizes == (("train", N_TRAIN), ("test", N_TEST))
    np.testing.assert_array_equal(source.load("train").y, arrays["train-labels-idx1-ubyte"])
    assert len(_files(cache / "fashion_mnist")) == 4


def test_fashion_mnist_without_download_reports_the_unusable_files(tmp_path: Path) -> None:
    source = IdxDataSource(
        name="fashion_mnist", directories=[embedded_data_dir()], cache_dir=tmp_path / "c"
    )
    with pytest.raises(DataError, match=r"unusable: .*train-images-idx3-ubyte\.gz.*md5 differs"):
        source.describe()


def test_a_local_file_that_fails_its_md5_on_load_gives_way_to_the_download(
    server: Server, tmp_path: Path
) -> None:
    # Same names and shapes, other contents: accepted for now by its header, refused on load.
    arrays, impostor = _dataset(seed=4), _dataset(seed=5)
    checksums = _publish(server, "/m/", arrays)
    checksums |= {stem: hashlib.md5(encode_idx(a)).hexdigest() for stem, a in arrays.items()}
    local = tmp_path / "local"
    local.mkdir()
    for stem, array in impostor.items():
        (local / f"{stem}.gz").write_bytes(gzip.compress(encode_idx(array), mtime=1))
    source = IdxDataSource(
        directories=[local],
        cache_dir=tmp_path / "cache",
        download=True,
        mirrors=[server.url("/m/")],
        checksums=checksums,
    )
    assert source.describe().size("train") == N_TRAIN and server.requests == []
    np.testing.assert_array_equal(source.load("train").y, arrays["train-labels-idx1-ubyte"])
    assert sorted(server.requests) == [
        "/m/train-images-idx3-ubyte.gz",
        "/m/train-labels-idx1-ubyte.gz",
    ]
    assert any(str(tmp_path / "cache") in line for line in source.describe().sources)
