"""A GGUF file's metadata and tensors, read straight from a memory map.

``gguf.GGUFReader`` builds a numpy view for every part of every metadata string (about two
seconds for a 49k-token vocabulary, most of a first load); here the header is parsed with
``struct`` over the map and tensor data stays in the map until a tensor is converted. Lengths
in the file are checked against its size, so a corrupt length is an error, not a huge
allocation. The interface is the subset of ``GGUFReader``'s the converter uses: ``fields``
(with ``contents()``) and ``tensors`` (``name``, ``tensor_type``, ``shape``, ``n_elements``,
``n_bytes``, ``data``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

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
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
          6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}  # fmt: skip


class GGUFFormatError(ValueError):
    """The file is not well-formed GGUF (the message says where)."""


class Truncated(GGUFFormatError):
    pass


@dataclass
class Field:
    value: Any

    def contents(self) -> Any:
        return self.value


@dataclass
class Tensor:
    name: str
    tensor_type: GGMLQuantizationType
    shape: np.ndarray  # dimensions fastest first, as GGUF lists them
    n_elements: int
    n_bytes: int
    data: np.ndarray  # float types: typed, torch order; quantized: uint8 [rows, bytes per row]


class GGUFFile:
    def __init__(self, path: Path) -> None:
        self.map = np.memmap(path, dtype=np.uint8, mode="r")
        self.buf = memoryview(self.map)  # type: ignore[arg-type]
        self.pos = 0
        if bytes(self._take(4)) != b"GGUF":
            raise GGUFFormatError("it does not start with 'GGUF'")
        version, n_tensors, n_kv = self._unpack("I"), self._unpack("Q"), self._unpack("Q")
        if version not in (2, 3):
            raise GGUFFormatError(f"GGUF version {version} is not supported (2 or 3)")
        self.fields: dict[str, Field] = {}
        for _ in range(n_kv):
            key = self._string()
            self.fields[key] = Field(self._value(self._unpack("I")))
        infos = []
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._unpack("I")
            if n_dims > 8:
                raise GGUFFormatError(f"tensor {name!r} has {n_dims} dimensions")
            dims = [self._unpack("Q") for _ in range(n_dims)]
            ttype, offset = self._unpack("I"), self._unpack("Q")
            try:
                qtype = GGMLQuantizationType(ttype)
            except ValueError:
                raise GGUFFormatError(f"{ttype} is not a valid GGMLQuantizationType") from None
            infos.append((name, qtype, dims, offset))
        align = int(self.fields.get("general.alignment", Field(32)).value or 32)
        start = -(-self.pos // align) * align
        self.tensors = [self._tensor(start, *info) for info in infos]

    def _tensor(self, start: int, name: str, qtype: GGMLQuantizationType, dims: list[int],
                offset: int) -> Tensor:  # fmt: skip
        n = int(np.prod(dims)) if dims else 1
        block, size = GGML_QUANT_SIZES[qtype]
        if n % block:
            raise GGUFFormatError(f"tensor {name!r}: {n} values do not fill {qtype.name} blocks")
        nbytes = n // block * size
        begin = start + offset
        if begin + nbytes > len(self.map):
            raise Truncated(f"tensor {name!r} ends past the end of the file")
        raw = self.map[begin : begin + nbytes]
        torch_shape = tuple(reversed(dims)) or (1,)
        data: np.ndarray
        if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            dtype = np.float32 if qtype == GGMLQuantizationType.F32 else np.float16
            data = raw.view(dtype).reshape(torch_shape)
        else:
            data = raw.reshape(-1, dims[0] // block * size if dims else nbytes)
        return Tensor(name, qtype, np.array(dims, dtype=np.uint64), n, nbytes, data)

    # -- parsing helpers -------------------------------------------------------------------

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise Truncated("the header ends early")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def _unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        return struct.unpack("<" + fmt, self._take(size))[0]

    def _string(self) -> str:
        raw = bytes(self._take(self._unpack("Q")))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFFormatError("a metadata string is not UTF-8") from None

    def _strings(self, count: int) -> list[str]:
        """An array of ``count`` strings (a vocabulary: 49k-262k of them), in one tight loop:
        ``_string`` a string takes 3x as long."""
        buf, pos, end = self.buf, self.pos, len(self.buf)
        out: list[str] = []
        append, number = out.append, int.from_bytes
        try:
            for _ in range(count):
                n = number(buf[pos : pos + 8], "little")
                if pos + 8 + n > end:
                    raise Truncated("the header ends early")
                append(str(buf[pos + 8 : pos + 8 + n], "utf-8"))
                pos += 8 + n
        except UnicodeDecodeError:
            raise GGUFFormatError("a metadata string is not UTF-8") from None
        self.pos = pos
        return out

    def _value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self._unpack(_SCALARS[vtype])
        if vtype == 8:
            return self._string()
        if vtype == 9:
            etype, count = self._unpack("I"), self._unpack("Q")
            if etype in _NUMPY:
                itemsize = np.dtype(_NUMPY[etype]).itemsize
                raw = self._take(count * itemsize)
                return np.frombuffer(raw, dtype=_NUMPY[etype]).tolist()
            if count > len(self.buf) - self.pos:  # every element takes at least a byte
                raise Truncated("an array is longer than the file")
            if etype == 8:
                return self._strings(count)
            return [self._value(etype) for _ in range(count)]
        raise GGUFFormatError(f"unknown metadata value type {vtype}")
