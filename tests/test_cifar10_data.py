"""Tests for lossk.cifar10.data, on small synthetic datasets written in every supported layout."""

import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from lossk.cifar10 import data as cifar10_data

CIFAR10Error = cifar10_data.CIFAR10Error
load_cifar10 = cifar10_data.load_cifar10

PER_BATCH = 7
PY_DIR, BIN_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
PY_TAR, BIN_TAR = "cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"
PY_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
BIN_FILES = [f"{name}.bin" for name in PY_FILES]
SHARED_COPY = Path(__file__).resolve().parents[1].parent / "shared" / PY_DIR


# --------------------------------------------------------------------------- synthetic data


def make_batches(n=PER_BATCH, seed=0):
    """Six (images, labels) batches: five training batches, then the test batch."""
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, size=n))
        for _ in range(6)
    ]


def expected(batches):
    x_train = np.concatenate([x for x, _ in batches[:5]])
    y_train = np.concatenate([y for _, y in batches[:5]])
    return x_train, y_train, batches[5][0], batches[5][1]


def py_batch_bytes(x, y, str_keys=False):
    # Protocol 3 stores bytes natively; protocol 2 under Python 3 would reference _codecs.encode,
    # which the real (Python 2) files never do.
    batch = {
        "batch_label": b"synthetic batch",
        "labels": [int(v) for v in y],
        "data": x.reshape(len(x), -1),
        "filenames": [b"img_%d.png" % i for i in range(len(x))],
    }
    if not str_keys:
        batch = {k.encode(): v for k, v in batch.items()}
    return pickle.dumps(batch, protocol=3)


def bin_batch_bytes(x, y):
    return np.concatenate([np.asarray(y, np.uint8)[:, None], x.reshape(len(x), -1)], axis=1).tobytes()


def write_py_dir(parent, batches, **kwargs):
    d = Path(parent) / PY_DIR
    d.mkdir(parents=True)
    for name, (x, y) in zip(PY_FILES, batches):
        (d / name).write_bytes(py_batch_bytes(x, y, **kwargs))
    meta = {
        b"label_names": [c.encode() for c in cifar10_data.CLASSES],
        b"num_cases_per_batch": len(batches[0][1]),
        b"num_vis": 3072,
    }
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=3))
    return d


def write_bin_dir(parent, batches):
    d = Path(parent) / BIN_DIR
    d.mkdir(parents=True)
    for name, (x, y) in zip(BIN_FILES, batches):
        (d / name).write_bytes(bin_batch_bytes(x, y))
    (d / "batches.meta.txt").write_text("\n".join(cifar10_data.CLASSES) + "\n")
    return d


def tar_gz_bytes(directory, extra=()):
    """The folder as a .tar.gz, plus (TarInfo, bytes or None) extra members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(directory, arcname=Path(directory).name)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def write_layout(layout, parent, batches, scratch):
    """Write ``batches`` into ``parent`` in the given layout; return the dataset's own path."""
    parent.mkdir(parents=True, exist_ok=True)
    if layout == "py-dir":
        return write_py_dir(parent, batches)
    if layout == "bin-dir":
        return write_bin_dir(parent, batches)
    if layout == "py-tar":
        archive = parent / PY_TAR
        archive.write_bytes(tar_gz_bytes(write_py_dir(scratch, batches)))
        return archive
    if layout == "bin-tar":
        archive = parent / BIN_TAR
        archive.write_bytes(tar_gz_bytes(write_bin_dir(scratch, batches)))
        return archive
    raise AssertionError(layout)


LAYOUTS = ["py-dir", "py-tar", "bin-dir", "bin-tar"]


def assert_dataset_equal(got, want):
    assert len(got) == 4
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    x_train, y_train, x_test, y_test = got
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.shape == (5 * PER_BATCH, 3, 32, 32)
    assert x_test.shape == (PER_BATCH, 3, 32, 32)
    for a in got:
        assert a.flags.writeable and a.flags.c_contiguous


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("layout", LAYOUTS)
def test_loads_each_layout_from_parent_folder(tmp_path, layout):
    batches = make_batches()
    write_layout(layout, tmp_path / "data", batches, tmp_path / "scratch")
    assert_dataset_equal(load_cifar10(tmp_path / "data"), expected(batches))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_root_may_be_the_dataset_itself(tmp_path, layout):
    batches = make_batches()
    dataset = write_layout(layout, tmp_path / "data", batches, tmp_path / "scratch")
    assert_dataset_equal(load_cifar10(str(dataset)), expected(batches))


def test_python_and_binary_versions_decode_identically(tmp_path):
    batches = make_batches(seed=1)
    py = load_cifar10(write_py_dir(tmp_path / "py", batches))
    binary = load_cifar10(write_bin_dir(tmp_path / "bin", batches))
    for a, b in zip(py, binary):
        np.testing.assert_array_equal(a, b)


def test_binary_records_are_channel_major(tmp_path):
    # Written byte by byte from the format description, independently of the helpers above:
    # label byte, then the 1024-byte red plane, the green plane and the blue plane.
    record = bytes([3]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes(range(256)) * 4
    d = tmp_path / BIN_DIR
    d.mkdir()
    for name in BIN_FILES:
        (d / name).write_bytes(record * 2)
    x_train, y_train, _, _ = load_cifar10(d)
    assert (y_train == 3).all()
    assert (x_train[:, 0] == 10).all() and (x_train[:, 1] == 20).all()
    np.testing.assert_array_equal(x_train[0, 2].ravel(), np.tile(np.arange(256), 4))
    assert x_train[0, 2, 0, 31] == 31 and x_train[0, 2, 8, 0] == 0  # rows of 32, row-major


def test_loads_batches_pickled_by_numpy_1(tmp_path):
    # The official files name numpy.core.multiarray._reconstruct; numpy 2 writes numpy._core.
    batches = make_batches()
    d = write_py_dir(tmp_path, batches)
    for name in PY_FILES:
        raw = (d / name).read_bytes()
        assert b"numpy._core.multiarray\n_reconstruct\n" in raw
        (d / name).write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    assert_dataset_equal(load_cifar10(tmp_path), expected(batches))


def python2_batch_bytes(x, y):
    """A batch encoded opcode by opcode the way the official files are (Python 2, protocol 2).

    Python 3 cannot produce these: its protocol-2 pickles encode bytes via _codecs.encode,
    while Python 2 wrote str (SHORT_BINSTRING/BINSTRING), which only encoding="bytes" or
    "latin1" can read back.
    """

    def py2_str(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    n = len(x)
    return b"".join([
        b"\x80\x02}(",  # PROTO 2, EMPTY_DICT, MARK
        py2_str(b"batch_label"), py2_str(b"training batch 1 of 5"),
        py2_str(b"labels"), b"](", *[b"K" + bytes([int(v)]) for v in y], b"e",
        py2_str(b"data"),
        # _reconstruct(ndarray, (0,), "b"), then BUILD with (1, shape, dtype, False, raw bytes)
        b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n", b"K\x00\x85",
        py2_str(b"b"), b"\x87R",
        b"(K\x01", b"M" + struct.pack("<H", n), b"M" + struct.pack("<H", 3072), b"\x86",
        b"cnumpy\ndtype\n", py2_str(b"u1"), b"\x89\x88\x87R",
        b"(K\x03", py2_str(b"|"), b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",
        b"\x89", py2_str(x.reshape(n, -1).tobytes()), b"tb",
        b"u.",  # SETITEMS, STOP
    ])


def test_loads_python2_pickles_like_the_official_files(tmp_path):
    batches = make_batches()
    d = write_py_dir(tmp_path, batches)
    for name, (x, y) in zip(PY_FILES, batches):
        (d / name).write_bytes(python2_batch_bytes(x, y))
    assert_dataset_equal(load_cifar10(d), expected(batches))


def test_loads_batches_with_str_keys(tmp_path):
    batches = make_batches()
    write_py_dir(tmp_path, batches, str_keys=True)
    assert_dataset_equal(load_cifar10(tmp_path), expected(batches))


def test_classes():
    assert cifar10_data.CLASSES == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )


def test_normalize():
    x = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    out = cifar10_data.normalize(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(out, x.astype(np.float32) / np.float32(255))
    assert out.min() == 0.0 and out.max() == 1.0
    with pytest.raises(TypeError, match="uint8"):
        cifar10_data.normalize(out)


# --------------------------------------------------------------------------- locating the data


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LOSSK_CIFAR10", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_find_data_dir_precedence(clean_env, tmp_path):
    find = cifar10_data.find_data_dir
    assert find() == tmp_path / "home" / ".cache" / "lossk" / "cifar10"
    clean_env.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid per the XDG spec: ignored
    assert find() == tmp_path / "home" / ".cache" / "lossk" / "cifar10"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert find() == tmp_path / "xdg" / "lossk" / "cifar10"
    clean_env.setenv("LOSSK_CIFAR10", str(tmp_path / "env"))
    assert find() == tmp_path / "env"
    assert find(tmp_path / "explicit") == tmp_path / "explicit"
    assert find("~/data") == tmp_path / "home" / "data"


def test_load_without_root_uses_environment(clean_env, tmp_path):
    batches = make_batches()
    write_py_dir(tmp_path / "env", batches)
    clean_env.setenv("LOSSK_CIFAR10", str(tmp_path / "env"))
    assert_dataset_equal(load_cifar10(), expected(batches))


@pytest.mark.parametrize("make_root", [lambda p: p, lambda p: p / "does-not-exist"], ids=["empty", "absent"])
def test_missing_data_explains_what_to_do(tmp_path, make_root):
    root = make_root(tmp_path)
    with pytest.raises(CIFAR10Error) as err:
        load_cifar10(root)
    msg = str(err.value)
    for needle in (str(root), PY_DIR, PY_TAR, "--data", "LOSSK_CIFAR10", "download"):
        assert needle in msg


def test_missing_data_names_the_default_cache_folder(clean_env, tmp_path):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(CIFAR10Error, match="default cache folder") as err:
        load_cifar10()
    assert str(tmp_path / "xdg" / "lossk" / "cifar10") in str(err.value)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_batch_file_is_named(tmp_path, layout):
    scratch = tmp_path / "scratch"
    batches = make_batches()
    if layout.endswith("dir"):
        dataset = write_layout(layout, tmp_path / "data", batches, scratch)
        missing = "data_batch_4.bin" if layout == "bin-dir" else "data_batch_4"
        (dataset / missing).unlink()
    else:
        folder = write_py_dir(scratch, batches) if layout == "py-tar" else write_bin_dir(scratch, batches)
        missing = "test_batch" if layout == "py-tar" else "test_batch.bin"
        (folder / missing).unlink()
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / (PY_TAR if layout == "py-tar" else BIN_TAR)).write_bytes(tar_gz_bytes(folder))
    with pytest.raises(CIFAR10Error, match=f"incomplete: missing {missing} "):
        load_cifar10(tmp_path / "data")


# --------------------------------------------------------------------------- hostile pickles


class _RunsShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _RunsPythonCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


class _CallsOtherNumpyFunction:
    """Harmless in itself, but not one of the four globals a CIFAR-10 batch uses."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return np.frombuffer, (b"\x00" * 3072, np.uint8)


@pytest.mark.parametrize(
    "payload, global_name",
    [
        (_RunsShellCommand, "system"),
        (_RunsPythonCode, "builtins.exec"),
        (_CallsOtherNumpyFunction, "frombuffer"),
    ],
)
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload, global_name):
    batches = make_batches()
    d = write_py_dir(tmp_path / "data", batches)
    marker = tmp_path / "pwned"
    labels = [int(v) for v in batches[1][1]]
    evil = {b"batch_label": b"x", b"labels": labels, b"data": payload(marker)}
    (d / "data_batch_2").write_bytes(pickle.dumps(evil, protocol=3))

    with pytest.raises(cifar10_data.UnsafePickleError) as err:
        load_cifar10(tmp_path / "data")
    assert isinstance(err.value, pickle.UnpicklingError)
    assert isinstance(err.value, ValueError) and isinstance(err.value, CIFAR10Error)
    msg = str(err.value)
    assert "data_batch_2" in msg and "not a CIFAR-10 batch" in msg and global_name in msg
    assert not marker.exists()


def test_malicious_pickle_payload_is_live(tmp_path):
    # Guards the test above against passing vacuously: a plain unpickler does run the payload.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_RunsPythonCode(marker), protocol=3))
    assert marker.exists()


# --------------------------------------------------------------------------- corrupt files


def _valid_py(n=PER_BATCH):
    x, y = make_batches(n)[2]
    return x, y


def _dict_pickle(**entries):
    return pickle.dumps({k.encode(): v for k, v in entries.items()}, protocol=3)


PY_CORRUPTIONS = {
    "truncated": (lambda: py_batch_bytes(*_valid_py())[:5000], "corrupt or truncated"),
    "garbage": (lambda: b"this is not a pickle", "corrupt or truncated"),
    "empty": (lambda: b"", "corrupt or truncated"),
    "not-a-dict": (lambda: pickle.dumps([1, 2, 3], protocol=3), "expected a dict"),
    "no-labels": (lambda: _dict_pickle(data=_valid_py()[0].reshape(PER_BATCH, -1)), "no 'labels'"),
    "no-data": (lambda: _dict_pickle(labels=[0] * PER_BATCH), "no 'data'"),
    "short-rows": (
        lambda: _dict_pickle(data=np.zeros((PER_BATCH, 3071), np.uint8), labels=[0] * PER_BATCH),
        r"shape \(N, 3072\), got uint8 array of shape \(7, 3071\)",
    ),
    "float-data": (
        lambda: _dict_pickle(data=np.zeros((PER_BATCH, 3072), np.float32), labels=[0] * PER_BATCH),
        "got float32 array",
    ),
    "data-not-array": (lambda: _dict_pickle(data=b"\x00" * 3072, labels=[0]), "got bytes"),
    "label-count": (
        lambda: _dict_pickle(data=np.zeros((PER_BATCH, 3072), np.uint8), labels=[0] * (PER_BATCH - 1)),
        "7 images but 6 labels",
    ),
    "label-too-big": (
        lambda: _dict_pickle(data=np.zeros((PER_BATCH, 3072), np.uint8), labels=[0, 0, 10, 0, 0, 0, 0]),
        "image 2 has label 10",
    ),
    "label-negative": (
        lambda: _dict_pickle(data=np.zeros((PER_BATCH, 3072), np.uint8), labels=[-1] + [0] * 6),
        "image 0 has label -1",
    ),
    "label-not-int": (
        lambda: _dict_pickle(data=np.zeros((PER_BATCH, 3072), np.uint8), labels=[b"cat"] * PER_BATCH),
        "flat list of integers",
    ),
    "no-images": (lambda: _dict_pickle(data=np.zeros((0, 3072), np.uint8), labels=[]), "no images"),
}


@pytest.mark.parametrize("bad_file", ["data_batch_3", "test_batch"])
@pytest.mark.parametrize("case", sorted(PY_CORRUPTIONS))
def test_corrupt_python_batch(tmp_path, case, bad_file):
    make_bytes, problem = PY_CORRUPTIONS[case]
    d = write_py_dir(tmp_path, make_batches())
    (d / bad_file).write_bytes(make_bytes())
    with pytest.raises(CIFAR10Error, match=problem) as err:
        load_cifar10(d)
    assert str(d / bad_file) in str(err.value)


def test_corrupt_python_batch_inside_archive_is_named(tmp_path):
    d = write_py_dir(tmp_path / "scratch", make_batches())
    (d / "data_batch_5").write_bytes(b"garbage")
    (tmp_path / PY_TAR).write_bytes(tar_gz_bytes(d))
    with pytest.raises(CIFAR10Error, match=f"{PY_TAR}:{PY_DIR}/data_batch_5 is corrupt"):
        load_cifar10(tmp_path)


def test_truncated_binary_batch(tmp_path):
    d = write_bin_dir(tmp_path, make_batches())
    raw = (d / "data_batch_2.bin").read_bytes()
    (d / "data_batch_2.bin").write_bytes(raw[:-100])
    with pytest.raises(CIFAR10Error, match="data_batch_2.bin is truncated.*not a multiple of the 3073-byte"):
        load_cifar10(d)


def test_empty_binary_batch(tmp_path):
    d = write_bin_dir(tmp_path, make_batches())
    (d / "test_batch.bin").write_bytes(b"")
    with pytest.raises(CIFAR10Error, match="test_batch.bin is empty"):
        load_cifar10(d)


def test_binary_label_out_of_range(tmp_path):
    d = write_bin_dir(tmp_path, make_batches())
    raw = bytearray((d / "data_batch_1.bin").read_bytes())
    raw[2 * 3073] = 10
    (d / "data_batch_1.bin").write_bytes(bytes(raw))
    with pytest.raises(CIFAR10Error, match="data_batch_1.bin: image 2 has label 10"):
        load_cifar10(d)


@pytest.mark.parametrize("layout", ["py-dir", "bin-dir"])
def test_batch_cut_at_record_boundary(tmp_path, layout):
    batches = make_batches()
    batches[3] = (batches[3][0][:-1], batches[3][1][:-1])
    write_layout(layout, tmp_path, batches, None)
    with pytest.raises(CIFAR10Error, match="data_batch_4(.bin)? has 6 images but .*data_batch_1(.bin)? has 7"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize(
    "make_archive, problem",
    [
        (lambda d: b"not a tar file at all", "cannot read archive"),
        (lambda d: tar_gz_bytes(d)[:2000], "cannot read archive"),
        (lambda d: tar_gz_bytes(d.parent / "unrelated"), "not a CIFAR-10 archive"),
    ],
    ids=["garbage", "truncated", "wrong-contents"],
)
def test_bad_archive(tmp_path, make_archive, problem):
    d = write_py_dir(tmp_path / "scratch", make_batches())
    (tmp_path / "scratch" / "unrelated").mkdir()
    (tmp_path / "scratch" / "unrelated" / "file.txt").write_text("hello")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / PY_TAR).write_bytes(make_archive(d))
    with pytest.raises(CIFAR10Error, match=problem) as err:
        load_cifar10(tmp_path / "data")
    assert PY_TAR in str(err.value)


# --------------------------------------------------------------------------- download


class FakeServer:
    def __init__(self, payload=None, error=None):
        self.payload, self.error, self.urls = payload, error, []

    def __call__(self, url, timeout):
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        return io.BytesIO(self.payload)


@pytest.fixture
def serve(monkeypatch):
    """Serve ``payload`` as the CIFAR-10 archive, with a matching checksum unless given one."""

    def install(payload=None, md5=None, error=None):
        server = FakeServer(payload, error)
        monkeypatch.setattr(cifar10_data, "_urlopen", server)
        if md5 is None and payload is not None:
            md5 = hashlib.md5(payload).hexdigest()
        if md5 is not None:
            monkeypatch.setattr(cifar10_data, "CIFAR10_MD5", md5)
        return server

    return install


def synthetic_archive(tmp_path, batches, extra=()):
    return tar_gz_bytes(write_py_dir(tmp_path / "scratch", batches), extra)


def test_download_then_load(tmp_path, serve):
    batches = make_batches()
    server = serve(synthetic_archive(tmp_path, batches))
    cache = tmp_path / "cache"
    assert_dataset_equal(load_cifar10(cache, download=True), expected(batches))
    assert server.urls == [cifar10_data.CIFAR10_URL]
    assert sorted(p.name for p in cache.iterdir()) == [PY_DIR, PY_TAR]  # no temp files left
    assert sorted(p.name for p in (cache / PY_DIR).iterdir()) == sorted(PY_FILES + ["batches.meta"])

    offline = serve(error=urllib.error.URLError("no network"))
    assert_dataset_equal(load_cifar10(cache, download=True), expected(batches))
    assert offline.urls == []


def test_download_reuses_verified_archive(tmp_path, serve):
    batches = make_batches()
    payload = synthetic_archive(tmp_path, batches)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / PY_TAR).write_bytes(payload)
    server = serve(error=urllib.error.URLError("no network"), md5=hashlib.md5(payload).hexdigest())
    assert cifar10_data.download_cifar10(tmp_path / "cache") == tmp_path / "cache" / PY_DIR
    assert server.urls == []
    assert_dataset_equal(load_cifar10(tmp_path / "cache"), expected(batches))


@pytest.mark.parametrize("name", [PY_DIR, PY_TAR])
def test_download_to_a_path_naming_the_dataset(tmp_path, serve, name):
    batches = make_batches()
    serve(synthetic_archive(tmp_path, batches))
    assert_dataset_equal(load_cifar10(tmp_path / "cache" / name, download=True), expected(batches))
    assert (tmp_path / "cache" / PY_DIR / "data_batch_1").is_file()


def test_download_checksum_mismatch_leaves_nothing(tmp_path, serve):
    serve(synthetic_archive(tmp_path, make_batches()), md5="0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(CIFAR10Error, match="MD5 [0-9a-f]{32}, expected 0{32}"):
        load_cifar10(cache, download=True)
    assert list(cache.iterdir()) == []


def test_truncated_download_is_rejected(tmp_path, serve):
    payload = synthetic_archive(tmp_path, make_batches())
    serve(payload[: len(payload) // 2], md5=hashlib.md5(payload).hexdigest())
    with pytest.raises(CIFAR10Error, match="corrupt: MD5"):
        cifar10_data.download_cifar10(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_network_unreachable(tmp_path, serve):
    serve(error=urllib.error.URLError("Name or service not known"))
    cache = tmp_path / "cache"
    with pytest.raises(CIFAR10Error) as err:
        load_cifar10(cache, download=True)
    msg = str(err.value)
    for needle in ("could not download", "Name or service not known", "--data", "LOSSK_CIFAR10", str(cache)):
        assert needle in msg
    assert list(cache.iterdir()) == []


def test_no_download_unless_allowed(tmp_path, serve):
    server = serve(synthetic_archive(tmp_path, make_batches()))
    with pytest.raises(CIFAR10Error, match="download=True"):
        load_cifar10(tmp_path / "cache")
    assert server.urls == []


@pytest.mark.parametrize(
    "member_name",
    ["../evil", f"{PY_DIR}/../../evil", "ABSOLUTE"],
)
def test_unsafe_archive_members_are_rejected(tmp_path, serve, member_name):
    target = tmp_path / "evil"
    if member_name == "ABSOLUTE":
        member_name = str(target)
    info = tarfile.TarInfo(member_name)
    info.size = 4
    serve(synthetic_archive(tmp_path, make_batches(), extra=[(info, b"evil")]))
    cache = tmp_path / "a" / "cache"
    with pytest.raises(CIFAR10Error, match="unsafe"):
        cifar10_data.download_cifar10(cache)
    assert not target.exists() and not (tmp_path / "a" / "evil").exists()
    assert [p.name for p in cache.iterdir()] == [PY_TAR]  # verified download kept, nothing extracted


def test_extraction_writes_only_regular_files_under_the_batches_folder(tmp_path, serve):
    link = tarfile.TarInfo(f"{PY_DIR}/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hardlink = tarfile.TarInfo(f"{PY_DIR}/hardlink")
    hardlink.type, hardlink.linkname = tarfile.LNKTYPE, f"{PY_DIR}/data_batch_1"
    other = tarfile.TarInfo("other/file.txt")
    other.size = 2
    nested = tarfile.TarInfo(f"{PY_DIR}/sub/file.txt")
    nested.size = 2
    batches = make_batches()
    extra = [(link, None), (hardlink, None), (other, b"hi"), (nested, b"hi")]
    serve(synthetic_archive(tmp_path, batches, extra=extra))
    cache = tmp_path / "cache"
    assert_dataset_equal(load_cifar10(cache, download=True), expected(batches))
    assert sorted(p.name for p in cache.iterdir()) == [PY_DIR, PY_TAR]
    assert sorted(p.name for p in (cache / PY_DIR).iterdir()) == sorted(PY_FILES + ["batches.meta"])


def test_download_of_archive_without_batches_leaves_no_folder(tmp_path, serve):
    d = write_py_dir(tmp_path / "scratch", make_batches())
    (d / "data_batch_2").unlink()
    serve(tar_gz_bytes(d))
    with pytest.raises(CIFAR10Error, match="missing data_batch_2"):
        cifar10_data.download_cifar10(tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [PY_TAR]


# --------------------------------------------------------------------------- the real dataset


@pytest.mark.skipif(not SHARED_COPY.is_dir(), reason=f"no shared CIFAR-10 copy at {SHARED_COPY}")
def test_real_dataset():
    x_train, y_train, x_test, y_test = load_cifar10(SHARED_COPY)
    assert x_train.shape == (50000, 3, 32, 32) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 3, 32, 32) and x_test.dtype == np.uint8
    assert y_train.shape == (50000,) and y_train.dtype == np.int64
    assert y_test.shape == (10000,) and y_test.dtype == np.int64
    assert y_train.min() == 0 and y_train.max() == 9 and y_test.min() == 0 and y_test.max() == 9
    assert np.bincount(y_train, minlength=10).tolist() == [5000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
    assert 100 < x_train.mean() < 150  # real photographs, not blank or noise-filled arrays
