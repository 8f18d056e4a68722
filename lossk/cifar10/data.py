"""Load the CIFAR-10 dataset from the official distributions, with optional download.

Supported layouts, found either at the given path itself or directly inside it:

* ``cifar-10-batches-py/``   -- the "python version" (pickled batches)
* ``cifar-10-batches-bin/``  -- the "binary version" (1 label byte + 3072 pixel bytes per record)
* ``cifar-10-python.tar.gz`` and ``cifar-10-binary.tar.gz`` -- the same, read straight from the archive

Images come back as uint8 arrays of shape (N, 3, 32, 32) (channel-major, RGB) and labels
as int64 arrays with values 0..9 indexing :data:`CLASSES`.

The python batches are pickles, and unpickling runs whatever code a pickle names. They are
therefore read with an unpickler that only resolves the few numpy names a CIFAR-10 batch
contains; anything else is refused before it can run.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

try:  # numpy >= 2 moved the array internals to numpy._core
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

__all__ = [
    "CLASSES",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "ENV_VAR",
    "CIFAR10Error",
    "UnsafePickleError",
    "find_data_dir",
    "load_cifar10",
    "download_cifar10",
    "normalize",
]

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ENV_VAR = "LOSSK_CIFAR10"

PathLike = Union[str, "os.PathLike[str]"]
Batch = Tuple[np.ndarray, np.ndarray]

_IMAGE_SHAPE = (3, 32, 32)
_IMAGE_BYTES = 3 * 32 * 32
_RECORD_BYTES = 1 + _IMAGE_BYTES
_NUM_TRAIN_BATCHES = 5
_DOWNLOAD_TIMEOUT = 60  # seconds without progress before giving up
_CHUNK = 1 << 20


class CIFAR10Error(ValueError):
    """The CIFAR-10 data is missing, incomplete, corrupt, or could not be downloaded."""


class UnsafePickleError(CIFAR10Error, pickle.UnpicklingError):
    """A python batch file references something a CIFAR-10 pickle never contains."""


# --------------------------------------------------------------------------- python batches

# Exactly the globals that CIFAR-10 batch pickles reference. The official files were written
# with numpy 1.x (numpy.core.*); files re-pickled with numpy 2 say numpy._core.* instead.
# Names map to objects directly, so no module is ever imported on a pickle's behalf.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        # The official batches were pickled by Python 2; their byte strings must stay bytes.
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source} is not a CIFAR-10 batch: it tries to import {module}.{name}, "
                "which a CIFAR-10 pickle never contains. Refused to load it; nothing in it was run."
            ) from None


def _parse_python_batch(raw: bytes, source: str) -> Batch:
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), source).load()
    except CIFAR10Error:
        raise
    except Exception as e:  # any decoding failure means the file is damaged
        raise CIFAR10Error(
            f"{source} is corrupt or truncated (unpickling failed: {type(e).__name__}: {e})"
        ) from e
    if not isinstance(obj, dict):
        raise CIFAR10Error(f"{source} is not a CIFAR-10 batch: expected a dict, got {type(obj).__name__}")
    # Python 2 pickles give bytes keys; batches re-pickled under Python 3 may use str keys.
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    for key in ("data", "labels"):
        if key not in batch:
            raise CIFAR10Error(f"{source} is not a CIFAR-10 batch: it has no {key!r} entry")

    data = batch["data"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == _IMAGE_BYTES
    ):
        if isinstance(data, np.ndarray):
            desc = f"{data.dtype} array of shape {data.shape}"
        else:
            desc = type(data).__name__
        raise CIFAR10Error(
            f"{source}: 'data' should be a uint8 array of shape (N, {_IMAGE_BYTES}), got {desc}"
        )
    count = data.shape[0]
    if count == 0:
        raise CIFAR10Error(f"{source} contains no images")

    labels = np.asarray(batch["labels"])
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise CIFAR10Error(f"{source}: 'labels' should be a flat list of integers")
    if len(labels) != count:
        raise CIFAR10Error(f"{source} has {count} images but {len(labels)} labels")
    _check_label_range(labels, source)
    return data.reshape((count,) + _IMAGE_SHAPE), labels.astype(np.int64)


# --------------------------------------------------------------------------- binary batches


def _parse_binary_batch(raw: bytes, source: str) -> Batch:
    if len(raw) == 0:
        raise CIFAR10Error(f"{source} is empty")
    if len(raw) % _RECORD_BYTES:
        raise CIFAR10Error(
            f"{source} is truncated or not a CIFAR-10 binary batch: its size ({len(raw)} bytes) "
            f"is not a multiple of the {_RECORD_BYTES}-byte record size"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD_BYTES)
    labels = records[:, 0]
    _check_label_range(labels, source)
    return records[:, 1:].reshape((-1,) + _IMAGE_SHAPE), labels.astype(np.int64)


def _check_label_range(labels: np.ndarray, source: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= len(CLASSES)))
    if bad.size:
        raise CIFAR10Error(
            f"{source}: image {bad[0]} has label {labels[bad[0]]}, expected 0..{len(CLASSES) - 1}"
        )


# --------------------------------------------------------------------------- layouts


class _Layout(NamedTuple):
    dirname: str
    archive: str
    train_files: Tuple[str, ...]
    test_file: str
    parse: Callable[[bytes, str], Batch]

    @property
    def batch_files(self) -> Tuple[str, ...]:
        return self.train_files + (self.test_file,)


_PYTHON = _Layout(
    dirname="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, _NUM_TRAIN_BATCHES + 1)),
    test_file="test_batch",
    parse=_parse_python_batch,
)
_BINARY = _Layout(
    dirname="cifar-10-batches-bin",
    archive="cifar-10-binary.tar.gz",
    train_files=tuple(f"data_batch_{i}.bin" for i in range(1, _NUM_TRAIN_BATCHES + 1)),
    test_file="test_batch.bin",
    parse=_parse_binary_batch,
)
_LAYOUTS = (_PYTHON, _BINARY)


def _locate(root: Path) -> Optional[Tuple[Optional[_Layout], Path]]:
    """Find the dataset at or directly inside ``root``.

    Returns (layout, directory) for an extracted copy, (None, archive) for an archive whose
    layout is decided by its contents, or None if nothing is there.
    """
    if root.is_file():
        return None, root
    if not root.is_dir():
        return None
    for layout in _LAYOUTS:
        if root.name == layout.dirname or any((root / n).is_file() for n in layout.batch_files):
            return layout, root
    for layout in _LAYOUTS:
        if (root / layout.dirname).is_dir():
            return layout, root / layout.dirname
    for layout in _LAYOUTS:
        if (root / layout.archive).is_file():
            return None, root / layout.archive
    return None


def _missing_error(location: Path, layout: _Layout, missing: List[str]) -> CIFAR10Error:
    return CIFAR10Error(
        f"CIFAR-10 data at {location} is incomplete: missing {', '.join(missing)} "
        f"(a complete copy has {', '.join(layout.batch_files)})"
    )


def _load_directory(layout: _Layout, directory: Path) -> List[Tuple[str, Batch]]:
    missing = [n for n in layout.batch_files if not (directory / n).is_file()]
    if missing:
        raise _missing_error(directory, layout, missing)
    batches = []
    for name in layout.batch_files:
        path = directory / name
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise CIFAR10Error(f"cannot read {path}: {e}") from e
        batches.append((str(path), layout.parse(raw, str(path))))
    return batches


def _load_archive(archive: Path) -> List[Tuple[str, Batch]]:
    found: Dict[_Layout, Dict[str, bytes]] = {layout: {} for layout in _LAYOUTS}
    try:
        # Iterating streams through the gzip once; random access would re-decompress.
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) != 2:
                    continue
                for layout in _LAYOUTS:
                    if parts[0] == layout.dirname and parts[1] in layout.batch_files:
                        found[layout][parts[1]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise CIFAR10Error(f"cannot read archive {archive}: {type(e).__name__}: {e}") from e

    layout = next((lay for lay in _LAYOUTS if found[lay]), None)
    if layout is None:
        raise CIFAR10Error(
            f"{archive} is not a CIFAR-10 archive: it holds no batch files under "
            f"{_PYTHON.dirname}/ or {_BINARY.dirname}/"
        )
    files = found[layout]
    missing = [n for n in layout.batch_files if n not in files]
    if missing:
        raise _missing_error(archive, layout, missing)
    batches = []
    for name in layout.batch_files:
        source = f"{archive}:{layout.dirname}/{name}"
        batches.append((source, layout.parse(files.pop(name), source)))
    return batches


def _combine(batches: List[Tuple[str, Batch]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Every official batch has the same record count; a file that differs was most likely cut
    # short at a record boundary, which the per-file size checks cannot notice.
    first_source, (_, first_y) = batches[0]
    for source, (_, y) in batches[1:]:
        if len(y) != len(first_y):
            raise CIFAR10Error(
                f"{source} has {len(y)} images but {first_source} has {len(first_y)}; "
                "all CIFAR-10 batches hold the same number, so one of them is probably truncated"
            )
    # Copies throughout, so the results are writable and never alias read-only file buffers.
    x_train = np.concatenate([x for _, (x, _) in batches[:-1]])
    y_train = np.concatenate([y for _, (_, y) in batches[:-1]])
    x_test, y_test = (a.copy() for a in batches[-1][1])
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------- public API


def find_data_dir(explicit: Optional[PathLike] = None) -> Path:
    """Return where to look for CIFAR-10.

    Precedence: ``explicit`` (e.g. a ``--data DIR`` option) if given, else the environment
    variable ``LOSSK_CIFAR10``, else ``$XDG_CACHE_HOME/lossk/cifar10`` (``~/.cache/lossk/cifar10``
    when XDG_CACHE_HOME is unset). The path is not required to exist.
    """
    if explicit is not None and os.fspath(explicit) != "":
        return Path(explicit).expanduser()
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    cache = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return cache / "lossk" / "cifar10"


def load_cifar10(
    root: Optional[PathLike] = None, *, download: bool = False
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load CIFAR-10 as ``(x_train, y_train, x_test, y_test)``.

    ``x_train`` is uint8 of shape (50000, 3, 32, 32), ``y_train`` int64 of shape (50000,),
    ``x_test``/``y_test`` likewise with 10000 images. Pixels are channel-major RGB.

    ``root`` is the dataset itself (a ``cifar-10-batches-py``/``cifar-10-batches-bin`` folder or
    one of the official ``.tar.gz`` archives) or a folder containing one of them. ``None``
    resolves it with :func:`find_data_dir`. With ``download=True`` the python version is
    downloaded into ``root`` when no data is found there.

    Either the complete dataset is returned or :class:`CIFAR10Error` is raised, naming the file
    and the problem: missing data, missing or corrupt batch files, unsafe pickles, a failed
    download.
    """
    location = find_data_dir(root)
    found = _locate(location)
    if found is None:
        if not download:
            raise CIFAR10Error(_not_found_message(location, root))
        # A path naming the dataset itself (folder or archive) gets the download placed beside
        # it rather than inside a new folder of that name.
        dataset_names = {n for lay in _LAYOUTS for n in (lay.dirname, lay.archive)}
        dest = location.parent if location.name in dataset_names else location
        found = (_PYTHON, download_cifar10(dest))
    layout, path = found
    batches = _load_archive(path) if layout is None else _load_directory(layout, path)
    return _combine(batches)


def _not_found_message(location: Path, root: Optional[PathLike]) -> str:
    if root is not None:
        origin = ""
    elif os.environ.get(ENV_VAR):
        origin = f" (from ${ENV_VAR})"
    else:
        origin = " (the default cache folder)"
    looked_for = ", ".join(
        [f"{layout.dirname}/" for layout in _LAYOUTS] + [layout.archive for layout in _LAYOUTS]
    )
    return (
        f"CIFAR-10 not found at {location}{origin}: looked there for {looked_for}, or the batch "
        f"files themselves. Pass --data DIR pointing at a folder holding one of these, set "
        f"{ENV_VAR}=DIR, or allow downloading (download=True) to fetch {CIFAR10_URL} (about "
        f"163 MB) into {location}."
    )


def download_cifar10(dest_dir: PathLike) -> Path:
    """Download the python version of CIFAR-10 into ``dest_dir`` and extract it there.

    The archive is checked against :data:`CIFAR10_MD5` before it is kept (an archive already in
    ``dest_dir`` with the right checksum is reused), and ends up as
    ``dest_dir/cifar-10-python.tar.gz``. Only regular files under ``cifar-10-batches-py/`` are
    extracted, into ``dest_dir/cifar-10-batches-py`` (replacing any existing folder of that
    name); the folder only appears once complete. Returns the path of that folder.
    Announces the download (about 163 MB) with one line on stderr.
    """
    dest = Path(dest_dir).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CIFAR10Error(f"cannot create download folder {dest}: {e}") from e
    archive = dest / _PYTHON.archive
    if not (archive.is_file() and _file_md5(archive) == CIFAR10_MD5):
        _download_verified(CIFAR10_URL, archive, CIFAR10_MD5)
    return _extract_python_archive(archive, dest)


def _urlopen(url: str, timeout: float):
    """Open ``url``; a separate function so tests can serve data without a network."""
    return urllib.request.urlopen(url, timeout=timeout)


def _file_md5(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            md5.update(chunk)
    return md5.hexdigest()


def _download_verified(url: str, target: Path, expected_md5: str) -> None:
    # Downloading into a temporary file next to the target and renaming it only after the
    # checksum matched means an interrupted or corrupted download never looks like real data.
    print(f"Downloading CIFAR-10 from {url} to {target} ...", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        md5 = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            try:
                with _urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        md5.update(chunk)
                        out.write(chunk)
            except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets
                reason = getattr(e, "reason", e)
                raise CIFAR10Error(
                    f"could not download {url} ({reason}). If this machine has no network access, fetch "
                    f"{_PYTHON.archive} some other way and put it (or the extracted "
                    f"{_PYTHON.dirname}/) in {target.parent}, pass --data DIR, or set {ENV_VAR}=DIR."
                ) from e
            out.flush()
            os.fsync(out.fileno())
        actual = md5.hexdigest()
        if actual != expected_md5:
            raise CIFAR10Error(
                f"download of {url} is corrupt: MD5 {actual}, expected {expected_md5}; "
                "nothing was kept, try again"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _extract_python_archive(archive: Path, dest: Path) -> Path:
    target = dest / _PYTHON.dirname
    # Extract into a hidden staging folder and rename it into place at the end, so a failed
    # extraction never leaves a half-filled cifar-10-batches-py/ that would later look valid.
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=".cifar-10-extract-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    parts = _safe_member_parts(member, archive)
                    # Files are written by us under names we build, never via tar.extract, so
                    # links, devices and tar-supplied permissions cannot take effect.
                    if member.isfile() and len(parts) == 2 and parts[0] == _PYTHON.dirname:
                        with tar.extractfile(member) as src, open(staging / parts[1], "wb") as out:
                            shutil.copyfileobj(src, out, _CHUNK)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise CIFAR10Error(f"cannot extract {archive} into {dest}: {type(e).__name__}: {e}") from e
        missing = [n for n in _PYTHON.batch_files if not (staging / n).is_file()]
        if missing:
            raise _missing_error(archive, _PYTHON, missing)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _safe_member_parts(member: tarfile.TarInfo, archive: Path) -> Tuple[str, ...]:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise CIFAR10Error(
            f"{archive} is unsafe: member {member.name!r} points outside the extraction folder; "
            "refusing to extract it"
        )
    return path.parts


def normalize(x: np.ndarray) -> np.ndarray:
    """Scale uint8 pixels to float32 in [0, 1] (divide by 255, like torchvision's ToTensor)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise TypeError(f"normalize expects uint8 pixels, got {x.dtype}")
    return np.divide(x, np.float32(255), dtype=np.float32)
