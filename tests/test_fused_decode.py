"""The native decode step (engine.fused_decode) against the torch blocks it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gguf import GGMLQuantizationType as Q
from test_gguf import write_gguf

import engine
from engine import fused_decode, native
from engine.generate import Model
from engine.kv_cache import KVCache

needs_kernels = pytest.mark.skipif(
    not native.ggml_kernels(), reason="no C compiler or AVX512-VNNI here: no GGML blocks"
)


def decode_logits(model: Model, ids: list[int], *, fused: bool) -> torch.Tensor:
    """Logits of teacher-forced decode steps after a 4-token prefill, with or without the
    native step."""
    net = model.net
    keep = net.fused_decode
    if not fused:
        net.fused_decode = None
    cfg = net.config
    cache = KVCache(
        cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, cfg.context_length, dtype=torch.bfloat16
    )
    out = []
    try:
        with torch.inference_mode():
            net(torch.tensor([ids[:4]]), cache=cache, start=0)
            for i in range(4, len(ids)):
                step = net(torch.tensor([[ids[i]]]), cache=cache, start=i, last_only=True)
                out.append(step[0, -1].float())
    finally:
        net.fused_decode = keep
    return torch.stack(out)


@needs_kernels
@pytest.mark.parametrize(
    ("arch", "qtype"),
    [
        ("llama", Q.Q8_0),
        ("llama", Q.Q4_0),
        ("qwen2", Q.Q4_1),  # qkv biases
        ("gemma3", Q.Q5_0),  # sandwich and query/key norms, GELU, sliding windows of 8
        ("gemma3", Q.Q5_1),
    ],
    ids=lambda x: getattr(x, "name", x),
)
def test_the_native_step_computes_what_the_torch_blocks_compute(
    arch: str, qtype: Q, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = engine.load(write_gguf(tmp_path / f"{arch}.gguf", arch, tiny_models[arch], qtype))
    assert model.net.fused_decode is not None
    ids = [(7 * i + 3) % 250 + 3 for i in range(40)]  # 36 steps: well past the windows
    fast, ref = decode_logits(model, ids, fused=True), decode_logits(model, ids, fused=False)
    # The same operations rounded at the same points: equal but for float32 sums taken in
    # another order (a norm's sum of squares), which can move a value by one bfloat16 step.
    scale = ref.abs().amax()
    assert (fast - ref).abs().amax() <= 0.02 * scale
    assert (fast.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9
    # and generation goes through it: the same greedy tokens as the torch path
    greedy = engine.SamplingParams(temperature=0, max_new_tokens=12)
    with_native = list(model.generate(ids[:6], greedy, ignore_eos=True))
    model.net.fused_decode, keep = None, model.net.fused_decode
    model.reset_cache()
    assert list(model.generate(ids[:6], greedy, ignore_eos=True)) == with_native
    model.net.fused_decode = keep


@needs_kernels
def test_a_refused_step_leaves_the_state_alone_and_the_torch_path_runs(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = engine.load(write_gguf(tmp_path / "l.gguf", "llama", tiny_models["llama"], Q.Q8_0))
    fd = model.net.fused_decode
    assert isinstance(fd, fused_decode.FusedDecode)
    ids = list(range(3, 20))
    ref = decode_logits(model, ids, fused=False)
    calls = []

    def refuse(*args: object) -> int:
        calls.append(args)
        return -1

    monkeypatch.setattr(fd, "_fn", refuse)
    assert torch.equal(decode_logits(model, ids, fused=True), ref)
    assert len(calls) == len(ids) - 4


@needs_kernels
def test_a_kernel_refusal_inside_the_step_restores_the_hidden_state(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The C side itself: a projection the product kernel refuses (a corrupt type number)
    fails the step, and x comes back as it went in."""
    model = engine.load(write_gguf(tmp_path / "l.gguf", "llama", tiny_models["llama"], Q.Q8_0))
    fd = model.net.fused_decode
    assert isinstance(fd, fused_decode.FusedDecode)
    last = fd._keep[0][model.net.config.num_layers - 1]
    saved = last.down.type[0]
    last.down.type[0] = 99
    try:
        cfg = model.net.config
        cache = KVCache(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, 64, dtype=torch.bfloat16)
        x = torch.randn(1, 1, cfg.hidden_size).bfloat16()
        rope = model.net.rope(0, 1)
        assert fd(x, cache, 0, rope, rope) is None
        before = x.clone()
        kern = native.kernel()
        assert kern is not None
        status = kern.decode_layers(
            fd._stack_ptr, x.data_ptr(), cache.k.data_ptr(), cache.v.data_ptr(),
            cache.k.stride(0), cache.k.stride(2), 0,
            rope[0].data_ptr(), rope[1].data_ptr(), rope[0].data_ptr(), rope[1].data_ptr(), 1,
        )  # fmt: skip
        assert status == -1 and torch.equal(x, before)
    finally:
        last.down.type[0] = saved


def test_models_it_does_not_take_keep_the_torch_path(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # floats, GPT-2 (LayerNorm, learned positions), Qwen 3's 24-wide heads (the attention
    # kernel takes multiples of 16), and the switch
    assert engine.load(tiny_models["llama"]).net.fused_decode is None
    gpt2 = write_gguf(tmp_path / "g.gguf", "gpt2", tiny_models["gpt2"], Q.Q8_0)
    assert engine.load(gpt2).net.fused_decode is None
    llama = write_gguf(tmp_path / "l.gguf", "llama", tiny_models["llama"], Q.Q8_0)
    monkeypatch.setenv(fused_decode.ENV, "0")
    assert engine.load(llama).net.fused_decode is None
    monkeypatch.delenv(fused_decode.ENV)
    assert (engine.load(llama).net.fused_decode is not None) == native.ggml_kernels()
