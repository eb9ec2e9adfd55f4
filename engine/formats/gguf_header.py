"""A fast look at a GGUF file's header: scalar metadata and tensor types, no weights.

``gguf.GGUFReader`` parses every vocabulary string into numpy views (about 2 s for a 49k-token
vocabulary); a summary needs none of that, so arrays are skipped here and kept as their length.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Any

from engine.errors import ModelLoadError

# GGUFValueType -> struct format of a scalar (8: string, 9: array are handled apart).
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}


class _Truncated(Exception):
    pass


def _read(f: IO[bytes], n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise _Truncated
    return b


def _unpack(f: IO[bytes], fmt: str) -> Any:
    return struct.unpack("<" + fmt, _read(f, struct.calcsize(fmt)))[0]


def _string(f: IO[bytes]) -> str:
    return _read(f, _unpack(f, "Q")).decode("utf-8", errors="replace")


def _value(f: IO[bytes], vtype: int) -> Any:
    if vtype in _SCALARS:
        return _unpack(f, _SCALARS[vtype])
    if vtype == 8:
        return _string(f)
    if vtype == 9:
        etype, count = _unpack(f, "I"), _unpack(f, "Q")
        if etype in _SCALARS:
            f.seek(count * struct.calcsize(_SCALARS[etype]), 1)
        else:
            for _ in range(count):
                _value(f, etype)
        return count  # arrays: only their length
    raise ValueError(f"unknown metadata value type {vtype}")


def read_header(path: Path) -> tuple[dict[str, Any], list[tuple[str, int, int]]]:
    """``(metadata, tensors)``: arrays in ``metadata`` are replaced by their length; each
    tensor is ``(name, ggml type id, number of elements)``."""
    try:
        with Path(path).open("rb") as f:
            if _read(f, 4) != b"GGUF":
                raise ModelLoadError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
            version, n_tensors, n_kv = _unpack(f, "I"), _unpack(f, "Q"), _unpack(f, "Q")
            if version not in (2, 3):
                raise ModelLoadError(f"{path}: GGUF version {version} is not supported (2 or 3)")
            meta: dict[str, Any] = {}
            for _ in range(n_kv):
                key = _string(f)
                meta[key] = _value(f, _unpack(f, "I"))
            tensors = []
            for _ in range(n_tensors):
                name = _string(f)
                dims = [_unpack(f, "Q") for _ in range(_unpack(f, "I"))]
                ttype, _offset = _unpack(f, "I"), _unpack(f, "Q")
                n = 1
                for d in dims:
                    n *= d
                tensors.append((name, ttype, n))
            return meta, tensors
    except _Truncated:
        raise ModelLoadError(
            f"{path} is truncated (its header ends early); download it again"
        ) from None
    except (OSError, ValueError, struct.error) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from None
