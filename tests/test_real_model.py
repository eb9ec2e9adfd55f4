"""The real SmolLM2 GGUF (Q4_1/Q8_0) converted by us against transformers loading the same file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import engine
from engine import native
from engine.bench import QUALITY_CHAT
from engine.formats.gguf import gguf_metadata_summary

pytestmark = pytest.mark.real_model

TEXTS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "你好，世界！语言模型在终端里运行。",
    "Emoji: 😀🎉🚀👩‍👩‍👧 and accents: café naïve résumé.",
    "def main(x):\n\treturn {'a': x ** 2}  # code\n",
    "a   b\n\n\n   c \t\t d    \n\n",
    " leading space, 1234567 and 3.14159",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
]
CHAT = [{"role": "user", "content": "Write a short poem about the sea."}]


@pytest.fixture(scope="module")
def ours(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> engine.Model:
    # Module scope runs before the per-test CHATAPP_HOME: give the conversion its own home.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHATAPP_HOME", str(tmp_path_factory.mktemp("gguf-home")))
        return engine.load(smollm2_gguf, dtype="float32")


@pytest.fixture(scope="module")
def reference(smollm2_gguf: Path) -> tuple[Any, Any]:
    """transformers' own GGUF loading: slow (~15 s), so once per module."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # transformers needs it to load GGUF files
    folder, name = smollm2_gguf.parent, smollm2_gguf.name
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32
    ).eval()
    return tok, model


def test_metadata_summary(smollm2_gguf: Path) -> None:
    info = gguf_metadata_summary(smollm2_gguf)
    assert info["architecture"] == "llama"
    assert info["file_type"] == "Q4_1"
    assert info["context_length"] == 8192
    assert 130e6 < info["parameters"] < 140e6


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_matches_transformers(
    text: str, ours: engine.Model, reference: tuple[Any, Any]
) -> None:
    ref_tok, _ = reference
    ids = ours.tokenizer.encode(text)
    assert ids == ref_tok(text).input_ids
    assert ours.tokenizer.decode(ids, skip_special_tokens=False) == ref_tok.decode(ids)


def test_logits_match_transformers(ours: engine.Model, reference: tuple[Any, Any]) -> None:
    _, ref = reference
    ids = ours.tokenizer.encode_chat(CHAT) + ours.tokenizer.encode("The sea is")
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (ours.logits(ids) - expected).abs().max().item() < 2e-3


def test_greedy_continuation_matches_transformers(
    ours: engine.Model, reference: tuple[Any, Any]
) -> None:
    _, ref = reference
    ids = ours.tokenizer.encode_chat(CHAT)
    params = engine.SamplingParams(temperature=0, max_new_tokens=64)
    got = list(ours.generate(ids, params, ignore_eos=True))
    prompt = torch.tensor([ids])
    # An explicit mask: otherwise transformers masks every pad id, and SmolLM2's pad id is
    # <|im_end|>, which the chat prompt contains.
    out = ref.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=64,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=2,
    )
    assert got == out[0, len(ids) :].tolist()


def test_answers_capital_of_france(ours: engine.Model) -> None:
    params = engine.SamplingParams(temperature=0, max_new_tokens=32)
    reply = "".join(
        ours.chat([{"role": "user", "content": "What is the capital of France?"}], params)
    )
    assert "Paris" in reply


def test_chat_stops_at_end_of_turn(ours: engine.Model) -> None:
    params = engine.SamplingParams(temperature=0, max_new_tokens=200)
    list(ours.chat([{"role": "user", "content": "Say hello."}], params))
    assert ours.last_stats is not None and ours.last_stats.stop_reason == "eos"


# ---------------------------------------------------------------- the default (quantized) path


@pytest.fixture(scope="module")
def fast(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> engine.Model:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHATAPP_HOME", str(tmp_path_factory.mktemp("gguf-home-q")))
        return engine.load(smollm2_gguf)


def test_default_path_keeps_the_file_quantized(fast: engine.Model, smollm2_gguf: Path) -> None:
    # Q4_1 and the Q8_0 embedding/head as their blocks where the native kernels run (else
    # int4, and the Q8_0 embedding/head as bfloat16)
    assert fast.weight_format == ("q4_1+q8_0" if native.ggml_kernels() else "int4")
    cache = sum(f.stat().st_size for f in Path(fast.path).iterdir() if f.is_file())
    assert cache < 1.5 * smollm2_gguf.stat().st_size


def test_default_path_agrees_with_the_float_reference(
    fast: engine.Model, ours: engine.Model
) -> None:
    """Top-1 of the fast path against the float32 dequantized reference, teacher-forced over
    256 positions of a multi-turn chat (llama.cpp on the same file: 98%)."""
    ids = ours.tokenizer.encode_chat(QUALITY_CHAT)[:257]
    assert len(ids) == 257
    a, b = ours.logits(ids).argmax(-1), fast.logits(ids).argmax(-1)
    assert float((a[:256] == b[:256]).float().mean()) >= 0.97


def test_default_path_answers_capital_of_france(fast: engine.Model) -> None:
    params = engine.SamplingParams(temperature=0, max_new_tokens=32)
    reply = "".join(
        fast.chat([{"role": "user", "content": "What is the capital of France?"}], params)
    )
    assert "Paris" in reply


def test_the_path_without_native_kernels_answers_capital_of_france(
    smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Where the block kernels cannot run (no AVX512-VNNI, CHATAPP_NATIVE=0), the blocks are
    converted at load: Q4_1 to int4, the Q8_0 embedding/head to bfloat16. (As int8 with a
    scale a row, this very prompt came out as "L'Étoile, la Marseillaise, la femme...".)"""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHATAPP_HOME", str(tmp_path_factory.mktemp("gguf-home-portable")))
        mp.setattr(native, "ggml_kernels", lambda: False)
        portable = engine.load(smollm2_gguf)
    assert portable.weight_format == "int4"
    params = engine.SamplingParams(temperature=0, max_new_tokens=32)
    reply = "".join(
        portable.chat([{"role": "user", "content": "What is the capital of France?"}], params)
    )
    assert "Paris" in reply
