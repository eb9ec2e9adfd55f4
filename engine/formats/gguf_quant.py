"""GGUF tensors -> ``QuantizedWeight``s, without a detour through float32 where it is exact.

Q4_K, Q6_K (what llama.cpp's Q4_K_M files hold), Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 stay GGML
blocks as they are (the 32-weight types where a row is a whole number of block pairs, which the
kernels read together): the native kernels multiply them directly, and elsewhere the loader
converts them (``QuantizedWeight.portable``). Rows of other widths take the portable forms
here: Q4_0/Q4_1's 4-bit values copied into our int4 form (``w = (q - 8) * scale + zero``), the
other types decoded and re-quantized to int8 with one scale per row (Q8_0 in torch, the rest
through ``gguf.quants``). Everything runs on whole tensors in torch, whose element-wise kernels
use every core.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType

from engine import ggml_blocks
from engine.formats.gguf_dequant import dequantize_tensor
from engine.quantize import (
    COMPUTE_DTYPE,
    QuantizedWeight,
    int4_fits,
    int8_by_rows,
    quantize_int8,
)

Q = GGMLQuantizationType
INT4_TYPES = (Q.Q4_0, Q.Q4_1)
GGML_KINDS = {Q.Q4_K: "q4_k", Q.Q6_K: "q6_k"}  # kept as blocks
# kept as blocks where a row is whole pairs of blocks
PAIRED_KINDS = {Q.Q8_0: "q8_0", Q.Q4_0: "q4_0", Q.Q4_1: "q4_1", Q.Q5_0: "q5_0", Q.Q5_1: "q5_1"}
FLOAT_TYPES = (Q.F32, Q.F16, Q.BF16)


def quantized_weight(t: Any) -> QuantizedWeight:
    """A quantized 2-D GGUF tensor (not F32/F16/BF16) in our portable form."""
    rows, cols = (int(d) for d in reversed(t.shape.tolist()))
    data = _bytes(t, rows)
    if t.tensor_type in GGML_KINDS:
        return QuantizedWeight(GGML_KINDS[t.tensor_type], data, torch.empty(0))
    if t.tensor_type in PAIRED_KINDS and cols % 64 == 0:  # the kernel takes blocks in pairs
        return QuantizedWeight(PAIRED_KINDS[t.tensor_type], data, torch.empty(0))
    if t.tensor_type == Q.Q8_0:
        return int8_by_rows(ggml_blocks.q8_0, data, rows, cols)
    if t.tensor_type not in INT4_TYPES or not int4_fits((rows, cols)):
        return quantize_int8(torch.from_numpy(dequantize_tensor(t)), scratch=True)
    q, scale, zero = ggml_blocks.q4_0_1(data, rows, cols, with_min=t.tensor_type == Q.Q4_1)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)
    return QuantizedWeight(
        "int4", packed.contiguous(), scale.to(COMPUTE_DTYPE), zero.to(COMPUTE_DTYPE)
    )


def _bytes(t: Any, rows: int) -> torch.Tensor:
    """The tensor's raw bytes, ``[rows, bytes per row]``, read from the file's map."""
    raw = np.asarray(t.data).view(np.uint8).reshape(rows, -1)
    with warnings.catch_warnings():  # the map is read-only; nothing here writes to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(raw)
