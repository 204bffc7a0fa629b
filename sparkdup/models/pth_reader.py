"""Read a PyTorch ``.pth`` state dict with numpy only (no torch, no arbitrary code).

A ``.pth`` file is a pickle. Unpickling runs whatever callables the pickle names, so a
plain ``pickle.load`` on a downloaded file is remote code execution. This reader uses a
restricted :class:`pickle.Unpickler` whose ``find_class`` resolves only the few globals a
state dict needs to rebuild its tensors (``torch._utils._rebuild_tensor_v2``, the typed
storage classes, ``collections.OrderedDict``) to harmless local stand-ins, and raises
:class:`UnsafePickleError` for anything else, before it is ever called.

Both serialisations torch has written since 1.0 are handled:

* the zip format (torch >= 1.6): ``<root>/data.pkl`` plus one raw file per storage under
  ``<root>/data/<key>``;
* the legacy stream format (torch < 1.6): five pickles back to back (magic number,
  protocol version, system info, the object, the list of storage keys), then each
  storage as an 8-byte little-endian element count followed by its raw bytes.

The even older tar format (torch < 0.4) is recognised and refused with a clear error.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import tarfile
import zipfile
from typing import Any, BinaryIO, Callable

import numpy as np

__all__ = ["UnsafePickleError", "PthFormatError", "load_state_dict", "RestrictedUnpickler"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global that is not on the allow-list."""


class PthFormatError(ValueError):
    """The file is not a state dict this reader understands."""


# torch storage class name -> numpy dtype (little-endian, as torch writes on x86/ARM).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 after reading
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only carries the dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __repr__(self) -> str:
        return f"<storage {self.name}>"


class _Storage:
    """A flat typed buffer, filled in later for the legacy format."""

    __slots__ = ("stype", "numel", "array")

    def __init__(self, stype: _StorageType, numel: int):
        self.stype = stype
        self.numel = int(numel)
        self.array: np.ndarray | None = None


class _LazyTensor:
    """A tensor whose storage bytes may arrive after the pickle (legacy format)."""

    __slots__ = ("storage", "offset", "size", "stride", "view_offset")

    def __init__(self, storage, offset, size, stride, view_offset=0):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        self.view_offset = int(view_offset)

    def materialize(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise PthFormatError("tensor storage was never read from the file")
        start = self.view_offset + self.offset
        if not self.size:
            return np.array(flat[start], dtype=flat.dtype)
        itemsize = flat.dtype.itemsize
        extent = 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=flat.dtype)
        if start < 0 or start + extent > flat.size or any(s < 0 for s in self.stride):
            raise PthFormatError("tensor view falls outside its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[start:], shape=self.size, strides=tuple(s * itemsize for s in self.stride), writeable=False
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    if not isinstance(storage, (_Storage, _OffsetStorage)):
        raise PthFormatError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) or len(size) != len(stride):
        raise PthFormatError("tensor size and stride do not match")
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


# (module, name) -> what the restricted unpickler hands back instead of the real object.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
}
for _name in _STORAGE_DTYPES:
    _ALLOWED[("torch", _name)] = _StorageType(_name)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals, to local stand-ins.

    ``persistent_load`` is supplied by the caller (it differs between the zip and the
    legacy formats); without one, any persistent id is refused.
    """

    def __init__(self, file: BinaryIO, persistent_load: Callable[[Any], Any] | None = None):
        super().__init__(file)
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle API
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: a state dict never needs it, "
                "and unpickling it could run arbitrary code"
            ) from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle API
        if self._persistent is None:
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _restricted_load(f: BinaryIO, persistent_load=None) -> Any:
    return RestrictedUnpickler(f, persistent_load).load()


def _as_str(x: Any) -> str:
    return x.decode("ascii") if isinstance(x, bytes) else str(x)


def _check_storage_pid(pid: Any) -> tuple:
    if not isinstance(pid, tuple) or not pid or _as_str(pid[0]) != "storage":
        raise UnsafePickleError(f"unexpected persistent id {pid!r}")
    if not isinstance(pid[1], _StorageType):
        raise PthFormatError(f"unsupported storage type {pid[1]!r}")
    return pid


def _finish(obj: Any) -> Any:
    """Replace every tensor stand-in in a (nested) container with a numpy array."""
    if isinstance(obj, _LazyTensor):
        arr = obj.materialize()
        if obj.storage.stype.name == "BFloat16Storage":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _finish(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _finish(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finish(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_finish(v) for v in obj)
    return obj


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkls) != 1:
            raise PthFormatError(f"{path}: zip archive without exactly one data.pkl")
        root = pkls[0][: -len("data.pkl")]
        byteorder = "little"
        if root + "byteorder" in names:
            byteorder = zf.read(root + "byteorder").decode("ascii").strip()
        storages: dict[str, _Storage] = {}

        def persistent_load(pid):
            _, stype, key, _location, numel = _check_storage_pid(pid)[:5]
            key = _as_str(key)
            if key not in storages:
                st = _Storage(stype, numel)
                raw = zf.read(f"{root}data/{key}")
                dt = stype.dtype if byteorder == "little" else stype.dtype.newbyteorder(">")
                st.array = np.frombuffer(raw, dtype=dt).astype(stype.dtype, copy=False)
                storages[key] = st
            return storages[key]

        with zf.open(pkls[0]) as f:
            obj = _restricted_load(io.BytesIO(f.read()), persistent_load)
    return _finish(obj)


def _load_legacy(f: BinaryIO) -> Any:
    magic = _restricted_load(f)
    if magic != LEGACY_MAGIC:
        raise PthFormatError("not a torch file: bad magic number")
    protocol = _restricted_load(f)
    if protocol != LEGACY_PROTOCOL:
        raise PthFormatError(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _restricted_load(f)
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise PthFormatError("big-endian legacy files are not supported")

    storages: dict[str, _Storage] = {}

    def persistent_load(pid):
        pid = _check_storage_pid(pid)
        if len(pid) == 6:
            _, stype, root_key, _location, numel, view_metadata = pid
        else:
            raise PthFormatError(f"unexpected legacy storage id {pid!r}")
        root_key = _as_str(root_key)
        if root_key not in storages:
            storages[root_key] = _Storage(stype, numel)
        root = storages[root_key]
        if view_metadata is None:
            return root
        # A storage view: (view_key, element offset into root, size). Rare since torch 0.4.
        _view_key, offset, _size = view_metadata
        return _OffsetStorage(root, int(offset))

    obj = _restricted_load(f, persistent_load)
    keys = _restricted_load(f)
    if not isinstance(keys, list):
        raise PthFormatError("legacy file: storage key list missing")
    for key in keys:
        key = _as_str(key)
        st = storages.get(key)
        if st is None:
            raise PthFormatError(f"legacy file: storage {key} listed but never referenced")
        head = f.read(8)
        if len(head) != 8:
            raise PthFormatError("legacy file truncated")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * st.stype.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise PthFormatError("legacy file truncated")
        st.array = np.frombuffer(raw, dtype=st.stype.dtype)
    return _finish(_resolve_views(obj))


class _OffsetStorage:
    """A legacy storage view: a root storage plus an element offset."""

    __slots__ = ("root", "offset")

    def __init__(self, root: _Storage, offset: int):
        self.root = root
        self.offset = offset


def _resolve_views(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor) and isinstance(obj.storage, _OffsetStorage):
        return _LazyTensor(obj.storage.root, obj.offset, obj.size, obj.stride, obj.storage.offset)
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _resolve_views(obj[k])
        return obj
    if isinstance(obj, list):
        return [_resolve_views(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve_views(v) for v in obj)
    return obj


def load_state_dict(path: str | os.PathLike) -> "collections.OrderedDict[str, np.ndarray]":
    """Load a ``.pth`` state dict as an ordered ``{name: numpy array}``.

    Raises :class:`UnsafePickleError` if the file's pickle names any global outside the
    allow-list (nothing from the file is executed), :class:`PthFormatError` if the file is
    not a torch serialisation this reader supports.
    """
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] != b"\x80" and tarfile.is_tarfile(path):
            raise PthFormatError(f"{path}: the tar-based torch format (torch < 0.4) is not supported")
        with open(path, "rb") as f:
            obj = _load_legacy(f)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise PthFormatError(f"{path}: top-level object is {type(obj).__name__}, not a state dict")
    out: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
    for k, v in obj.items():
        if not isinstance(v, np.ndarray):
            raise PthFormatError(f"{path}: entry {k!r} is {type(v).__name__}, not a tensor")
        out[_as_str(k)] = v
    return out
