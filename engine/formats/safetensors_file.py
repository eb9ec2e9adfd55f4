"""Read a ``.safetensors`` file with plain reads into tensors we own, or map it.

``safetensors.safe_open`` memory-maps the file, and every page a tensor was read from stays in
the process's RSS until the map goes away; for a float32 file cast to bfloat16 that is the whole
file on top of the model. Reading each tensor with ``readinto`` into a fresh buffer keeps only
the model (plus one tensor in transit) resident.

Where every tensor is used as it is stored (a converted GGUF cache whose blocks the kernels
read), ``mapped=True`` maps the file instead (private, copy-on-write) and the tensors are views
of the map: no copy at all, the pages shared with the page cache, the load shorter by the time
a copy of the file takes. Only for files that are never rewritten in place (our own cache,
written to a new folder and renamed): a file truncated under a live map would fault on access.

The format: an 8-byte little-endian header length, a JSON header mapping each name to its
``dtype``, ``shape`` and ``data_offsets`` (relative to the end of the header), then the data.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import sys
from io import FileIO
from pathlib import Path
from typing import Any, cast

import torch

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
# The safetensors library refuses headers above 100 MB; so do we (a garbage length would
# otherwise ask for gigabytes).
MAX_HEADER_BYTES = 100_000_000
# Tensors cast on the way in pass through a buffer of this size.
STAGING_BYTES = 16 << 20


class SafetensorsFormatError(ValueError):
    """The file is not a well-formed safetensors file (corrupt or truncated)."""


def read_safetensors(
    path: Path, dtype: torch.dtype | None = None, *, mapped: bool = False
) -> dict[str, torch.Tensor]:
    """All tensors of ``path``; floating-point ones are cast to ``dtype`` as each is read, so a
    float32 file never sits in memory twice. ``mapped``: tensors that need no cast are views of
    a private map of the file (see the module's note). Raises ``SafetensorsFormatError`` or
    ``OSError``."""
    if sys.byteorder != "little":  # the file is little-endian; we read its bytes as they are
        raise SafetensorsFormatError("reading safetensors needs a little-endian machine")
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        entries, data_start = _read_header(f, size)
        whole = _map(f) if mapped else None
        staging = torch.empty(0, dtype=torch.uint8)
        tensors: dict[str, torch.Tensor] = {}
        # In file order: the reads go forward through the file.
        for name, (tdtype, shape, begin, end) in sorted(entries.items(), key=lambda e: e[1][2]):
            as_stored = dtype is None or not tdtype.is_floating_point or tdtype == dtype
            offset = data_start + begin
            if whole is not None and as_stored and end > begin and offset % tdtype.itemsize == 0:
                raw = torch.frombuffer(whole, dtype=torch.uint8, count=end - begin, offset=offset)
                tensors[name] = raw.view(tdtype).reshape(shape)  # the view keeps the map alive
                continue
            f.seek(offset)
            if as_stored:
                t = torch.empty(shape, dtype=tdtype)
                _read_exactly(f, t.reshape(-1).view(torch.uint8), name)
            else:
                assert dtype is not None  # not as stored: a cast was asked for
                if staging.numel() == 0:
                    staging = torch.empty(STAGING_BYTES, dtype=torch.uint8)
                t = _read_cast(f, tdtype, shape, dtype, staging, name)
            tensors[name] = t
    return tensors


def _map(f: FileIO) -> mmap.mmap | None:
    """A private map of the whole file (copy-on-write: an in-place change to a weight stays
    in this process), or None where the file system cannot map it (then it is read)."""
    try:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None


def _read_cast(
    f: FileIO,
    src: torch.dtype,
    shape: list[int],
    dst: torch.dtype,
    staging: torch.Tensor,
    name: str,
) -> torch.Tensor:
    """Read a ``src`` tensor into a new ``dst`` one through the ``staging`` buffer, chunk by
    chunk: no full-size ``src`` copy is ever allocated (which would also fragment the heap)."""
    out = torch.empty(shape, dtype=dst)
    flat = out.reshape(-1)
    step = staging.numel() // src.itemsize
    for i in range(0, flat.numel(), step):
        n = min(step, flat.numel() - i)
        chunk = staging[: n * src.itemsize]
        _read_exactly(f, chunk, name)
        flat[i : i + n].copy_(chunk.view(src))
    return out


def _read_header(
    f: FileIO, size: int
) -> tuple[dict[str, tuple[torch.dtype, list[int], int, int]], int]:
    """Parsed and checked header entries, and the offset where the data starts."""
    raw = f.read(8)
    if len(raw) < 8:
        raise SafetensorsFormatError(f"file of {size} bytes is too short for a header")
    (n,) = struct.unpack("<Q", raw)
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise SafetensorsFormatError(f"header length {n} does not fit in a file of {size} bytes")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsFormatError(f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsFormatError("header is not a JSON object")
    data_start = 8 + n
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(name, info, size - data_start)
    return entries, data_start


def _entry(name: str, info: Any, data_size: int) -> tuple[torch.dtype, list[int], int, int]:
    if (
        isinstance(info, dict)
        and isinstance(info.get("dtype"), str)
        and info["dtype"] not in DTYPES
    ):
        raise SafetensorsFormatError(f"tensor {name!r} has unsupported dtype {info['dtype']}")
    try:
        tdtype = DTYPES[info["dtype"]]
        shape = [int(d) for d in info["shape"]]
        begin, end = (int(o) for o in info["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise SafetensorsFormatError(f"tensor {name!r} has a malformed header entry") from None
    if any(d < 0 for d in shape) or not 0 <= begin <= end:
        raise SafetensorsFormatError(f"tensor {name!r} has a negative size or offset")
    nbytes = math.prod(shape) * tdtype.itemsize
    if end - begin != nbytes:
        raise SafetensorsFormatError(
            f"tensor {name!r} spans {end - begin} bytes but its shape {shape} needs {nbytes}"
        )
    if end > data_size:
        raise SafetensorsFormatError(
            f"tensor {name!r} ends at byte {end} of the data, which has only {data_size}"
        )
    return tdtype, shape, begin, end


def _read_exactly(f: FileIO, buf: torch.Tensor, name: str) -> None:
    """Fill the contiguous uint8 tensor ``buf`` from ``f``."""
    if buf.numel() == 0:
        return
    view = memoryview(cast(Any, buf.numpy())).cast("B")  # numpy stubs: no Buffer before 3.12
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise SafetensorsFormatError(f"file ends inside tensor {name!r}")
        got += n
