"""Tests of tracejit.datasets: IDX reading and writing, the file search, checked
downloads from a local HTTP server, and mini-batching.

Nothing here touches the network: downloads come from a server on 127.0.0.1 or
fail on a closed loopback port. Tests on the real MNIST files run only when
they are present in $TRACEJIT_DATA or ../shared/data next to the repository.
"""

import gzip
import hashlib
import http.server
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tracejit import datasets

# Read before the isolation fixture clears TRACEJIT_DATA for every test.
REAL_DATA = Path(
    os.environ.get("TRACEJIT_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = datasets.FILES
# For tests where no file is ever read, so the sums are never compared.
CHECKSUMS_UNUSED = dict.fromkeys(datasets.FILES, "0" * 32)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Keep the user's data, cache and proxy settings out of every test."""
    monkeypatch.delenv("TRACEJIT_DATA", raising=False)
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    # The loopback server must be reached directly even if a proxy is configured elsewhere.
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def fake(tmp_path):
    """A tiny data set in MNIST layout: folder, arrays by file name, and MD5 sums."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "fake"
    folder.mkdir()
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, 12, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, 5, dtype=np.uint8),
    }
    arrays[TRAIN_IMAGES][0, 0, :2] = (0, 255)  # make sure both ends of the pixel range occur
    for name, array in arrays.items():
        datasets.write_idx(folder / name, array)
    return folder, arrays, md5_sums(folder)


def md5_sums(folder):
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in datasets.FILES}


def check_matches(result, arrays):
    x_train, y_train, x_test, y_test = result
    for x, y, images, labels in (
        (x_train, y_train, arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]),
        (x_test, y_test, arrays[TEST_IMAGES], arrays[TEST_LABELS]),
    ):
        assert x.dtype == np.float32 and x.shape == (len(images), 784)
        assert y.dtype == np.int64 and y.shape == (len(images),)
        np.testing.assert_array_equal(x, images.reshape(len(images), 784) / np.float32(255))
        np.testing.assert_array_equal(y, labels)
    assert x_train.min() == 0.0 and x_train.max() == 1.0


def closed_port_url():
    """A loopback URL on which nothing listens, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


class FileServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1; names in ``cut_short`` are
    announced at full length but the connection closes halfway through."""

    def __init__(self):
        self.files, self.cut_short, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in server.cut_short else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(fake):
    """A local server holding the fake data set's files."""
    folder, _, _ = fake
    srv = FileServer()
    srv.files = {name: (folder / name).read_bytes() for name in datasets.FILES}
    yield srv
    srv.close()


def cache_listing():
    folder = datasets.cache_dir("mnist")
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- IDX files ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-128, 0, 127], dtype=np.int8),
        np.array([[-30000, 1], [2, 30000]], dtype=np.int16),
        np.array([-(2**31), 2**31 - 1], dtype=np.int32),
        np.array([[1.5, -np.inf, np.nan]], dtype=np.float32),
        np.array([np.pi, -1e300], dtype=">f8"),
    ],
    ids=lambda a: str(a.dtype),
)
def test_idx_round_trip(tmp_path, array, suffix):
    path = tmp_path / ("data.idx" + suffix)
    datasets.write_idx(path, array)
    loaded = datasets.load_idx(path)
    assert loaded.shape == array.shape
    assert loaded.dtype == array.dtype.newbyteorder("=")
    assert loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


def test_write_idx_follows_the_format_byte_for_byte(tmp_path):
    array = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    datasets.write_idx(tmp_path / "a.idx", array)
    assert (tmp_path / "a.idx").read_bytes() == (
        b"\x00\x00\x0b\x02"  # magic: int16, 2 dimensions
        + b"\x00\x00\x00\x02\x00\x00\x00\x03"  # shape, big-endian uint32
        + b"\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x06"  # big-endian values
    )
    # Compressed output carries no timestamp (gzip header bytes 4..7), so its MD5 sum is reproducible.
    datasets.write_idx(tmp_path / "a.gz", array)
    compressed = (tmp_path / "a.gz").read_bytes()
    assert compressed[4:8] == bytes(4)
    assert gzip.decompress(compressed) == (tmp_path / "a.idx").read_bytes()


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.zeros(3, np.int64), "got int64"),
        (np.zeros(3, bool), "got bool"),
        (np.float32(1.0), "got shape ()"),
    ],
)
def test_write_idx_rejects_what_idx_cannot_hold(tmp_path, array, expected):
    with pytest.raises(ValueError, match="write_idx") as info:
        datasets.write_idx(tmp_path / "x.idx", array)
    assert expected in str(info.value)


def test_load_idx_bad_magic(tmp_path):
    path = tmp_path / "labels.gz"
    datasets.write_idx(path, np.zeros(4, np.uint8))
    with pytest.raises(datasets.DatasetFormatError) as info:
        datasets.load_idx(path, magic=0x00000803)
    assert str(path) in str(info.value)
    assert "bad magic number 0x00000801, expected 0x00000803" in str(info.value)

    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(datasets.DatasetFormatError, match="0x504b0304, not an IDX file") as info:
        datasets.load_idx(junk)
    assert str(junk) in str(info.value)


def test_load_idx_truncated_or_padded(tmp_path):
    path = tmp_path / "images.gz"
    datasets.write_idx(path, np.ones((3, 28, 28), np.uint8))
    whole = path.read_bytes()

    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(datasets.DatasetFormatError, match="damaged or truncated gzip") as info:
        datasets.load_idx(path)
    assert str(path) in str(info.value)

    idx = gzip.decompress(whole)
    for data, problem in (
        (idx[:-10], "truncated"),
        (idx + b"\0", "trailing data"),
        (idx[:10], "truncated IDX header"),
    ):
        path.write_bytes(gzip.compress(data))
        with pytest.raises(datasets.DatasetFormatError, match=problem) as info:
            datasets.load_idx(path)
        assert str(path) in str(info.value)
    path.write_bytes(gzip.compress(idx[:-10]))
    expected = r"2358 bytes of IDX data, expected 2368 for shape \(3, 28, 28\)"  # 16-byte header
    with pytest.raises(datasets.DatasetFormatError, match=expected):
        datasets.load_idx(path)


# --- loading from folders ----------------------------------------------------


def test_load_from_path(fake):
    folder, arrays, sums = fake
    check_matches(datasets.load("mnist", folder, checksums=sums, download=False), arrays)


def test_default_checksums_are_the_published_ones(fake):
    folder, _, _ = fake
    with pytest.raises(datasets.ChecksumError) as info:
        datasets.mnist(folder, download=False)
    message = str(info.value)
    assert str(folder / TRAIN_IMAGES) in message
    assert "expected f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    with pytest.raises(datasets.ChecksumError, match="expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        datasets.fashion_mnist(folder, download=False)


def test_wrong_checksum_names_the_file(fake):
    folder, _, sums = fake
    wrong = {**sums, TEST_LABELS: "0" * 32}
    with pytest.raises(datasets.ChecksumError) as info:
        datasets.load("mnist", folder, checksums=wrong, download=False)
    message = str(info.value)
    assert str(folder / TEST_LABELS) in message
    assert f"MD5 sum {sums[TEST_LABELS]}, expected {'0' * 32}" in message
    assert "delete it to have it downloaded again" in message


def test_corrupt_file_inside_a_data_set_is_named(fake):
    folder, _, _ = fake
    (folder / TRAIN_LABELS).write_bytes((folder / TRAIN_LABELS).read_bytes()[:-5])
    with pytest.raises(datasets.DatasetFormatError) as info:
        datasets.load("mnist", folder, checksums=md5_sums(folder), download=False)
    assert str(folder / TRAIN_LABELS) in str(info.value)


@pytest.mark.parametrize(
    "name, array, expected",
    [
        (TRAIN_IMAGES, np.zeros(12, np.uint8), "bad magic number 0x00000801, expected 0x00000803"),
        (TEST_LABELS, np.zeros((5, 28, 28), np.uint8), "bad magic number 0x00000803, expected 0x00000801"),
        (TRAIN_IMAGES, np.zeros((12, 27, 28), np.uint8), "images of shape (27, 28), expected (28, 28)"),
        (TEST_LABELS, np.zeros(4, np.uint8), "4 labels, but"),
    ],
)
def test_load_checks_kinds_and_counts(fake, name, array, expected):
    folder, _, _ = fake
    datasets.write_idx(folder / name, array)
    with pytest.raises(datasets.DatasetFormatError) as info:
        datasets.load("mnist", folder, checksums=md5_sums(folder), download=False)
    assert str(folder / name) in str(info.value)
    assert expected in str(info.value)


def test_missing_files_message_lists_where_to_put_them(tmp_path, monkeypatch):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.mnist(nowhere, download=False)
    error = info.value
    assert isinstance(error, datasets.DatasetError) and isinstance(error, FileNotFoundError)
    message = str(error)
    assert message.startswith("MNIST data set not found")
    assert f"{nowhere} (path argument, does not exist)" in message
    assert "TRACEJIT_DATA is not set" in message
    assert f"{tmp_path / 'cache' / 'datasets' / 'mnist'} (download cache" in message
    for name in datasets.FILES:
        assert name in message
    assert "set TRACEJIT_DATA (or pass path=) to the folder holding them or to its parent" in message
    assert "download=False" in message

    monkeypatch.setenv("TRACEJIT_DATA", str(tmp_path / "data"))
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.fashion_mnist(download=False)
    message = str(info.value)
    assert message.startswith("Fashion-MNIST data set not found")
    assert f"{tmp_path / 'data' / 'fashion-mnist'} ($TRACEJIT_DATA/fashion-mnist" in message
    assert "path argument" not in message


def test_search_order_is_path_then_env_then_cache(fake, tmp_path, monkeypatch):
    folder, arrays, sums = fake
    env_folder = tmp_path / "data" / "mnist"
    env_folder.mkdir(parents=True)
    other = {name: np.zeros_like(a) for name, a in arrays.items()}
    for name, array in other.items():
        datasets.write_idx(env_folder / name, array)
    other_sums = md5_sums(env_folder)
    monkeypatch.setenv("TRACEJIT_DATA", str(tmp_path / "data"))

    # Files are picked one by one: the train files from path, the rest from $TRACEJIT_DATA.
    (folder / TEST_IMAGES).unlink()
    (folder / TEST_LABELS).unlink()
    mixed = {**sums, TEST_IMAGES: other_sums[TEST_IMAGES], TEST_LABELS: other_sums[TEST_LABELS]}
    check_matches(
        datasets.load("mnist", folder, checksums=mixed, download=False),
        {**arrays, TEST_IMAGES: other[TEST_IMAGES], TEST_LABELS: other[TEST_LABELS]},
    )

    # With all-zero files in $TRACEJIT_DATA and different ones in the cache, the former win.
    cache = datasets.cache_dir("mnist")
    cache.mkdir(parents=True)
    for name, array in arrays.items():
        datasets.write_idx(cache / name, array)
    assert not datasets.load("mnist", checksums=other_sums, download=False)[0].any()
    monkeypatch.delenv("TRACEJIT_DATA")
    check_matches(datasets.load("mnist", checksums=sums, download=False), arrays)


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    assert datasets.cache_dir("mnist") == tmp_path / "cache" / "datasets" / "mnist"
    monkeypatch.delenv("TRACEJIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir("fashion-mnist") == tmp_path / "xdg" / "tracejit" / "datasets" / "fashion-mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir("mnist") == tmp_path / "home" / ".cache" / "tracejit" / "datasets" / "mnist"


def test_load_argument_errors(fake):
    folder, _, sums = fake
    expected = r"unknown data set 'kmnist': expected one of \['fashion-mnist', 'mnist'\]"
    with pytest.raises(ValueError, match=expected):
        datasets.load("kmnist", folder)
    with pytest.raises(ValueError, match=r"missing \['t10k-labels-idx1-ubyte.gz'\]"):
        datasets.load("mnist", folder, checksums={k: v for k, v in sums.items() if k != TEST_LABELS})
    with pytest.raises(ValueError, match="plain folder name"):
        datasets.load("../elsewhere", folder, checksums=sums)
    # Other data sets in the same layout load once their checksums are given.
    assert datasets.load("my-digits", folder, checksums=sums, download=False)[0].shape == (12, 784)


# --- downloads ---------------------------------------------------------------


def test_offline_error_says_where_to_put_the_files(tmp_path, capsys):
    url = closed_port_url()
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load("mnist", mirrors=[url], checksums=CHECKSUMS_UNUSED)
    message = str(info.value)
    assert "Downloading failed (offline?):" in message
    assert f"{url}{TRAIN_IMAGES}: " in message
    assert "refused" in message.lower()
    assert str(datasets.cache_dir("mnist")) in message
    assert "TRACEJIT_DATA" in message and TEST_LABELS in message
    assert cache_listing() == []
    assert "failed:" in capsys.readouterr().err


def test_download_into_cache(fake, server, capsys):
    _, arrays, sums = fake
    # The first mirror is down; the second one serves the files.
    result = datasets.load("mnist", mirrors=[closed_port_url(), server.url], checksums=sums)
    check_matches(result, arrays)
    assert cache_listing() == sorted(datasets.FILES)  # no temporary files left over
    assert md5_sums(datasets.cache_dir("mnist")) == sums
    err = capsys.readouterr().err
    assert f"Downloading {server.url}{TRAIN_IMAGES}" in err
    assert f"{TRAIN_IMAGES}: 100%" in err and "failed:" in err  # tqdm's bar, and the failed mirror

    # A second load reads the cache without asking any mirror.
    requests = len(server.requests)
    check_matches(datasets.load("mnist", mirrors=[closed_port_url()], checksums=sums, progress=False), arrays)
    assert len(server.requests) == requests
    assert capsys.readouterr().err == ""


def test_only_missing_files_are_downloaded(fake, server, tmp_path):
    folder, arrays, sums = fake
    local = tmp_path / "local"
    local.mkdir()
    for name in (TRAIN_IMAGES, TRAIN_LABELS):
        (local / name).write_bytes((folder / name).read_bytes())
    check_matches(datasets.load("mnist", local, mirrors=[server.url], checksums=sums, progress=False), arrays)
    assert sorted(server.requests) == sorted([TEST_IMAGES, TEST_LABELS])
    assert cache_listing() == sorted([TEST_IMAGES, TEST_LABELS])


def test_mismatching_download_leaves_nothing_behind(fake, server):
    _, _, sums = fake
    server.files[TRAIN_LABELS] = b"<html>captive portal</html>"
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load("mnist", mirrors=[server.url], checksums=sums, progress=False)
    message = str(info.value)
    assert f"{server.url}{TRAIN_LABELS}: downloaded data has MD5 sum" in message
    assert f"expected {sums[TRAIN_LABELS]}" in message
    assert "missing train-labels-idx1-ubyte.gz, t10k-images" in message
    # The file downloaded before the bad one is verified and kept; the bad one left no trace.
    assert cache_listing() == [TRAIN_IMAGES]


def test_interrupted_download_leaves_nothing_behind(fake, server):
    _, _, sums = fake
    server.cut_short.add(TRAIN_IMAGES)
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load("mnist", mirrors=[server.url], checksums=sums, progress=False)
    size = len(server.files[TRAIN_IMAGES])
    assert f"{TRAIN_IMAGES}: connection closed after {size // 2} of {size} bytes" in str(info.value)
    assert cache_listing() == []


def test_missing_on_server(fake, server):
    _, _, sums = fake
    del server.files[TEST_IMAGES]
    with pytest.raises(datasets.DatasetNotFoundError, match=f"{TEST_IMAGES}: HTTP Error 404"):
        datasets.load("mnist", mirrors=[server.url], checksums=sums, progress=False)
    assert TEST_IMAGES not in cache_listing()


# --- batches -----------------------------------------------------------------


def batch_data(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return x, np.arange(n)


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_cover_every_sample_once(shuffle):
    x, y = batch_data()
    got = list(datasets.batches(x, y, 3, shuffle=shuffle))
    assert [len(yb) for _, yb in got] == [3, 3, 3, 1]
    ids = np.concatenate([yb for _, yb in got])
    np.testing.assert_array_equal(np.sort(ids), y)
    assert (not np.array_equal(ids, y)) == shuffle
    for xb, yb in got:
        np.testing.assert_array_equal(xb, x[yb])  # pairs stay together


def test_batches_drop_last():
    x, y = batch_data()
    assert [len(yb) for _, yb in datasets.batches(x, y, 3, drop_last=True)] == [3, 3, 3]
    assert [len(yb) for _, yb in datasets.batches(x, y, 5, drop_last=True)] == [5, 5]
    assert [len(yb) for _, yb in datasets.batches(x, y, 11)] == [10]
    assert list(datasets.batches(x, y, 11, drop_last=True)) == []


def test_batches_order_depends_only_on_seed():
    x, y = batch_data(50)

    def order(seed):
        return np.concatenate([yb for _, yb in datasets.batches(x, y, 8, seed=seed)])

    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))
    np.testing.assert_array_equal(order(np.random.default_rng(3)), order(3))


@pytest.mark.parametrize(
    "kwargs, error, expected",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1; got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an int >= 1; got 2.0 (float)"),
        ({"batch_size": True}, TypeError, "batch_size must be an int >= 1; got True (bool)"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False; got 'yes' (str)"),
        ({"drop_last": None}, TypeError, "drop_last must be True or False; got None (NoneType)"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0, None or a numpy.random.Generator; got -1"),
        ({"seed": "a"}, TypeError, "seed must be an int >= 0, None or a numpy.random.Generator; got 'a'"),
        ({"y": np.arange(9)}, ValueError, "same number of samples; got len(x) = 10, len(y) = 9"),
        ({"x": np.float32(1)}, ValueError, "sample axis first; got x of shape (), y of shape (10,)"),
    ],
)
def test_batches_argument_errors(kwargs, error, expected):
    x, y = batch_data()
    arguments = {"x": x, "y": y, "batch_size": 4, **kwargs}
    # Raised at the call, not at the first batch.
    with pytest.raises(error) as info:
        datasets.batches(**arguments)
    assert expected in str(info.value)


def test_batches_accepts_numpy_scalars():
    x, y = batch_data()
    got = list(datasets.batches(x, y, np.int64(4), shuffle=np.bool_(False), seed=np.int32(1)))
    assert [len(yb) for _, yb in got] == [4, 4, 2]


# --- the real data sets, when present ----------------------------------------


def real_folder(name):
    folder = REAL_DATA / name
    if not all((folder / f).is_file() for f in datasets.FILES):
        pytest.skip(f"real {name} files not found in {folder}")
    return folder


def test_real_mnist():
    folder = real_folder("mnist")
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = datasets.mnist(folder, download=False)
    assert time.perf_counter() - start < 5
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_fashion_mnist_through_env(monkeypatch):
    real_folder("fashion-mnist")
    monkeypatch.setenv("TRACEJIT_DATA", str(REAL_DATA))
    x_train, y_train, x_test, y_test = datasets.fashion_mnist(download=False)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_path_and_env_accept_the_folder_or_its_parent(fake, tmp_path, monkeypatch):
    """``--data``/``path`` and ``$TRACEJIT_DATA`` each take the folder holding the files or its
    parent; a parent's files of another data set (same names) are never taken."""
    folder, arrays, sums = fake
    parent = tmp_path / "data"
    parent.mkdir()
    folder.rename(parent / "mnist")
    # path = the parent: found in its 'mnist' subfolder
    check_matches(datasets.load("mnist", parent, checksums=sums, download=False), arrays)
    # TRACEJIT_DATA = the folder holding the files itself
    monkeypatch.setenv("TRACEJIT_DATA", str(parent / "mnist"))
    check_matches(datasets.load("mnist", checksums=sums, download=False), arrays)
    # ... and the parent, as before
    monkeypatch.setenv("TRACEJIT_DATA", str(parent))
    check_matches(datasets.load("mnist", checksums=sums, download=False), arrays)
    # TRACEJIT_DATA pointing at the MNIST folder does not give its files to another data set
    monkeypatch.setenv("TRACEJIT_DATA", str(parent / "mnist"))
    other_sums = {name: "0" * 32 for name in datasets.FILES}
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load("mnist", checksums=other_sums, download=False)
    assert f"{parent / 'mnist'} ($TRACEJIT_DATA itself" in str(info.value)
