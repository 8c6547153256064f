"""Read a PyTorch checkpoint's tensors into NumPy without installing torch.

`torch` from PyPI pulls gigabytes of CUDA libraries; the checkpoints we need are plain
`torch.save` files, whose two formats are documented: the legacy one (a magic-number pickle, a
protocol pickle, a system-info pickle, the object pickle whose storages are persistent ids, the
list of storage keys, then each storage as an int64 element count followed by its raw
little-endian bytes) and the zip one (`archive/data.pkl` plus `archive/data/<key>` files).
Only tensors, OrderedDicts and builtin containers are rebuilt; any other class is refused, so a
hostile pickle cannot run code.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detection.errors import DetectionError

_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointError(DetectionError, ValueError):
    """A file that is not a PyTorch checkpoint this reader understands."""


class _Storage:
    """A storage placeholder filled with data once its bytes are read."""

    def __init__(self, dtype: np.dtype, size: int | None):
        self.dtype, self.size, self.data = np.dtype(dtype), size, None


class _Tensor:
    """A tensor's view of a storage, materialised after every storage is read."""

    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def numpy(self) -> np.ndarray:
        item = self.storage.dtype.itemsize
        base = self.storage.data[self.offset:]
        view = np.lib.stride_tricks.as_strided(
            base, self.shape, tuple(s * item for s in self.stride), writeable=False)
        return np.array(view)


def _rebuild_tensor(storage, offset, shape, stride, *_):
    return _Tensor(storage, offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle, storages: dict[str, _Storage]):
        super().__init__(handle)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which is not a tensor")

    def persistent_load(self, pid) -> _Storage:
        _, dtype, key, _location, size = pid[:5]
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, size)
        return self.storages[key]


def _read_legacy(handle: io.BufferedIOBase) -> Any:
    if pickle.load(handle) != _MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (bad magic number)")
    pickle.load(handle)  # protocol version
    sys_info = pickle.load(handle)
    if not sys_info.get("little_endian", True):
        raise CheckpointError("big-endian checkpoints are not supported")
    storages: dict[str, _Storage] = {}
    result = _Unpickler(handle, storages).load()
    for key in pickle.load(handle):
        storage = storages[key]
        (count,) = struct.unpack("<q", handle.read(8))
        raw = handle.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise CheckpointError(f"checkpoint truncated in storage {key}")
        storage.data = np.frombuffer(raw, storage.dtype)
    return result


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        pkl = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        root = pkl[: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        result = _Unpickler(io.BytesIO(archive.read(pkl)), storages).load()
        for key, storage in storages.items():
            storage.data = np.frombuffer(archive.read(f"{root}data/{key}"), storage.dtype)
    return result


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The name -> array mapping saved in a `torch.save(model.state_dict())` file."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            raw = _read_zip(path)
        else:
            with open(path, "rb") as handle:
                raw = _read_legacy(handle)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, StopIteration) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({error})") from error
    if isinstance(raw, dict) and "state_dict" in raw:
        raw = raw["state_dict"]
    return {name: value.numpy() for name, value in raw.items() if isinstance(value, _Tensor)}
