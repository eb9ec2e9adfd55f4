"""The native decode-attention kernel against float32 SDPA, its fallbacks, and the model with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import engine
from engine import native
from engine.kv_cache import KVCache

needs_kernel = pytest.mark.skipif(
    native.kernel() is None, reason="no C compiler or no AVX-512 here: the engine uses SDPA"
)


def _case(kv_heads: int, group: int, dim: int, length: int, capacity: int, seed: int = 0):
    """A query and cache views like the model's: [1, kv_heads, capacity, dim] storage, the
    first ``length`` positions used; bfloat16 with a spread of scores (scale 3 queries)."""
    gen = torch.Generator().manual_seed(seed)
    q = (torch.randn(1, kv_heads * group, 1, dim, generator=gen) * 3).bfloat16()
    k = torch.randn(1, kv_heads, capacity, dim, generator=gen).bfloat16()
    v = torch.randn(1, kv_heads, capacity, dim, generator=gen).bfloat16()
    return q, k.narrow(2, 0, length), v.narrow(2, 0, length)


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None):
    """float32 SDPA of the same bfloat16 values, as [1, 1, heads * dim]."""
    out = F.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), scale=scale, enable_gqa=q.shape[1] != k.shape[1]
    )
    return out.transpose(1, 2).reshape(1, 1, -1)


@needs_kernel
@pytest.mark.parametrize(
    ("kv_heads", "group", "dim", "length"),
    [
        (3, 3, 64, 1),  # SmolLM2's heads, a one-token context
        (3, 3, 64, 100),
        (3, 3, 64, 2000),  # several key blocks, merged
        (1, 4, 256, 257),  # Gemma 3 270M's heads; one key past a block
        (8, 1, 128, 300),  # no grouping (GPT-2-like)
        (2, 7, 96, 513),  # an odd group, a head size with no specialisation
        (4, 16, 32, 40),  # the largest group
        (2, 2, 16, 33),  # the tests' tiny models: a head half a bfloat16 dot product wide
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_matches_float32_attention(
    kv_heads: int, group: int, dim: int, length: int, threads: int
) -> None:
    q, k, v = _case(kv_heads, group, dim, length, capacity=length + 37)
    ref = _reference(q, k, v, None)
    sdpa_bf16 = F.scaled_dot_product_attention(q, k, v, enable_gqa=group > 1)
    sdpa_error = (sdpa_bf16.transpose(1, 2).reshape(1, 1, -1).float() - ref).abs().max()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = native.decode_attention(q, k, v, None)
    finally:
        torch.set_num_threads(before)
    assert out is not None and out.shape == (1, 1, kv_heads * group * dim)
    error = (out.float() - ref).abs().max()
    # One bfloat16 rounding of the output (2^-9 relative): no worse than SDPA's own kernel.
    assert error <= max(sdpa_error.item() * 1.25, 1e-3)
    assert error <= ref.abs().max() * 2**-8


@needs_kernel
def test_kernel_takes_a_custom_scale_and_an_offset_window() -> None:
    """Gemma's sliding layers pass the last ``window`` keys: a view that starts mid-storage."""
    q, k, v = _case(2, 2, 64, 700, capacity=1024, seed=1)
    k, v = k[:, :, -512:], v[:, :, -512:]
    out = native.decode_attention(q, k, v, 0.05)
    assert out is not None
    assert (out.float() - _reference(q, k, v, 0.05)).abs().max() < 0.02


@needs_kernel
def test_the_build_without_avx512_bf16_matches_too(tmp_path: Path) -> None:
    """CPUs with AVX-512 but not its bfloat16 dot product take the conversion path."""
    import ctypes

    lib = native.build(tmp_path, extra_flags=("-mno-avx512bf16",))
    kern = native._Kernel(ctypes.CDLL(str(lib)))
    assert kern.isa == 1
    q, k, v = _case(3, 3, 64, 600, capacity=700, seed=2)
    out = torch.empty(1, 1, 9 * 64, dtype=torch.bfloat16)
    status = kern.fn(
        q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), 3, 3, 64, 600,
        k.stride(1), v.stride(1), 0.125, 2,
    )  # fmt: skip
    assert status == 0
    assert (out.float() - _reference(q, k, v, 0.125)).abs().max() < 0.02


@needs_kernel
def test_the_kernel_declines_what_it_does_not_take() -> None:
    q, k, v = _case(3, 3, 64, 10, capacity=10)
    assert native.decode_attention(q.float(), k.float(), v.float(), None) is None  # float32
    assert native.decode_attention(q.expand(2, -1, -1, -1), k, v, None) is None  # a batch
    q2, k2, v2 = _case(1, 1, 40, 10, capacity=10)  # head size not a multiple of 16
    assert native.decode_attention(q2, k2, v2, None) is None
    assert native.decode_attention(q.requires_grad_(), k, v, None) is None  # it has no backward


def test_no_compiler_or_switched_off_means_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_kernel", None)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    q, k, v = _case(3, 3, 64, 10, capacity=10)
    assert native.decode_attention(q, k, v, None) is None
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.delenv("CC")
    monkeypatch.setenv(native.ENV, "0")
    assert native.kernel() is None


@needs_kernel
def test_bfloat16_decode_with_the_kernel_matches_sdpa(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's one-token steps at bfloat16 give the same logits through the kernel as
    through SDPA (both against one bfloat16 cache), and greedy decoding picks the same."""
    model = engine.load(tiny_models["llama"], dtype="bfloat16")
    cfg = model.config
    ids = model.tokenizer.encode("The quick brown fox jumps over the lazy dog again")

    def steps() -> torch.Tensor:
        cache = KVCache(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, 128, dtype=torch.bfloat16)
        with torch.no_grad():
            model.net(torch.tensor([ids[:2]]), cache=cache, start=0)
            return torch.stack(
                [
                    model.net(torch.tensor([[t]]), cache=cache, start=i)[0, -1].float()
                    for i, t in enumerate(ids[2:], start=2)
                ]  # fmt: skip
            )

    calls = []
    real = native.decode_attention

    def counted(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(native, "decode_attention", counted)
    with_kernel = steps()
    assert calls and all(calls)
    monkeypatch.setattr(native, "decode_attention", lambda *a: None)
    with_sdpa = steps()
    assert (with_kernel - with_sdpa).abs().max() < 0.05 * with_sdpa.abs().max()
    assert torch.equal(with_kernel.argmax(-1), with_sdpa.argmax(-1))
