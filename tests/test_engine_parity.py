"""Our Transformer against Hugging Face transformers on tiny random models of each family."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_hf_model

import engine

ARCHS = ("gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3")
TEXT = "Hello world! 你好，世界 😀 The KV cache keeps keys."


def _reference(folder: Path):
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _ref_greedy(ref, ids: list[int], n: int) -> list[int]:
    out = ref.generate(
        torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_match_transformers(arch: str, tiny_models: dict[str, Path]) -> None:
    ref = _reference(tiny_models[arch])
    model = engine.load(tiny_models[arch], dtype="float32")
    ids = model.tokenizer.encode(TEXT)
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_with_kv_cache_matches_transformers(arch: str, tiny_models: dict[str, Path]) -> None:
    ref = _reference(tiny_models[arch])
    model = engine.load(tiny_models[arch], dtype="float32")
    ids = model.tokenizer.encode(TEXT)
    params = engine.SamplingParams(temperature=0, max_new_tokens=24)
    ours = list(model.generate(ids, params, ignore_eos=True))
    assert ours == _ref_greedy(ref, ids, 24)
    assert len(set(ours)) > 1, "a degenerate continuation would prove little"


def test_llama3_rope_scaling_and_tied_embeddings(tmp_path: Path) -> None:
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    ref = make_hf_model("llama", tmp_path / "m", rope_scaling=scaling, tie_word_embeddings=True)
    model = engine.load(tmp_path / "m", dtype="float32")
    assert model.config.rope_scaling and model.config.rope_scaling["rope_type"] == "llama3"
    assert model.net.lm_head.weight is model.net.embed_tokens.weight
    ids = model.tokenizer.encode(TEXT * 2)
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("arch", ("gpt2", "qwen2", "gemma3", "phi3"))
def test_saved_checkpoint_loads_in_transformers(
    arch: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = engine.load(tiny_models[arch], dtype="float32")
    out = engine.save(model, tmp_path / "copy")
    ids = model.tokenizer.encode(TEXT)
    with torch.no_grad():
        theirs = _reference(out)(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - theirs).abs().max().item() < 1e-4
    again = engine.load(out, dtype="float32")
    assert torch.equal(again.logits(ids), model.logits(ids))
    assert again.tokenizer.render_chat([{"role": "user", "content": "hi"}]) == (
        model.tokenizer.render_chat([{"role": "user", "content": "hi"}])
    )


def test_mistral_sliding_window_matches_transformers(tmp_path: Path) -> None:
    ref = make_hf_model("mistral", tmp_path / "m", sliding_window=8)
    model = engine.load(tmp_path / "m", dtype="float32")
    assert model.config.sliding_window == 8
    ids = model.tokenizer.encode(TEXT)
    assert len(ids) > 16
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4
    params = engine.SamplingParams(temperature=0, max_new_tokens=12)
    assert list(model.generate(ids, params, ignore_eos=True)) == _ref_greedy(ref, ids, 12)


def test_gemma3_interleaves_sliding_and_global_layers_with_their_own_rope(
    tiny_models: dict[str, Path],
) -> None:
    model = engine.load(tiny_models["gemma3"], dtype="float32")
    cfg = model.config
    assert cfg.layer_types == ["sliding_attention"] * 5 + ["full_attention"]
    assert cfg.local_rope_theta == 10_000.0 and cfg.rope_theta == 1_000_000.0
    ids = model.tokenizer.encode(TEXT * 2)
    assert len(ids) > 4 * cfg.sliding_window  # the window is crossed many times
    ref = _reference(tiny_models["gemma3"])
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4
    # prefill in two pieces (a chunk after cached history) then decode: the same as one pass
    first = list(model.generate(ids[:50], engine.SamplingParams(max_new_tokens=1)))
    assert first
    params = engine.SamplingParams(temperature=0, max_new_tokens=8)
    assert list(model.generate(ids, params, ignore_eos=True)) == _ref_greedy(ref, ids, 8)
    assert model.last_stats.reused_tokens == 50


def test_qwen2_slides_only_from_max_window_layers_on(tmp_path: Path) -> None:
    ref = make_hf_model(
        "qwen2", tmp_path / "m", use_sliding_window=True, sliding_window=8, max_window_layers=1
    )
    model = engine.load(tmp_path / "m", dtype="float32")
    assert [model.config.layer_window(i) for i in range(2)] == [None, 8]
    ids = model.tokenizer.encode(TEXT)
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4


def test_phi3_longrope_uses_short_factors_then_long_ones_past_the_original_context(
    tmp_path: Path,
) -> None:
    torch.manual_seed(1)
    short, long = (1 + torch.rand(4)).tolist(), (2 + 3 * torch.rand(4)).tolist()
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
            "short_factor": short, "long_factor": long}  # fmt: skip
    ref = make_hf_model("phi3", tmp_path / "m", rope_parameters=rope,
                        original_max_position_embeddings=16)  # fmt: skip
    model = engine.load(tmp_path / "m", dtype="float32")
    assert model.config.rope_scaling and model.config.rope_scaling["rope_type"] == "longrope"
    for text in ("Hello world", TEXT):  # 8 tokens (short factors), 41 (long ones)
        ids = model.tokenizer.encode(text)
        with torch.no_grad():
            expected = ref(torch.tensor([ids])).logits[0]
        assert (model.logits(ids) - expected).abs().max().item() < 1e-4
