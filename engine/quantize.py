"""Weight-only quantization: quantized weights stay quantized in files and in memory.

Three forms, all for the weight ``[out, in]`` of a linear layer (or an embedding table):

- **int4**: groups of ``GROUP`` consecutive inputs share a scale and a zero point,
  ``w = (q - 8) * scale + zero`` with ``q`` in 0..15 (GGUF's Q4_0, Q4_1 and Q4_K map onto it
  exactly: Q4_K's sub-blocks are 32 wide). Multiplied by ``_weight_int4pack_mm_for_cpu``.
  Also what ``--quant int4`` makes of float weights.
- **int8**: one scale per output row, ``w = q * scale`` with ``q`` in -127..127 (GGUF's other
  types are re-quantized to it where the blocks kernels do not take their rows).
  Multiplied by ``torch._weight_int8pack_mm``.
- **q4_k / q6_k / q8_0 / q4_0 / q4_1 / q5_0 / q5_1**: GGML's blocks as a GGUF file holds them
  (4.5 to 8.5 bits a weight), multiplied by ``engine.native``'s kernels. Where those cannot run,
  they are converted at load: the 4-bit ones to int4 exactly (but for bfloat16 scales), Q8_0 to
  bfloat16 (int8 with a scale a row would cost a row with an outlier its precision), the others
  to int8.

Files hold a portable form (``QuantizedWeight``: nibbles in plain row order); the CPU kernel's
own tiled layout depends on the CPU, so it is made at load time. Like gpt-fast's
``quantize.py``, this module swaps ``nn.Linear`` / ``nn.Embedding`` modules; ``engine/model.py``
never mentions quantization.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from engine import ggml_blocks, native

GROUP = 32  # int4 group size: llama.cpp's block size
# config.json's ``quantization_config.quant_method`` for folders in this form (transformers
# refuses an unknown method with a clear message instead of loading garbage).
QUANT_METHOD = "chatapp"
KINDS = ("int4", "int8")
GGML_KINDS = tuple(ggml_blocks.KINDS)
GGML_SUFFIX = ".ggml_"  # file form: ``prefix.ggml_q4_k``, uint8 [out, bytes a row]
# Activations of quantized layers: the int4 kernel's fast CPU path is bfloat16 only.
COMPUTE_DTYPE = torch.bfloat16


@dataclass
class QuantizedWeight:
    """A weight ``[out, in]`` in portable quantized form (what checkpoint files hold).

    int4: ``qweight`` uint8 ``[out, in / 2]`` (column ``2j`` in the low nibble, ``2j + 1`` in
    the high one), ``scales`` and ``zeros`` ``[out, in / GROUP]``. int8: ``qweight`` int8
    ``[out, in]``, ``scales`` ``[out]``, no zeros. GGML kinds (q4_k ...): ``qweight`` uint8
    ``[out, bytes a row]`` of GGML blocks (scales inside), ``scales`` empty, no zeros.
    """

    kind: str
    qweight: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None = None

    @property
    def ggml(self) -> bool:
        return self.kind in GGML_KINDS

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.qweight.shape
        if self.ggml:
            return (int(rows), ggml_blocks.columns(self.kind, int(cols)))
        return (int(rows), int(cols) * (2 if self.kind == "int4" else 1))

    def rows(self, start: int, stop: int) -> QuantizedWeight:
        z = self.zeros[start:stop] if self.zeros is not None else None
        s = self.scales if self.ggml else self.scales[start:stop]
        return QuantizedWeight(self.kind, self.qweight[start:stop], s, z)

    def permute_rows(self, order: torch.Tensor) -> QuantizedWeight:
        z = self.zeros[order] if self.zeros is not None else None
        s = self.scales if self.ggml else self.scales[order]
        return QuantizedWeight(self.kind, self.qweight[order], s, z)

    def portable(self) -> QuantizedWeight:
        """This weight in a form torch's kernels multiply: 4-bit GGML blocks become int4
        (exactly but for bfloat16 scales), the others int8; int4/int8 stay as they are."""
        rows, cols = self.shape
        if self.kind in ggml_blocks.INT4_KINDS and int4_fits(self.shape):
            q, scale, zero = ggml_blocks.int4_groups(self.kind, self.qweight, rows, cols)
            return QuantizedWeight(
                "int4", pack_int4(q), scale.to(COMPUTE_DTYPE), zero.to(COMPUTE_DTYPE)
            )
        if self.ggml:
            return int8_by_rows(
                functools.partial(ggml_blocks.to_float, self.kind), self.qweight, rows, cols
            )
        return self

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if self.ggml:
            rows, cols = self.shape
            return ggml_blocks.to_float(self.kind, self.qweight, rows, cols).to(dtype)
        if self.kind == "int8":
            return (self.qweight.float() * self.scales.float()[:, None]).to(dtype)
        assert self.zeros is not None
        q = unpack_int4(self.qweight).float() - 8
        scale = self.scales.float().repeat_interleave(GROUP, dim=1)
        zero = self.zeros.float().repeat_interleave(GROUP, dim=1)
        return (q * scale + zero).to(dtype)

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The file form: ``prefix.qweight``, ``prefix.scales`` (and ``prefix.zeros``), or
        ``prefix.ggml_<kind>`` for GGML blocks."""
        if self.ggml:
            return {f"{prefix}{GGML_SUFFIX}{self.kind}": self.qweight}
        out = {f"{prefix}.qweight": self.qweight, f"{prefix}.scales": self.scales}
        if self.zeros is not None:
            out[f"{prefix}.zeros"] = self.zeros
        return out

    @staticmethod
    def cat(parts: Sequence[QuantizedWeight]) -> QuantizedWeight:
        """Stack the rows of weights of one kind (fused q/k/v or gate/up projections)."""
        zeros = [p.zeros for p in parts if p.zeros is not None]
        return QuantizedWeight(
            parts[0].kind,
            torch.cat([p.qweight for p in parts]),
            parts[0].scales if parts[0].ggml else torch.cat([p.scales for p in parts]),
            torch.cat(zeros) if len(zeros) == len(parts) else None,
        )


def group_quantized(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | QuantizedWeight]:
    """File tensors -> a state where each ``X.qweight/.scales/.zeros`` is one ``X.weight``."""
    out: dict[str, torch.Tensor | QuantizedWeight] = {}
    for name, t in tensors.items():
        prefix, _, kind = name.rpartition(GGML_SUFFIX)
        if prefix and kind in GGML_KINDS:
            if t.dtype != torch.uint8 or t.dim() != 2 or t.shape[1] % ggml_blocks.KINDS[kind][1]:
                raise ValueError(f"tensor {name!r} is not whole {kind} blocks")
            out[f"{prefix}.weight"] = QuantizedWeight(kind, t, torch.empty(0))
        elif name.endswith(".qweight"):
            prefix = name.removesuffix(".qweight")
            kind = "int4" if t.dtype == torch.uint8 else "int8"
            scales = tensors.get(f"{prefix}.scales")
            zeros = tensors.get(f"{prefix}.zeros")
            if scales is None or (kind == "int4") != (zeros is not None):
                raise ValueError(f"quantized tensor {prefix!r} lacks its scales or zeros")
            out[f"{prefix}.weight"] = QuantizedWeight(kind, t, scales, zeros)
        elif not name.endswith((".scales", ".zeros")):
            out[name] = t
    return out


def quantized_tensors(state: dict[str, torch.Tensor | QuantizedWeight]) -> dict[str, torch.Tensor]:
    """The inverse of ``group_quantized``: plain tensors for a safetensors file."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if isinstance(t, QuantizedWeight):
            out |= t.tensors(name.removesuffix(".weight"))
        else:
            out[name] = t
    return out


# Quantizing float weights (round to nearest) -----------------------------------------------


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """uint8 ``[rows, cols / 2]`` -> uint8 ``[rows, cols]`` values 0..15."""
    return torch.stack((packed & 15, packed >> 4), dim=-1).reshape(packed.shape[0], -1)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Values 0..15 ``[rows, cols]`` -> uint8 ``[rows, cols / 2]`` (even columns low)."""
    q = q.to(torch.uint8)
    return q[:, 0::2] | (q[:, 1::2] << 4)


def quantize_int4(w: torch.Tensor) -> QuantizedWeight:
    """Asymmetric round-to-nearest int4 in groups of ``GROUP`` along the input dimension."""
    rows, cols = w.shape
    if cols % GROUP:
        raise ValueError(f"int4 needs the input size to be a multiple of {GROUP}, got {cols}")
    g = w.float().reshape(rows, cols // GROUP, GROUP)
    lo, hi = g.amin(-1), g.amax(-1)
    scale = ((hi - lo) / 15).clamp_min(1e-10)
    q = ((g - lo[..., None]) / scale[..., None]).round().clamp(0, 15)
    zero = lo + 8 * scale  # w = q * scale + lo = (q - 8) * scale + zero
    return QuantizedWeight(
        "int4",
        pack_int4(q.reshape(rows, cols)),
        scale.to(COMPUTE_DTYPE),
        zero.to(COMPUTE_DTYPE),
    )


def quantize_int8(w: torch.Tensor, *, scratch: bool = False) -> QuantizedWeight:
    """Symmetric round-to-nearest int8 with one scale per output row. ``scratch``: ``w`` is a
    float32 temporary the caller is done with, so the rounding runs in place (no more full-size
    copies of a 100M-value embedding table)."""
    w = w if scratch and w.dtype == torch.float32 else w.float()
    lo, hi = torch.aminmax(w, dim=1)  # one pass; 1.6x faster than an inf-norm here
    scale = (torch.maximum(-lo, hi) / 127).clamp_min(1e-10)
    q = w.div_(scale[:, None]) if scratch else w / scale[:, None]
    q = q.round_().clamp_(-127, 127).to(torch.int8)
    return QuantizedWeight("int8", q, scale.to(COMPUTE_DTYPE))


def int4_fits(shape: tuple[int, ...]) -> bool:
    """Whether the int4 kernel takes a weight of this shape (rows in 16s, columns in groups)."""
    return len(shape) == 2 and shape[0] % 16 == 0 and shape[1] % GROUP == 0


# Rows decoded to float32 at a time on the way to int8: a few MB, which stay in the CPU's cache
# between decoding and re-quantizing, where a whole 100M-value output head would be a 400 MB
# temporary whose pages are faulted in one by one (and the peak of a first load).
DECODE_VALUES = 1 << 20


def int8_by_rows(
    decode: Callable[[torch.Tensor, int, int], torch.Tensor],
    data: torch.Tensor,
    rows: int,
    cols: int,
) -> QuantizedWeight:
    """``decode(data rows, n, cols)`` -> float32 rows, re-quantized to int8 a slice at a time
    (one scale per row, so slices of rows are independent)."""
    step = max(1, DECODE_VALUES // cols)
    qweight = torch.empty(rows, cols, dtype=torch.int8)
    scales = torch.empty(rows, dtype=COMPUTE_DTYPE)
    for r in range(0, rows, step):
        n = min(step, rows - r)
        part = quantize_int8(decode(data[r : r + n], n, cols), scratch=True)
        qweight[r : r + n] = part.qweight
        scales[r : r + n] = part.scales
    return QuantizedWeight("int8", qweight, scales)


def quantize_weight(w: torch.Tensor, kind: str) -> QuantizedWeight:
    if kind == "int4" and int4_fits(tuple(w.shape)):
        return quantize_int4(w)
    return quantize_int8(w)  # int8, or int4 where the shape does not fit the kernel


# Modules that compute with the quantized form -----------------------------------------------


# From this many rows of input on (a prefill chunk), dequantizing the weight to bfloat16 and
# running a bfloat16 GEMM (AMX/AVX-512 kernels) beats the int4/int8 kernels, whose cost grows
# with every row; measured crossovers on a 2-core Xeon: int4 ~64 rows, int8 ~32.
DEQUANT_ROWS = 64


def _int4_block_layout() -> bool:
    """Whether this CPU's int4 packing is the one ``Int4Linear.dequantize_t`` unpacks: blocks
    of 64 output rows, for each input column 32 bytes holding rows j (low nibble) and
    j + 32 (high). That layout is the AVX-512 kernel's; elsewhere we use the kernel only."""
    n, k = 128, 64
    rows = torch.arange(n, dtype=torch.int32)[:, None].expand(n, k)
    cols = torch.arange(k, dtype=torch.int32)[None, :].expand(n, k)
    q = ((rows + 3 * cols) % 16).contiguous()
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
    if packed.dtype != torch.uint8 or packed.numel() != n * k // 2:
        return False
    b = packed.view(n // 64, k, 32)
    mine = torch.stack((b & 15, b >> 4), dim=2).permute(0, 2, 3, 1).reshape(n, k)
    return bool(torch.equal(mine.to(torch.int32), q))


def pack_blocks(qweight: torch.Tensor) -> torch.Tensor:
    """The file's int4 nibbles (``[out, in / 2]``, column 2j low) in the AVX-512 kernel's
    layout, with byte operations only: for each block of 64 rows and each column, 32 bytes
    holding rows j (low nibble) and j + 32 (high). Same bytes as the kernel's own packing,
    which would go through an int32 copy of every value (tests compare the two)."""
    rows, half = qweight.shape
    p = qweight.view(rows // 64, 2, 32, half)
    low_rows, high_rows = p[:, 0], p[:, 1]  # rows j and j + 32 of each block
    even = (low_rows & 15) | ((high_rows & 15) << 4)  # columns 2c
    odd = (low_rows >> 4) | (high_rows & 0xF0)  # columns 2c + 1
    cols = torch.stack((even, odd), dim=-1).view(rows // 64, 32, 2 * half)
    return cols.transpose(1, 2).contiguous().view(rows, half)


_BLOCK_LAYOUT: bool | None = None


def block_layout() -> bool:
    global _BLOCK_LAYOUT
    if _BLOCK_LAYOUT is None:
        _BLOCK_LAYOUT = _int4_block_layout()
    return _BLOCK_LAYOUT


def _rows_of(x: torch.Tensor, width: int) -> torch.Tensor:
    """``x`` as a 2-D bfloat16 matrix (no conversion call when it already is one: on the
    decode path every call counts)."""
    x = x.reshape(-1, width)
    if not x.is_contiguous():  # the kernels read rows as they lie in memory
        x = x.contiguous()
    return x if x.dtype == COMPUTE_DTYPE else x.to(COMPUTE_DTYPE)


class _Workspace(threading.local):
    depth = 0
    buffer: torch.Tensor | None = None


_WORKSPACE = _Workspace()


@contextmanager
def dequant_workspace() -> Iterator[None]:
    """Within this block (a prefill), the bfloat16 weights that prefill dequantizes layer by
    layer share one buffer, sized for the largest, instead of a fresh allocation each (which
    the allocator maps and unmaps: a page fault per 4 KiB, every layer, every chunk). The
    buffer is freed when the outermost block ends; it belongs to the calling thread."""
    _WORKSPACE.depth += 1
    try:
        yield
    finally:
        _WORKSPACE.depth -= 1
        if _WORKSPACE.depth == 0:
            _WORKSPACE.buffer = None


def _workspace(nbytes: int) -> torch.Tensor:
    """``nbytes`` bytes (uint8) of scratch: the open workspace's buffer (grown if needed), or
    new memory when none is open."""
    if _WORKSPACE.depth == 0:
        return torch.empty(nbytes, dtype=torch.uint8)
    buf = _WORKSPACE.buffer
    if buf is None or buf.numel() < nbytes:
        _WORKSPACE.buffer = None  # free the old one before the larger one is made
        buf = _WORKSPACE.buffer = torch.empty(nbytes, dtype=torch.uint8)
    return buf[:nbytes]


class Int4Linear(nn.Module):
    """``y = x @ W.T (+ b)`` with ``W`` int4 in the CPU kernel's packed layout."""

    weight: torch.Tensor
    scales_and_zeros: torch.Tensor

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        assert weight.kind == "int4" and weight.zeros is not None
        self.out_features, self.in_features = weight.shape
        # Blocks of 64 rows in the layout this CPU's kernel reads (see block_layout), which
        # ``pack_blocks`` makes from the file's nibbles and ``dequantize_t`` reads back.
        self.unpackable = self.out_features % 64 == 0 and block_layout()
        if self.unpackable:
            packed = pack_blocks(weight.qweight)
        else:
            q = unpack_int4(weight.qweight).to(torch.int32)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
        self.register_buffer("weight", packed, persistent=False)
        # The kernel's layout: [in / GROUP, out, 2] holding (scale, zero).
        scales, zeros = weight.scales.to(COMPUTE_DTYPE), weight.zeros.to(COMPUTE_DTYPE)
        sz = torch.stack((scales, zeros), dim=-1).transpose(0, 1).contiguous()
        self.register_buffer("scales_and_zeros", sz, persistent=False)
        self.bias = None if bias is None else nn.Parameter(bias.to(COMPUTE_DTYPE), False)

    def dequantize_t(self) -> torch.Tensor:
        """``W.T`` ``[in, out]`` in bfloat16, unpacked from the kernel's own layout.

        Each step keeps a long contiguous inner dimension, which is what decides the speed of
        these elementwise kernels (5x between a strided and a contiguous scale operand):
        nibbles are masked four bytes at a time in int32, moved into ``[in, out]`` order as
        they become bfloat16, then scaled in place by one fused ``q * scale + offset`` with
        ``offset = zero - 8 * scale``. The buffer comes from ``dequant_workspace`` when one is
        open (no fresh, page-faulting allocation per layer during a prefill).
        """
        assert self.unpackable
        n, k = self.out_features, self.in_features
        words = self.weight.view(torch.int32).view(-1)  # a bytewise mask: either endianness
        scratch = _workspace(2 * k * n + 4 * words.numel())
        q = scratch[: 2 * k * n].view(COMPUTE_DTYPE).view(k, n // 64, 2, 32)
        nibbles = scratch[2 * k * n :].view(torch.int32)
        for half in range(2):
            if half == 0:
                torch.bitwise_and(words, 0x0F0F0F0F, out=nibbles)
            else:
                torch.bitwise_right_shift(words, 4, out=nibbles).bitwise_and_(0x0F0F0F0F)
            # [out / 64, in, 32] bytes -> rows j (low nibbles) and j + 32 (high) of each block
            q[:, :, half] = nibbles.view(torch.uint8).view(n // 64, k, 32).transpose(0, 1)
        scale, zero = self.scales_and_zeros.unbind(-1)  # [in / GROUP, out] each
        offset = (zero.float() - 8 * scale.float()).to(COMPUTE_DTYPE)
        w = q.view(k // GROUP, GROUP, n)
        torch.addcmul(offset[:, None], w, scale.contiguous()[:, None], out=w)
        return w.view(k, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = _rows_of(x, self.in_features)
        if x2.shape[0] >= DEQUANT_ROWS and self.unpackable:
            y = x2 @ self.dequantize_t()
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(
                x2, self.weight, GROUP, self.scales_and_zeros
            )
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)


class Int8Linear(nn.Module):
    """``y = x @ W.T (+ b)`` with ``W`` int8, one scale per output row."""

    weight: torch.Tensor
    scales: torch.Tensor

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        assert weight.kind == "int8"
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.qweight.contiguous(), persistent=False)
        self.register_buffer("scales", weight.scales.to(COMPUTE_DTYPE), persistent=False)
        self.bias = None if bias is None else nn.Parameter(bias.to(COMPUTE_DTYPE), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = _rows_of(x, self.in_features)
        if x2.shape[0] >= DEQUANT_ROWS // 2:
            w = _workspace(2 * self.weight.numel()).view(COMPUTE_DTYPE)
            w = w.view(self.weight.shape).copy_(self.weight)
            y = F.linear(x2, w.mul_(self.scales[:, None]))
        else:
            y = torch._weight_int8pack_mm(x2, self.weight, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)


# From this many rows of input on, GGMLLinear dequantizes to bfloat16 for torch's GEMM: the
# blocks kernel costs about as much per row as a whole decode step (measured on 2 Zen 5 cores,
# an 11264 x 2048 Q4_K weight: 16 rows 6.9 ms both ways, 32 rows 19.6 against 11.1).
GGML_DEQUANT_ROWS = 20


class GGMLLinear(nn.Module):
    """``y = x @ W.T (+ b)`` with ``W`` in GGML K-quant blocks, by ``engine.native``'s kernels
    (built only where ``native.ggml_kernels()``): a few rows of ``x`` (decode) straight from
    the blocks, a prefill chunk through a bfloat16 copy of ``W`` and torch's GEMM."""

    weight: torch.Tensor

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        assert weight.ggml
        self.kind = weight.kind
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.qweight.contiguous(), persistent=False)
        self.bias = None if bias is None else nn.Parameter(bias.to(COMPUTE_DTYPE), False)
        kern = native.kernel()
        assert kern is not None
        # A decode step calls this ~100 times a token: the ctypes function and its constant
        # arguments are bound once (the call then costs ~4 us, against ~14 through
        # native.ggml_matmul's checks).
        self._matmul = kern.ggml_matmul
        self._type = native.GGML_TYPES[self.kind]

    def dequantize(self) -> torch.Tensor:
        """``W`` ``[out, in]`` in bfloat16 (in the open ``dequant_workspace``, if any)."""
        n, k = self.out_features, self.in_features
        out = _workspace(2 * n * k).view(COMPUTE_DTYPE).view(n, k)
        return native.ggml_dequantize(self.kind, self.weight, k, out=out)

    def matmul_into(self, x2: torch.Tensor, out: torch.Tensor) -> None:
        """``out = x2 @ W.T`` for contiguous bfloat16 rows ``x2`` (fewer than
        ``GGML_DEQUANT_ROWS``) into ``out`` ``[rows, out_features]``, rows ``out.stride(0)``
        apart (no bias)."""
        n, k = self.out_features, self.in_features
        status = self._matmul(
            self._type, self.weight.data_ptr(), n, k, x2.data_ptr(), k, x2.shape[0],
            out.data_ptr(), out.stride(0), torch.get_num_threads(),
        )  # fmt: skip
        if status != 0:
            raise RuntimeError(f"the {self.kind} kernel refused a {tuple(x2.shape)} input")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = _rows_of(x, self.in_features)
        if x2.shape[0] >= GGML_DEQUANT_ROWS:
            y = F.linear(x2, self.dequantize())
        else:
            y = torch.empty((x2.shape[0], self.out_features), dtype=COMPUTE_DTYPE)
            self.matmul_into(x2, y)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)


class ConcatLinear(nn.Module):
    """A fused projection whose parts have different forms (e.g. q/k int4 and v int8, as
    llama.cpp's Q4_K_M mixes them): the parts' outputs side by side."""

    def __init__(self, parts: Sequence[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        sizes = [int(getattr(p, "out_features", 0)) for p in parts]
        self.out_features = sum(sizes)
        # All parts GGML blocks: a decode step's parts write their columns of one output (no
        # torch.cat).
        self.blocks = all(isinstance(p, GGMLLinear) for p in parts)
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blocks:
            first = self.parts[0]
            assert isinstance(first, GGMLLinear)
            x2 = _rows_of(x, first.in_features)
            if x2.shape[0] < GGML_DEQUANT_ROWS:
                y = torch.empty((x2.shape[0], self.out_features), dtype=COMPUTE_DTYPE)
                for p, a, b in zip(self.parts, self.offsets, self.offsets[1:], strict=False):
                    part = cast(GGMLLinear, p)
                    part.matmul_into(x2, y[:, a:b])
                    if part.bias is not None:
                        y[:, a:b] += part.bias
                return y.view(*x.shape[:-1], self.out_features)
        return torch.cat([p(x) for p in self.parts], dim=-1)


class QuantizedEmbedding(nn.Module):
    """An embedding table kept quantized; looked-up rows are dequantized on the fly."""

    qweight: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None

    def __init__(self, weight: QuantizedWeight) -> None:
        super().__init__()
        self.kind = weight.kind
        self.num_embeddings, self.embedding_dim = weight.shape
        self.register_buffer("qweight", weight.qweight.contiguous(), persistent=False)
        self.register_buffer("scales", weight.scales.to(COMPUTE_DTYPE), persistent=False)
        zeros = weight.zeros.to(COMPUTE_DTYPE) if weight.zeros is not None else None
        self.register_buffer("zeros", zeros, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        if self.kind in GGML_KINDS:  # only built where the native kernels run
            rows = native.ggml_dequantize(self.kind, self.qweight[flat], self.embedding_dim)
            return rows.reshape(*ids.shape, self.embedding_dim)
        part = QuantizedWeight(
            self.kind,
            self.qweight[flat],
            self.scales[flat],
            None if self.zeros is None else self.zeros[flat],
        )
        return part.dequantize(COMPUTE_DTYPE).reshape(*ids.shape, self.embedding_dim)


def linear_module(
    weight: torch.Tensor | QuantizedWeight | list[QuantizedWeight | torch.Tensor],
    bias: torch.Tensor | None,
    dtype: torch.dtype,
) -> nn.Module:
    """The module for a (possibly fused, possibly quantized) linear layer's weight."""
    if isinstance(weight, list):
        sizes = [w.shape[0] for w in weight]
        biases = list(bias.split(sizes)) if bias is not None else [None] * len(weight)
        return ConcatLinear(
            [linear_module(w, b, dtype) for w, b in zip(weight, biases, strict=True)]
        )
    if isinstance(weight, QuantizedWeight):
        if weight.ggml:
            assert native.ggml_kernels(), "swap_in converts GGML blocks where no kernel runs"
            return GGMLLinear(weight, bias)
        if weight.kind == "int4" and int4_fits(weight.shape):
            return Int4Linear(weight, bias)
        if weight.kind == "int4":  # e.g. a fused projection whose rows the kernel cannot take
            weight = quantize_int8(weight.dequantize())
        return Int8Linear(weight, bias)
    out_f, in_f = weight.shape
    with torch.device("meta"):
        layer = nn.Linear(in_f, out_f, bias=bias is not None)
    layer.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return layer


def swap_in(
    net: nn.Module, state: dict[str, torch.Tensor | QuantizedWeight | list], dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Replace the net's linear and embedding modules whose weights in ``state`` are quantized
    (or fused from parts of different forms); return the plain tensors left to load.

    ``state`` is emptied on the way: each file-form weight is dropped as soon as its module
    holds the kernel's form, so the two forms of the whole model never sit in memory at once.
    GGML blocks stay blocks where ``engine.native`` multiplies them, and are converted to
    int4/int8 (Q8_0: bfloat16) elsewhere (a tied embedding and head once, shared).
    """
    if not native.ggml_kernels():
        portable: dict[int, QuantizedWeight | torch.Tensor] = {}

        def convert(w: QuantizedWeight) -> QuantizedWeight | torch.Tensor:
            if id(w) not in portable:
                # Q8_0 as bfloat16 (its values to one rounding): re-quantized to int8 with one
                # scale a row, an outlier costs the rest of its row their precision
                portable[id(w)] = w.dequantize(COMPUTE_DTYPE) if w.kind == "q8_0" else w.portable()
            return portable[id(w)]

        for name, value in state.items():
            if isinstance(value, QuantizedWeight) and value.ggml:
                state[name] = convert(value)
            elif isinstance(value, list):
                parts = [
                    convert(w) if isinstance(w, QuantizedWeight) and w.ggml else w for w in value
                ]
                state[name] = join_rows(parts)  # torch's kernels take one matrix
    rest: dict[str, torch.Tensor] = {}
    for name in list(state):
        if not isinstance(state[name], (QuantizedWeight, list)):
            rest[name] = state.pop(name)  # type: ignore[assignment]
    while state:
        name, value = state.popitem()
        prefix = name.removesuffix(".weight")
        parent_name, _, attr = prefix.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        old = getattr(parent, attr)
        if isinstance(old, nn.Embedding):
            assert isinstance(value, QuantizedWeight)
            setattr(parent, attr, QuantizedEmbedding(value))
        else:
            bias = rest.pop(f"{prefix}.bias", None)
            setattr(parent, attr, linear_module(value, bias, dtype))
    return rest


def join_rows(
    values: Sequence[torch.Tensor | QuantizedWeight],
) -> torch.Tensor | QuantizedWeight | list[torch.Tensor | QuantizedWeight]:
    """Rows of several weights as one (a fused projection's parts): a tensor, a
    ``QuantizedWeight``, or (forms mixed) a list with consecutive parts of one form already
    joined. GGML blocks are never joined: their kernels write each part's columns of one output
    (and the one-call decode step takes the parts as they are), so a load does not copy most of
    the model once more."""

    def form(v: torch.Tensor | QuantizedWeight) -> str:
        return v.kind if isinstance(v, QuantizedWeight) else "float"

    runs: list[list[torch.Tensor | QuantizedWeight]] = []
    for v in values:
        ggml = isinstance(v, QuantizedWeight) and v.ggml
        if runs and form(runs[-1][-1]) == form(v) and not ggml:
            runs[-1].append(v)
        else:
            runs.append([v])
    joined = [
        run[0]  # alone: as it is (a copy would double it, and a mapped file's pages with it)
        if len(run) == 1
        else torch.cat(cast(list[torch.Tensor], run), dim=0)
        if form(run[0]) == "float"
        else QuantizedWeight.cat(cast(list[QuantizedWeight], run))
        for run in runs
    ]
    return joined[0] if len(joined) == 1 else joined


def parameter_count(net: nn.Module) -> int:
    """Parameters of ``net`` with quantized weights counted as the values they hold (a tied
    embedding and output head once)."""
    seen: set[int] = set()
    total = 0
    for p in net.parameters():
        total += p.numel()
    for m in net.modules():
        if isinstance(m, (Int4Linear, Int8Linear, GGMLLinear, QuantizedEmbedding)):
            key = (m.qweight if isinstance(m, QuantizedEmbedding) else m.weight).data_ptr()
            if key not in seen:
                seen.add(key)
                rows, cols = (
                    (m.num_embeddings, m.embedding_dim)
                    if isinstance(m, QuantizedEmbedding)
                    else (m.out_features, m.in_features)
                )
                total += rows * cols
    return total


def weight_kinds(net: nn.Module) -> list[str]:
    """The quantized forms in ``net`` (``int4``, ``int8``, ``q4_k``, ``q6_k``), sorted; empty
    for a float net."""
    kinds = set()
    for m in net.modules():
        if isinstance(m, Int4Linear):
            kinds.add("int4")
        elif isinstance(m, Int8Linear):
            kinds.add("int8")
        elif isinstance(m, (GGMLLinear, QuantizedEmbedding)):
            kinds.add(m.kind)
    return sorted(kinds)
