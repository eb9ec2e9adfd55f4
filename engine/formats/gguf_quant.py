"""GGUF tensors -> ``QuantizedWeight``s, without a detour through float32 where it is exact.

Q4_0, Q4_1 and Q4_K are int4 groups of 32 with a scale and an offset, which is our int4 form
(``w = (q - 8) * scale + zero``): their 4-bit values are copied as they are. The other
quantized types are decoded and re-quantized to int8 with one scale per row, the nearest form
a kernel here multiplies (Q8_0 and Q6_K, the ones llama.cpp's Q4_K_M and Q8_0 files hold,
decoded here in torch; Q5_x through ``gguf.quants``). Everything runs on whole tensors in
torch, whose element-wise kernels use every core.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType

from engine.formats.gguf_dequant import dequantize_tensor
from engine.quantize import COMPUTE_DTYPE, QuantizedWeight, int4_fits, quantize_int8

Q = GGMLQuantizationType
INT4_TYPES = (Q.Q4_0, Q.Q4_1, Q.Q4_K)
FLOAT_TYPES = (Q.F32, Q.F16, Q.BF16)


def quantized_weight(t: Any) -> QuantizedWeight:
    """A quantized 2-D GGUF tensor (not F32/F16/BF16) in our portable form."""
    rows, cols = (int(d) for d in reversed(t.shape.tolist()))
    data = _bytes(t, rows)
    if t.tensor_type == Q.Q8_0:
        return _int8_by_rows(_q8_0, data, rows, cols)
    if t.tensor_type == Q.Q6_K:
        return _int8_by_rows(_q6_k, data, rows, cols)
    if t.tensor_type not in INT4_TYPES or not int4_fits((rows, cols)):
        return quantize_int8(torch.from_numpy(dequantize_tensor(t)), scratch=True)
    if t.tensor_type == Q.Q4_K:
        q, scale, zero = _q4_k(data, rows, cols)
    else:
        q, scale, zero = _q4_0_1(data, rows, cols, with_min=t.tensor_type == Q.Q4_1)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)
    return QuantizedWeight(
        "int4", packed.contiguous(), scale.to(COMPUTE_DTYPE), zero.to(COMPUTE_DTYPE)
    )


# Rows decoded to float32 at a time on the way to int8: a few MB, which stay in the CPU's cache
# between decoding and re-quantizing, where a whole 100M-value output head would be a 400 MB
# temporary whose pages are faulted in one by one (and the peak of a first load).
DECODE_VALUES = 1 << 20


def _int8_by_rows(decode: Any, data: torch.Tensor, rows: int, cols: int) -> QuantizedWeight:
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


def _bytes(t: Any, rows: int) -> torch.Tensor:
    """The tensor's raw bytes, ``[rows, bytes per row]``, read from the file's map."""
    raw = np.asarray(t.data).view(np.uint8).reshape(rows, -1)
    with warnings.catch_warnings():  # the map is read-only; nothing here writes to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(raw)


def _f16(b: torch.Tensor) -> torch.Tensor:
    """Little-endian float16 from the last dimension's pairs of bytes, as float32."""
    return b.contiguous().view(torch.float16).float()


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """ggml's 16 bytes of a 32-block: element j in the low nibble of byte j, j + 16 in the high
    nibble -> the 32 values in order."""
    return torch.cat((qs & 0x0F, qs >> 4), dim=-1)


def _q4_0_1(
    data: torch.Tensor, rows: int, cols: int, *, with_min: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    head = 4 if with_min else 2
    blocks = data.view(rows, cols // 32, head + 16)
    d = _f16(blocks[..., 0:2])[..., 0]
    q = _nibbles(blocks[..., head:]).reshape(rows, cols)
    if with_min:  # Q4_1: w = d * q + m
        return q, d, _f16(blocks[..., 2:4])[..., 0] + 8 * d
    return q, d, torch.zeros_like(d)  # Q4_0: w = d * (q - 8)


def _q4_k(data: torch.Tensor, rows: int, cols: int) -> tuple[torch.Tensor, ...]:
    # A 256-superblock: f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) for its eight 32-wide
    # sub-blocks, then 128 bytes where chunk c holds sub-block 2c in low nibbles and 2c + 1 in
    # high ones. w = d * sc * q - dmin * m.
    nb = rows * cols // 256
    blocks = data.reshape(nb, 144)
    d, dmin = _f16(blocks[:, 0:2]), _f16(blocks[:, 2:4])
    s = blocks[:, 4:16].view(nb, 3, 4)  # see ggml's get_scale_min_k4
    a, b, c = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat((a & 0x3F, (c & 0x0F) | ((a >> 2) & 0x30)), dim=-1).float()
    m = torch.cat((b & 0x3F, (c >> 4) | ((b >> 2) & 0x30)), dim=-1).float()
    qs = blocks[:, 16:].reshape(nb, 4, 32)
    q = torch.stack((qs & 0x0F, qs >> 4), dim=2).reshape(rows, cols)
    scale = d * sc
    zero = 8 * scale - dmin * m
    return q, scale.reshape(rows, cols // 32), zero.reshape(rows, cols // 32)


def _q8_0(data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    blocks = data.view(rows, cols // 32, 34)
    d = _f16(blocks[..., 0:2])
    return (blocks[..., 2:].contiguous().view(torch.int8).float() * d).reshape(rows, cols)


def _q6_k(data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    # A 256-superblock: 128 bytes of low nibbles, 64 of 2-bit high parts, 16 int8 scales (one
    # per 16 values), f16 d. Value e = 128 n + 32 g + l of half n, group g takes the low (g 0, 1)
    # or high (g 2, 3) nibble of ql[64 n + 32 (g % 2) + l] and bits 2g of qh[32 n + l];
    # w = d * scale[8 n + 2 g + l // 16] * (q - 32). (ggml's dequantize_row_q6_K.)
    nb = rows * cols // 256
    blocks = data.reshape(nb, 210)
    ql = blocks[:, :128].reshape(nb, 2, 2, 32)  # [block, n, g % 2, l]
    qh = blocks[:, 128:192].reshape(nb, 2, 1, 32)  # [block, n, -, l]
    q = torch.stack((ql & 0x0F, ql >> 4), dim=2).reshape(nb, 2, 4, 32)  # g = 2 * hi + g % 2
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)
    q |= ((qh >> shifts) & 3) << 4  # the 6-bit values 0..63
    sc = blocks[:, 192:208].contiguous().view(torch.int8).float().view(nb, 2, 4, 2, 1)
    d = _f16(blocks[:, 208:210]).view(nb, 1, 1, 1, 1)
    # One float32 tensor, scaled in place: a 100M-value output head makes every full-size
    # temporary cost (its pages are faulted in one by one).
    w = q.view(nb, 2, 4, 2, 16).float().sub_(32).mul_(sc * d)
    return w.reshape(rows, cols)
