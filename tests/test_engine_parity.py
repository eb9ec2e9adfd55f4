"""Our Transformer against Hugging Face transformers on tiny random models of each family."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_hf_model

import engine

ARCHS = ("gpt2", "llama", "mistral", "qwen2")
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


@pytest.mark.parametrize("arch", ("gpt2", "qwen2"))
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
