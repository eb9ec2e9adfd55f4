"""The static KV cache: cached decode equals the full forward; prefix reuse; rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import engine
from engine.kv_cache import KVCache

GREEDY = engine.SamplingParams(temperature=0, max_new_tokens=16)


@pytest.fixture(scope="module")
def model(tiny_models: dict[str, Path]) -> engine.Model:
    return engine.load(tiny_models["llama"], dtype="float32")


def test_cached_decode_equals_uncached_forward(model: engine.Model) -> None:
    ids = model.tokenizer.encode("The quick brown fox")
    out = list(model.generate(ids, GREEDY, ignore_eos=True))
    # The naive path: a full forward over the whole sequence at every step.
    seq = list(ids)
    for _ in range(len(out)):
        seq.append(int(model.logits(seq)[-1].argmax()))
    assert out == seq[len(ids) :]


@pytest.mark.parametrize("grouped", [True, False])
def test_both_decode_attention_layouts_match_the_full_forward(
    model: engine.Model, grouped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 query heads on 2 key/value heads: one-token steps, in the grouped layout and in
    enable_gqa's, give the logits of a full forward."""
    import engine.model as model_module

    monkeypatch.setattr(model_module, "GROUPED_DECODE", grouped)
    assert model.config.num_heads != model.config.num_kv_heads
    ids = model.tokenizer.encode("The quick brown fox jumps over")
    cache = KVCache(2, model.config.num_kv_heads, model.config.head_dim, 128)
    with torch.no_grad():
        model.net(torch.tensor([ids[:3]]), cache=cache, start=0)
        steps = [model.net(torch.tensor([[t]]), cache=cache, start=i)[0, -1]
                 for i, t in enumerate(ids[3:], start=3)]  # fmt: skip
    full = model.logits(ids)[3:]
    assert (torch.stack(steps) - full).abs().max().item() < 1e-4  # float32 sums, reordered


def test_chunked_prefill_after_history_matches_full_forward(model: engine.Model) -> None:
    ids = model.tokenizer.encode("Hello world! The KV cache keeps keys and values.")
    cache = KVCache(2, model.config.num_kv_heads, model.config.head_dim, 128)
    with torch.no_grad():
        model.net(torch.tensor([ids[:5]]), cache=cache, start=0)
        tail = model.net(torch.tensor([ids[5:]]), cache=cache, start=5)[0]
    assert (tail - model.logits(ids)[5:]).abs().max().item() < 1e-5


def test_second_call_reuses_shared_prefix(
    model: engine.Model, tiny_models: dict[str, Path]
) -> None:
    first = model.tokenizer.encode("The quick brown fox jumps over the lazy dog.")
    list(model.generate(first, GREEDY))
    second = first + model.tokenizer.encode(" Hello world")
    reused = list(model.generate(second, GREEDY, ignore_eos=True))
    assert model.last_stats.reused_tokens == len(first)
    fresh = engine.load(tiny_models["llama"], dtype="float32")
    assert reused == list(fresh.generate(second, GREEDY, ignore_eos=True))
    assert fresh.last_stats.reused_tokens == 0


def test_edit_in_the_middle_rolls_back_to_the_common_prefix(
    model: engine.Model, tiny_models: dict[str, Path]
) -> None:
    a = model.tokenizer.encode("one two three four five six")
    b = a[:3] + model.tokenizer.encode(" KV cache")
    list(model.generate(a, GREEDY))
    got = list(model.generate(b, GREEDY, ignore_eos=True))
    assert model.last_stats.reused_tokens == 3
    fresh = engine.load(tiny_models["llama"], dtype="float32")
    assert got == list(fresh.generate(b, GREEDY, ignore_eos=True))


def test_identical_prompt_reprefills_only_the_last_token(model: engine.Model) -> None:
    ids = model.tokenizer.encode("Hello world")
    first = list(model.generate(ids, GREEDY, ignore_eos=True))
    again = list(model.generate(ids, GREEDY, ignore_eos=True))
    assert first == again
    assert model.last_stats.reused_tokens == len(ids) - 1


def test_chat_turns_reuse_earlier_turns(model: engine.Model) -> None:
    msgs = [{"role": "user", "content": "Hello"}]
    reply = "".join(model.chat(msgs, GREEDY))
    first_prompt = model.last_stats.prompt_tokens
    msgs += [{"role": "assistant", "content": reply}, {"role": "user", "content": "More"}]
    "".join(model.chat(msgs, GREEDY))
    assert model.last_stats.reused_tokens >= first_prompt - 1


def test_rollback_rules() -> None:
    cache = KVCache(1, 1, 4, 8)
    k = torch.ones(1, 1, 3, 4)
    keys, _ = cache.write(0, 0, k, k)
    assert keys.shape[2] == 3
    cache.length = 3
    cache.rollback(1)
    assert cache.length == 1
    with pytest.raises(ValueError):
        cache.rollback(2)
    with pytest.raises(ValueError):
        cache.write(0, 6, k, k)


def test_cache_is_allocated_once(model: engine.Model) -> None:
    list(model.generate(model.tokenizer.encode("a b c"), GREEDY))
    before = model._cache
    assert before is not None
    ptr = before.k.data_ptr()
    list(model.generate(model.tokenizer.encode("x y z w"), GREEDY))
    assert model._cache is before and before.k.data_ptr() == ptr


def test_a_huge_declared_context_costs_only_the_positions_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import engine.kv_cache as kv

    monkeypatch.setattr(kv, "INITIAL", 4)
    cache = KVCache(2, 1, 4, 10**9)  # a config that declares a billion positions
    assert cache.capacity == 4
    first = torch.arange(12.0).view(1, 1, 3, 4)
    cache.write(0, 0, first, first)
    keys, _ = cache.write(0, 3, torch.ones(1, 1, 2, 4), torch.ones(1, 1, 2, 4))
    assert cache.capacity == 8  # doubled when a write needed more, earlier entries kept
    assert torch.equal(keys[:, :, :3], first) and keys.shape[2] == 5
    cache.write(1, 0, torch.zeros(1, 1, 20, 4), torch.zeros(1, 1, 20, 4))
    assert cache.capacity == 20
