"""A KV cache written in place at explicit positions, grown in doublings up to the context.

Decode steps never allocate: positions are written into preallocated storage. The storage
starts at ``INITIAL`` positions (or the whole context, if smaller) and doubles when a write
needs more, so a config that declares a huge context (1e9 positions) costs memory only for the
positions used; a chat reaches its working size after a few doublings, each one copy. Rolling
back to a prefix is just moving ``length`` (stale entries past it are overwritten by the next
write and never attended to).
"""

from __future__ import annotations

import torch

INITIAL = 4096  # positions allocated first


class KVCache:
    """Keys and values for every layer, shape ``[layers, 1, kv_heads, capacity, head_dim]``."""

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
        self.max_len = max_len
        self.length = 0  # number of valid positions
        self._shape = (num_layers, 1, num_kv_heads, head_dim)
        self._dtype, self._device = dtype, device
        self.k = self.v = torch.empty(0)
        self._allocate(min(max_len, INITIAL))

    @property
    def capacity(self) -> int:
        return int(self.k.shape[3])

    def _allocate(self, capacity: int) -> None:
        layers, batch, heads, dim = self._shape
        shape = (layers, batch, heads, capacity, dim)
        # empty, not zeros: every position is written before it is read, and untouched pages
        # of a long context then cost no resident memory.
        k = torch.empty(shape, dtype=self._dtype, device=self._device)
        v = torch.empty(shape, dtype=self._dtype, device=self._device)
        if self.k.numel():
            kept = min(self.capacity, capacity)
            k[:, :, :, :kept] = self.k[:, :, :, :kept]
            v[:, :, :, :kept] = self.v[:, :, :, :kept]
        self.k, self.v = k, v
        # One [1, kv_heads, capacity, head_dim] view per layer, made once: indexing the big
        # tensor on every write is several dispatches per layer per token.
        self._k = list(self.k.unbind(0))
        self._v = list(self.v.unbind(0))

    def write(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` ([1, kv_heads, n, head_dim]) at ``start``; return views of 0..start+n."""
        end = start + k.shape[2]
        self.reserve(end)
        kl, vl = self._k[layer], self._v[layer]
        kl.narrow(2, start, end - start).copy_(k)
        vl.narrow(2, start, end - start).copy_(v)
        return kl.narrow(2, 0, end), vl.narrow(2, 0, end)

    def reserve(self, end: int) -> None:
        """Make room for positions up to ``end`` (growing by doubling)."""
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: position {end} > {self.max_len}")
        if end > self.capacity:
            self._allocate(min(self.max_len, max(end, 2 * self.capacity)))

    def rollback(self, length: int) -> None:
        """Forget everything past ``length`` tokens."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot roll back to {length}: cache holds {self.length}")
        self.length = length

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes
