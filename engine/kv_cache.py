"""A static KV cache: preallocated to the context length, written in place at explicit positions.

The cache never reallocates while decoding; rolling back to a prefix is just moving ``length``
(the stale entries past it are overwritten by the next write and never attended to).
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values for every layer, shape ``[layers, 1, kv_heads, max_len, head_dim]``."""

    def __init__(
        self,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        max_len: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (num_layers, 1, num_kv_heads, max_len, head_dim)
        # empty, not zeros: every position is written before it is read, and untouched pages
        # of a long context then cost no resident memory.
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        # One [1, kv_heads, max_len, head_dim] view per layer, made once: indexing the big
        # tensor on every write is several dispatches per layer per token.
        self._k = list(self.k.unbind(0))
        self._v = list(self.v.unbind(0))
        self.max_len = max_len
        self.length = 0  # number of valid positions

    def write(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` ([1, kv_heads, n, head_dim]) at ``start``; return views of 0..start+n."""
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: position {end} > {self.max_len}")
        kl, vl = self._k[layer], self._v[layer]
        kl.narrow(2, start, end - start).copy_(k)
        vl.narrow(2, start, end - start).copy_(v)
        return kl.narrow(2, 0, end), vl.narrow(2, 0, end)

    def rollback(self, length: int) -> None:
        """Forget everything past ``length`` tokens."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot roll back to {length}: cache holds {self.length}")
        self.length = length

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes
