"""GGUF tensor data -> float32 numpy arrays in torch order, and llama.cpp's q/k row order undone.

Dequantization is ``gguf.quants`` (the gguf package's numpy kernels, which decode all blocks
of a group of rows at once); tests check it against ggml's C loops transcribed one by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

Q = GGMLQuantizationType
SUPPORTED_TYPES: tuple[GGMLQuantizationType, ...] = (
    *(Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1),
    *(Q.Q4_K, Q.Q5_K, Q.Q6_K),
)


def dequantize_tensor(t: Any) -> np.ndarray:
    """A ``gguf.ReaderTensor`` as float32 in numpy/torch order (GGUF lists dims fastest-first)."""
    shape = tuple(int(d) for d in reversed(t.shape.tolist()))
    data = np.asarray(t.data)
    if t.tensor_type == Q.F32:
        out = data.view(np.float32)
    elif t.tensor_type == Q.F16:
        out = data.view(np.float16).astype(np.float32)
    else:
        out = dequantize(data.view(np.uint8), t.tensor_type)
    return np.ascontiguousarray(out.reshape(shape), dtype=np.float32)


def unpermute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (its RoPE rotates adjacent pairs, HF's rotates
    halves): the inverse of ``w.reshape(n, 2, d // n // 2, *rest).swapaxes(1, 2)``."""
    rows = w.shape[0]
    return np.ascontiguousarray(
        w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )
