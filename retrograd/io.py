"""``rg.save`` / ``rg.load``: checkpoints as safetensors files, written atomically.

Layout of a file written by :func:`save`:

- every array (tensor, ``np.ndarray``) is a safetensors tensor. A flat ``{str: tensor}`` dict
  (a model ``state_dict``) keeps its keys, so ``safetensors.torch.load_file`` reads it as is;
  nested objects get dotted keys built from their path (``optim.state.0.exp_avg``);
- everything else (dicts with any JSON-able keys, lists, tuples, numbers, strings, ``None``)
  is JSON in the safetensors ``__metadata__`` under ``retrograd.structure``, with tensors
  replaced by references to their key;
- ``retrograd.crc32`` holds a CRC-32 of each tensor and of the structure, so flipped bytes are
  detected at load time, not only truncation.

Nothing is unpickled, ever: loading cannot execute code (``weights_only`` is always true).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zlib
from typing import Any

import numpy as np

from .tensor import Tensor

__all__ = ["save", "load"]

_STRUCT = "retrograd.structure"
_CRC = "retrograd.crc32"
_FORMAT_VERSION = "1"


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _key(self, path: list[str]) -> str:
        base = ".".join(path) if path else "tensor"
        key, n = base, 1
        while key in self.arrays:
            key, n = f"{base}#{n}", n + 1
        return key

    def _array(self, arr: np.ndarray, path: list[str]) -> str:
        if arr.dtype == object or arr.dtype.kind not in "biufc":
            raise TypeError(
                f"rg.save: cannot store an array of dtype {arr.dtype} at {'.'.join(path)!r}"
            )
        key = self._key(path)
        # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
        self.arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return key

    def encode(self, obj: Any, path: list[str]) -> Any:
        from .nn.parameter import Parameter

        if isinstance(obj, Tensor):
            node: dict[str, Any] = {"__tensor__": self._array(obj._data, path)}
            if isinstance(obj, Parameter):
                node["param"] = bool(obj.requires_grad)
            return node
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": self._array(obj, path)}
        if isinstance(obj, np.generic):
            return {"__npscalar__": self._array(np.asarray(obj), path)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, path + [str(i)]) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, path + [str(i)]) for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.encode(v, path + [k]) for k, v in obj.items()}
            items = []
            for k, v in obj.items():
                if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
                    raise TypeError(f"rg.save: unsupported dict key type {type(k).__name__}")
                items.append([self.encode(k, path), self.encode(v, path + [str(k)])])
            return {"__dict__": items}
        raise TypeError(
            f"rg.save stores tensors, arrays, numbers, strings, None and dicts/lists/tuples of "
            f"them; got {type(obj).__name__} at {'.'.join(path) or '<root>'!r}"
        )


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    from .nn.parameter import Parameter

    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if isinstance(node, dict):
        if "__tensor__" in node:
            t = Tensor._make(arrays[node["__tensor__"]])
            if "param" in node:
                return Parameter(t, requires_grad=node["param"])
            return t
        if "__ndarray__" in node:
            return arrays[node["__ndarray__"]]
        if "__npscalar__" in node:
            return arrays[node["__npscalar__"]][()]
        if "__tuple__" in node:
            return tuple(_decode(v, arrays) for v in node["__tuple__"])
        if "__dict__" in node:
            return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in node["__dict__"]}
        return {k: _decode(v, arrays) for k, v in node.items()}
    return node


def _hashable(k: Any) -> Any:
    return tuple(_hashable(v) for v in k) if isinstance(k, list) else k


def _crc(arr: np.ndarray) -> int:
    return zlib.crc32(memoryview(arr).cast("B")) if arr.size else 0


def _serialize(obj: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    enc = _Encoder()
    flat_state_dict = (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )
    structure = enc.encode(obj, [])
    struct_json = json.dumps(structure, separators=(",", ":"))
    crcs = {k: _crc(a) for k, a in enc.arrays.items()}
    crcs["__structure__"] = zlib.crc32(struct_json.encode())
    meta = {
        "format": "pt" if flat_state_dict else "retrograd",
        "retrograd.version": _FORMAT_VERSION,
        _STRUCT: struct_json,
        _CRC: json.dumps(crcs, separators=(",", ":")),
    }
    return enc.arrays, meta


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(
    obj: Any, f: str | os.PathLike | Any, pickle_module: Any = pickle, pickle_protocol: int = 2
) -> None:
    """Save ``obj`` (a state dict or any nesting of dicts/lists/tuples of tensors, arrays,
    numbers, strings and ``None``) to ``f`` in the safetensors format. ``pickle_module`` and
    ``pickle_protocol`` are accepted for PyTorch compatibility and unused: nothing is pickled.

    The write is atomic: data goes to a temporary file in the same directory, is flushed and
    fsynced, then renamed over ``f``; if anything fails the previous file is left intact.
    ``f`` may also be a writable binary file object.

    >>> import os, tempfile, retrograd as rg
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> rg.save({"w": rg.ones(2), "step": 3}, path)
    >>> rg.load(path)["step"]
    3
    """
    import safetensors.numpy as stn

    arrays, meta = _serialize(obj)
    if hasattr(f, "write"):
        f.write(stn.save(arrays, metadata=meta))
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    os.close(fd)
    try:
        stn.save_file(arrays, tmp, metadata=meta)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _corrupt(path: str, why: str) -> RuntimeError:
    return RuntimeError(f"rg.load: {path!r} is a corrupt or truncated checkpoint ({why})")


def _check_header(raw_head: bytes, size: int, path: str) -> None:
    if raw_head[:2] == b"PK" or raw_head[:1] == b"\x80":
        raise RuntimeError(
            f"rg.load: {path!r} is a pickle/zip checkpoint (torch.save format). retrograd never "
            "unpickles files because that can execute arbitrary code; convert it with "
            "safetensors.torch.save_file(state_dict, path) and load that instead"
        )
    if size < 8:
        raise _corrupt(path, f"file has {size} bytes, a safetensors header needs at least 8")
    n = int.from_bytes(raw_head[:8], "little")
    if n <= 0 or 8 + n > size:
        raise _corrupt(path, f"header claims {n} bytes but the file has {size}")


def load(
    f: str | os.PathLike | Any,
    map_location: Any = None,
    pickle_module: Any = None,
    *,
    weights_only: bool | None = None,
    mmap: bool | None = None,
    **pickle_load_args: Any,
) -> Any:
    """Load an object saved by :func:`save`, or any safetensors file (then a flat
    ``{name: Tensor}`` dict, e.g. from ``safetensors.torch.save_file(model.state_dict())``).

    ``map_location`` and ``mmap`` are accepted for PyTorch compatibility (everything lives on
    the CPU); ``weights_only`` is always effectively ``True``: no code is ever executed while
    loading, so a ``pickle_module`` is refused. A truncated or damaged file raises
    ``RuntimeError`` naming the path.

    >>> import io, retrograd as rg
    >>> buf = io.BytesIO(); rg.save({"w": rg.zeros(1)}, buf); _ = buf.seek(0)
    >>> rg.load(buf)["w"]
    tensor([0.])
    """
    import safetensors.numpy as stn

    if pickle_module is not None:
        raise RuntimeError(
            "rg.load: cannot use a pickle_module: retrograd checkpoints are safetensors files "
            "and loading never unpickles (weights_only is always True)"
        )
    if hasattr(f, "read"):
        raw = f.read()
        name = getattr(f, "name", "<file object>")
        _check_header(raw[:8], len(raw), name)
        try:
            n = int.from_bytes(raw[:8], "little")
            header = json.loads(raw[8 : 8 + n])
            meta = header.get("__metadata__") or {}
            arrays = stn.load(raw)
        except Exception as e:  # noqa: BLE001 - any parse failure means a damaged file
            raise _corrupt(name, f"{type(e).__name__}: {e}") from None
        return _finish(arrays, meta, name)
    path = os.fspath(f)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    _check_header(head, size, path)
    try:
        from safetensors import safe_open

        special = _special_dtypes(path)
        with safe_open(path, framework="numpy") as sf:
            meta = sf.metadata() or {}
            arrays = {k: sf.get_tensor(k) for k in sf.keys() if k not in special}
    except _UnsupportedDtype:
        raise
    except Exception as e:  # noqa: BLE001
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    if special:
        arrays.update(_read_special(path, special))
    return _finish(arrays, meta, path)


class _UnsupportedDtype(TypeError):
    pass


def _special_dtypes(path: str) -> dict[str, dict]:
    """Header entries whose dtype NumPy lacks (``BF16``: read as float32, exactly)."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] == "BF16":
            out[k] = dict(v, base=8 + n)
        elif v["dtype"].startswith("F8") or v["dtype"] in ("F4", "F6_E2M3", "F6_E3M2", "E8M0"):
            raise _UnsupportedDtype(
                f"rg.load: {path!r}: tensor {k!r} has dtype {v['dtype']}, which retrograd "
                "(NumPy) cannot represent"
            )
    return out


def _read_special(path: str, entries: dict[str, dict]) -> dict[str, np.ndarray]:
    out = {}
    with open(path, "rb") as fh:
        for k, v in entries.items():
            start, end = v["data_offsets"]
            fh.seek(v["base"] + start)
            raw = np.frombuffer(fh.read(end - start), dtype="<u2")
            if raw.size != int(np.prod(v["shape"], dtype=np.int64)):
                raise _corrupt(path, f"tensor {k!r} is short")
            # bfloat16 is the top half of a float32: widening is exact
            out[k] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(v["shape"])
    return out


def _finish(arrays: dict[str, np.ndarray], meta: dict[str, str], path: str) -> Any:
    arrays = {k: (a if a.flags.writeable else a.copy()) for k, a in arrays.items()}
    if _CRC in meta:
        try:
            crcs = json.loads(meta[_CRC])
        except ValueError:
            raise _corrupt(path, "checksum table unreadable") from None
        if set(crcs) - {"__structure__"} != set(arrays):
            raise _corrupt(path, "tensor names do not match the checksum table")
        for k, a in arrays.items():
            if _crc(a) != crcs[k]:
                raise _corrupt(path, f"checksum mismatch in tensor {k!r}")
        if _STRUCT in meta and zlib.crc32(meta[_STRUCT].encode()) != crcs.get("__structure__"):
            raise _corrupt(path, "checksum mismatch in the structure metadata")
    if _STRUCT not in meta:
        return {k: Tensor._make(a) for k, a in arrays.items()}
    try:
        structure = json.loads(meta[_STRUCT])
        return _decode(structure, arrays)
    except (ValueError, KeyError, TypeError) as e:
        raise _corrupt(path, f"structure metadata unreadable: {e}") from None
