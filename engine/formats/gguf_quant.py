"""GGUF tensors -> ``QuantizedWeight``s, without a detour through float32 where it is exact.

Q4_0, Q4_1 and Q4_K are int4 groups of 32 with a scale and an offset, which is our int4 form
(``w = (q - 8) * scale + zero``): their 4-bit values are copied as they are. The other
quantized types (Q8_0, Q5_0, Q5_1, Q5_K, Q6_K) are dequantized and re-quantized to int8 with one
scale per row, the nearest form a kernel here multiplies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf.quants import Q4_K

from engine.formats.gguf_dequant import dequantize_tensor
from engine.quantize import COMPUTE_DTYPE, QuantizedWeight, int4_fits, quantize_int8

Q = GGMLQuantizationType
INT4_TYPES = (Q.Q4_0, Q.Q4_1, Q.Q4_K)
FLOAT_TYPES = (Q.F32, Q.F16, Q.BF16)


def quantized_weight(t: Any) -> QuantizedWeight:
    """A quantized 2-D ``gguf.ReaderTensor`` (not F32/F16/BF16) in our portable form."""
    rows, cols = (int(d) for d in reversed(t.shape.tolist()))
    if t.tensor_type not in INT4_TYPES or not int4_fits((rows, cols)):
        return quantize_int8(torch.from_numpy(dequantize_tensor(t)))
    data = np.asarray(t.data).view(np.uint8).reshape(rows, -1)
    if t.tensor_type == Q.Q4_K:
        q, scale, zero = _q4_k(data, rows, cols)
    else:
        q, scale, zero = _q4_0_1(data, rows, cols, with_min=t.tensor_type == Q.Q4_1)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)
    return QuantizedWeight(
        "int4",
        torch.from_numpy(np.ascontiguousarray(packed)),
        torch.from_numpy(scale).to(COMPUTE_DTYPE),
        torch.from_numpy(zero).to(COMPUTE_DTYPE),
    )


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """ggml's 16 bytes of a 32-block: element j in the low nibble of byte j, j + 16 in the high
    nibble -> the 32 values in order."""
    return np.concatenate((qs & 0x0F, qs >> 4), axis=-1)


def _q4_0_1(
    data: np.ndarray, rows: int, cols: int, *, with_min: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    head = 4 if with_min else 2
    blocks = data.reshape(rows, cols // 32, head + 16)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    q = _nibbles(blocks[..., head:]).reshape(rows, cols)
    if with_min:  # Q4_1: w = d * q + m
        m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
        return q, d, m + 8 * d
    return q, d, np.zeros_like(d)  # Q4_0: w = d * (q - 8)


def _q4_k(data: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # A 256-superblock: f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) for its eight 32-wide
    # sub-blocks, then 128 bytes where chunk c holds sub-block 2c in low nibbles and 2c + 1 in
    # high ones. w = d * sc * q - dmin * m.
    nb = rows * cols // 256
    blocks = data.reshape(nb, 144)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    dmin = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    sc, m = Q4_K.get_scale_min(blocks[:, 4:16])
    qs = blocks[:, 16:].reshape(nb, 4, 32)
    q = np.stack((qs & 0x0F, qs >> 4), axis=2).reshape(rows, cols)
    scale = d * sc.astype(np.float32)
    zero = 8 * scale - dmin * m.astype(np.float32)
    per_row = cols // 32
    return q, scale.reshape(rows, per_row), zero.reshape(rows, per_row)
