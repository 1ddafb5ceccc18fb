"""Dataset loaders: the data layer that feeds examples, benchmarks and tests.

In: the name of a data set laid out like MNIST (``"mnist"``, ``"fashion-mnist"``)
and optionally a folder holding its four original gzip-compressed IDX files.
Out: plain NumPy arrays, images as float32 ``(N, 784)`` scaled to [0, 1] and
labels as int64 ``(N,)``, plus :func:`batches` to cut them into mini-batches.

Where the files are looked for, in order, file by file:

1. the ``path`` argument, if given: the folder holding the files, or its parent (``path/<name>``);
2. ``$TRACEJIT_DATA/<name>``, or ``$TRACEJIT_DATA`` itself, if the ``TRACEJIT_DATA`` environment
   variable is set (either form works in both places; see ``_search_folders``);
3. the download cache, :func:`cache_dir` (``$TRACEJIT_CACHE_DIR/datasets/<name>``,
   else ``$XDG_CACHE_HOME/tracejit/datasets/<name>``, else
   ``~/.cache/tracejit/datasets/<name>``).

Files found nowhere are downloaded from public mirrors into the cache. Every
file's MD5 sum is checked each time it is read, and every download is checked
before it gets its final name, so a corrupt or partial file is never used.

This module depends only on the standard library, NumPy and tqdm (through
``tracejit.progress``), not on the rest of tracejit.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import math
import os
import re
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from .progress import progress_bar

__all__ = [
    "CHECKSUMS",
    "ChecksumError",
    "DatasetError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "FILES",
    "MIRRORS",
    "batches",
    "cache_dir",
    "fashion_mnist",
    "load",
    "load_idx",
    "mnist",
    "write_idx",
]

#: The four files of an MNIST-style data set, in the order ``load`` returns them.
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

#: Base URLs tried in order for each known data set (file name appended).
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

#: Publisher's MD5 sum of each original ``.gz`` file, per known data set.
CHECKSUMS = {
    "mnist": dict(zip(FILES, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ))),
    "fashion-mnist": dict(zip(FILES, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ))),
}

_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

# IDX magic numbers: 0x08 = unsigned bytes, then the number of dimensions.
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801
_IMAGE_SHAPE = (28, 28)

# IDX type code (third magic byte) -> big-endian element type, as the format defines them.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(dtype): code for code, dtype in _IDX_DTYPES.items()}

_TIMEOUT_SECONDS = 30
_CHUNK_BYTES = 1 << 16


class DatasetError(OSError):
    """Base class of every error raised while finding, downloading or reading a data set."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The files are in none of the searched folders and could not be downloaded.

    The message lists the folders searched, the file names expected there, the
    ``TRACEJIT_DATA`` variable, and why each download attempt failed.
    """


class DatasetFormatError(DatasetError):
    """A file is not a readable IDX file of the expected kind (the message names it)."""


class ChecksumError(DatasetError):
    """A file's MD5 sum differs from the published one (the message names it)."""


def mnist(path=None, *, download: bool = True, progress: bool = True):
    """Load MNIST handwritten digits: ``x_train, y_train, x_test, y_test``.

    60000 training and 10000 test images as float32 ``(N, 784)`` in [0, 1],
    labels int64 in 0..9. ``path`` is an optional folder holding the four
    original ``.gz`` files, or its parent with an ``mnist`` subfolder; see
    :func:`load` for the search order and options.
    """
    return load("mnist", path, download=download, progress=progress)


def fashion_mnist(path=None, *, download: bool = True, progress: bool = True):
    """Load Fashion-MNIST (Zalando article images): ``x_train, y_train, x_test, y_test``.

    Same layout and arguments as :func:`mnist`; labels 0..9 are T-shirt/top,
    Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
    """
    return load("fashion-mnist", path, download=download, progress=progress)


def load(
    name: str,
    path=None,
    *,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    download: bool = True,
    progress: bool = True,
):
    """Load an MNIST-style data set as ``(x_train, y_train, x_test, y_test)``.

    Each of the four :data:`FILES` is taken from the first folder holding it:
    ``path`` (or ``path/<name>``), then ``$TRACEJIT_DATA/<name>`` (or
    ``$TRACEJIT_DATA`` itself), then :func:`cache_dir`. Files
    found nowhere are downloaded into the cache from ``mirrors`` (tried in
    order; default :data:`MIRRORS` for ``name``) unless ``download`` is false,
    with a progress bar on stderr (tqdm) unless ``progress`` is false.

    ``checksums`` maps each file name to its expected MD5 sum (default
    :data:`CHECKSUMS` for ``name``); it is required for a ``name`` not in
    :data:`CHECKSUMS`, which lets other data sets in this layout be loaded.

    Returns images as float32 ``(N, 784)`` in [0, 1] and labels as int64 ``(N,)``.
    Raises :class:`DatasetNotFoundError` when files are missing and cannot be
    downloaded, :class:`ChecksumError` or :class:`DatasetFormatError` for a bad
    file, and ValueError for an unknown ``name`` or incomplete ``checksums``.
    """
    checksums = _checksums_for(name, checksums)
    mirrors = MIRRORS.get(name, ()) if mirrors is None else tuple(mirrors)
    folders = _search_folders(name, path)

    found = {
        filename: next((p for f, _, verify in folders
                        if (p := _file_in(f, filename, verify, checksums[filename])) is not None), None)
        for filename in FILES
    }
    for filename in [f for f in FILES if found[f] is None]:
        urls = [mirror.rstrip("/") + "/" + filename for mirror in mirrors] if download else []
        failures = []
        for url in urls:
            try:
                found[filename] = _download(url, cache_dir(name) / filename, checksums[filename], progress)
                break
            # URLError, timeouts and our own checks are all OSErrors; a malformed
            # mirror URL is a ValueError. Either way the next mirror may work.
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"{url}: {exc}")
                if progress:
                    print(f"  failed: {exc}", file=sys.stderr, flush=True)
        else:
            missing = [f for f in FILES if found[f] is None]
            raise DatasetNotFoundError(
                _not_found_message(_TITLES.get(name, name), name, folders, missing, download, failures)
            )

    paths = [found[filename] for filename in FILES]
    arrays = [
        _read_verified(file, checksums[file.name], magic)
        for file, magic in zip(paths, (_IMAGES_MAGIC, _LABELS_MAGIC) * 2)
    ]
    result = []
    for i in (0, 2):  # (images, labels) of train, then of test
        (images_file, labels_file), (images, labels) = paths[i : i + 2], arrays[i : i + 2]
        if images.shape[1:] != _IMAGE_SHAPE:
            raise DatasetFormatError(
                f"{images_file}: images of shape {images.shape[1:]}, expected {_IMAGE_SHAPE}"
            )
        if len(labels) != len(images):
            raise DatasetFormatError(
                f"{labels_file}: {len(labels)} labels, but {images_file} holds {len(images)} images"
            )
        # Divide rather than multiply by 1/255 so that 255 maps to exactly 1.0.
        x = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=np.float32)
        result += [x, labels.astype(np.int64)]
    return tuple(result)


def cache_dir(name: str) -> Path:
    """Folder where downloaded files of data set ``name`` are kept.

    ``$TRACEJIT_CACHE_DIR/datasets/<name>`` if ``TRACEJIT_CACHE_DIR`` is set
    (it names tracejit's whole cache root), else
    ``$XDG_CACHE_HOME/tracejit/datasets/<name>``, else
    ``~/.cache/tracejit/datasets/<name>``. The folder need not exist yet.
    """
    root = os.environ.get("TRACEJIT_CACHE_DIR")
    if root:
        base = Path(root).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "tracejit"
    return base / "datasets" / name


def load_idx(path, magic: int | None = None) -> np.ndarray:
    """Read one IDX file, gzip-compressed or not, into a NumPy array.

    The array has the file's shape and element type (uint8, int8, int16,
    int32, float32 or float64) in native byte order, and is writable. If
    ``magic`` is given (e.g. ``0x00000803`` for 3-D uint8 images) the file's
    magic number must equal it. Raises :class:`DatasetFormatError`, naming the
    file, for a damaged gzip stream, a bad magic number, or a size that does
    not match the header (truncated or trailing data).
    """
    path = Path(path)
    return _parse_idx(path.read_bytes(), path, magic)


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    The inverse of :func:`load_idx`, meant for making small test data sets.
    The element type must be one IDX supports: uint8, int8, int16, int32,
    float32 or float64 (ValueError otherwise). Compressed output carries no
    timestamp, so the same array always gives the same bytes and MD5 sum.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder(">"))
    if code is None:
        raise ValueError(
            f"write_idx: array dtype must be one of uint8, int8, int16, int32, float32, float64; "
            f"got {array.dtype}"
        )
    if not 1 <= array.ndim <= 255 or max(array.shape) >= 2**32:
        raise ValueError(
            f"write_idx: array must have 1 to 255 dimensions, each below 2**32; got shape {array.shape}"
        )
    data = (
        bytes((0, 0, code, array.ndim))
        + np.asarray(array.shape, ">u4").tobytes()
        + array.astype(array.dtype.newbyteorder(">")).tobytes()
    )
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


def batches(
    x, y, batch_size: int, shuffle: bool = True, seed=0, drop_last: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over ``(x_batch, y_batch)`` mini-batches of matching samples.

    ``x`` and ``y`` are arrays with the sample axis first and the same number
    of samples. Each sample appears exactly once per call, in an order drawn
    from ``seed`` (an int >= 0, None for fresh entropy, or a
    ``numpy.random.Generator``) if ``shuffle`` is true, else in order. Pass a
    different seed per epoch for a different order. The last batch is smaller
    when ``batch_size`` does not divide the sample count, unless ``drop_last``
    skips it; dropping it keeps every batch the same shape, so a traced
    training step is compiled once rather than twice.

    Arguments are checked when ``batches`` is called (ValueError/TypeError
    naming the argument, what it expects and what it got), not at the first
    batch.
    """
    return _iterate_batches(*_batch_plan(x, y, batch_size, shuffle, seed, drop_last), int(batch_size))


def _batch_plan(x, y, batch_size, shuffle, seed, drop_last):
    """``batches``' arguments checked: the arrays, the order of the samples (None: as they are)
    and where the last batch ends."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"x and y must be arrays with the sample axis first; "
            f"got x of shape {x.shape}, y of shape {y.shape}"
        )
    if len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of samples; got len(x) = {len(x)}, len(y) = {len(y)}"
        )
    _check_int("batch_size", batch_size, minimum=1)
    _check_bool("shuffle", shuffle)
    _check_bool("drop_last", drop_last)
    if seed is not None and not isinstance(seed, np.random.Generator):
        _check_int("seed", seed, minimum=0, alternatives=", None or a numpy.random.Generator")

    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else None
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    return x, y, order, stop


def _iterate_batches(x, y, order, stop, batch_size, part=0, parts=1):
    """The batches, or of each batch only its ``part``-th of ``parts`` equal contiguous slices
    (the caller checks that they are equal). Only that slice is gathered: with shuffling, the
    rows come from all over the data set (256 MNIST rows take 0.11 ms here, 4% of a
    data-parallel MLP step of two processes)."""
    for start in range(0, stop, batch_size):
        size = min(batch_size, stop - start) // parts
        lo, hi = start + part * size, start + (part + 1) * size
        if order is None:
            yield x[lo:hi], y[lo:hi]
        else:
            index = order[lo:hi]
            yield x[index], y[index]


def _check_int(name, value, *, minimum, alternatives=""):
    # bool is an int subclass, but batch_size=True is always a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name} must be an int >= {minimum}{alternatives}; got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{alternatives}; got {value!r}")


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")


def _checksums_for(name, checksums):
    if checksums is None:
        if name not in CHECKSUMS:
            raise ValueError(
                f"unknown data set {name!r}: expected one of {sorted(CHECKSUMS)}, "
                f"or pass checksums= for a data set laid out like MNIST"
            )
        return CHECKSUMS[name]
    # The name becomes a folder name, so it must not be able to point elsewhere.
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"data set name must be a plain folder name like 'mnist'; got {name!r}")
    missing = [f for f in FILES if f not in checksums]
    if missing:
        raise ValueError(f"checksums must give an MD5 sum for each of {list(FILES)}; missing {missing}")
    return {f: str(checksums[f]).lower() for f in FILES}


def _search_folders(name, path):
    """The folders searched, in order, as (folder or None, description, verify) triples.

    ``path`` and ``$TRACEJIT_DATA`` may each name the folder holding the files or its parent
    (with a ``<name>`` subfolder). The data sets share their file names, so a file found in the
    form a location was not primarily meant as (``path/<name>``, ``$TRACEJIT_DATA`` itself) is
    only taken when its MD5 sum is this data set's (``verify``): ``TRACEJIT_DATA`` pointing at
    the MNIST folder never hands MNIST's files to ``fashion_mnist()``.
    """
    folders = []
    if path is not None:
        folders.append((Path(path).expanduser(), "path argument", False))
        folders.append((Path(path).expanduser() / name, f"path argument/{name}", True))
    data = os.environ.get("TRACEJIT_DATA")
    if data:
        folders.append((Path(data).expanduser() / name, f"$TRACEJIT_DATA/{name}", False))
        folders.append((Path(data).expanduser(), "$TRACEJIT_DATA itself", True))
    else:
        folders.append((None, f"$TRACEJIT_DATA/{name}: TRACEJIT_DATA is not set", False))
    folders.append((cache_dir(name), "download cache", False))
    return folders


def _file_in(folder, filename, verify, expected_md5):
    """``folder / filename`` if it is a file (with the expected MD5 sum, when ``verify``), else None."""
    if folder is None or not (folder / filename).is_file():
        return None
    if verify and _md5((folder / filename).read_bytes()).hexdigest() != expected_md5:
        return None
    return folder / filename


def _not_found_message(title, name, folders, missing, download, failures):
    lines = [f"{title} data set not found: missing {', '.join(missing)}.", "Searched these folders:"]
    for folder, description, _ in folders:
        if folder is None:
            lines.append(f"  ({description})")
        else:
            absent = "" if folder.is_dir() else ", does not exist"
            lines.append(f"  {folder} ({description}{absent})")
    lines += [
        f"Put the four original files {', '.join(FILES)} in one of them,",
        f"or set TRACEJIT_DATA (or pass path=) to the folder holding them or to its parent, with a '{name}' "
        "subfolder.",
    ]
    if not download:
        lines.append("Downloading was turned off (download=False).")
    elif not failures:
        lines.append("No download mirrors are configured.")
    else:
        lines.append("Downloading failed (offline?):")
        lines += [f"  {failure}" for failure in failures]
    return "\n".join(lines)


def _md5(data=b""):
    # Not a security use; saying so keeps hashlib working on FIPS-restricted systems.
    return hashlib.md5(data, usedforsecurity=False)


def _read_verified(path, expected_md5, magic):
    raw = path.read_bytes()
    digest = _md5(raw).hexdigest()
    if digest != expected_md5:
        raise ChecksumError(
            f"{path}: MD5 sum {digest}, expected {expected_md5}. The file is damaged, incomplete "
            f"or not the original; replace it, or delete it to have it downloaded again."
        )
    return _parse_idx(raw, path, magic)


def _parse_idx(raw, path, magic):
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{path}: damaged or truncated gzip data ({exc})") from None
    if len(raw) < 4:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise DatasetFormatError(f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x}")
    if raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DatasetFormatError(f"{path}: bad magic number 0x{found:08x}, not an IDX file")

    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "trailing data"
        raise DatasetFormatError(
            f"{path}: {problem}: {len(raw)} bytes of IDX data, expected {expected} "
            f"for shape {shape} of {dtype.newbyteorder('=')}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _download(url, dest, expected_md5, progress):
    """Fetch ``url`` to ``dest``, giving it that name only once its MD5 sum matches."""
    if progress:
        print(f"Downloading {url}", file=sys.stderr, flush=True)
    request = urllib.request.Request(url, headers={"User-Agent": "tracejit-datasets"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
        total = response.length  # Content-Length; None when the server does not say
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A temporary name in the same folder makes the final rename atomic, and an
        # interrupted or corrupt transfer never looks like a usable cached file.
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            digest, received = _md5(), 0
            with os.fdopen(fd, "wb") as out, progress_bar(total, dest.name, enabled=progress, unit="B",
                                                          unit_scale=True) as bar:
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                # http.client returns a short body silently when the peer hangs up early.
                if total is not None and received < total:
                    raise DatasetError(f"connection closed after {received} of {total} bytes")
            if digest.hexdigest() != expected_md5:
                raise ChecksumError(
                    f"downloaded data has MD5 sum {digest.hexdigest()}, expected {expected_md5}"
                )
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return dest
