"""The real Gemma 3 270M base GGUF (Q4_K_M) converted by us against transformers loading the
same file: Gemma's SentencePiece tokenizer, its interleaved sliding/global layers, and what a
base model without a chat template tells the user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import engine
from engine import native
from engine.kv_cache import KVCache

pytestmark = pytest.mark.real_model

TEXTS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "你好，世界！语言模型在终端里运行。",
    "Emoji: 😀🎉🚀👩‍👩‍👧 and accents: café naïve résumé.",
    "def main(x):\n\treturn {'a': x ** 2}  # code\n",
    "a   b\n\n\n   c \t\t d    \n\n",
]
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gemma-home")


@pytest.fixture(scope="module")
def ours(gemma3_gguf: Path, home: Path) -> engine.Model:
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the per-test home
        mp.setenv("CHATAPP_HOME", str(home))
        return engine.load(gemma3_gguf, dtype="float32")


@pytest.fixture(scope="module")
def reference(gemma3_gguf: Path) -> tuple[Any, Any]:
    """transformers' own GGUF loading (~40 s), once per module."""
    transformers = pytest.importorskip("transformers")
    folder, name = gemma3_gguf.parent, gemma3_gguf.name
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    net = transformers.AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32
    )
    return tok, net.eval()


def test_gemma3_architecture_is_read_from_the_file(ours: engine.Model) -> None:
    cfg = ours.config
    assert cfg.architecture == "Gemma3ForCausalLM" and cfg.vocab_size == 262144
    assert cfg.sliding_window == 512 and cfg.layer_types is not None
    assert cfg.layer_types.count("full_attention") == 3  # every 6th of 18 layers


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_matches_transformers(
    text: str, ours: engine.Model, reference: tuple[Any, Any]
) -> None:
    tok, _ = reference
    assert ours.tokenizer.encode(text) == tok(text)["input_ids"]
    assert ours.tokenizer.decode(ours.tokenizer.encode(text)) == text


def test_logits_and_greedy_match_transformers(
    ours: engine.Model, reference: tuple[Any, Any]
) -> None:
    _, net = reference
    ids = ours.tokenizer.encode(PROMPT)
    with torch.no_grad():
        expected = net(torch.tensor([ids])).logits[0]
    assert (ours.logits(ids) - expected).abs().max().item() < 2e-3
    params = engine.SamplingParams(temperature=0, max_new_tokens=16)
    mine = list(ours.generate(ids, params, ignore_eos=True))
    theirs = net.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)
    assert mine == theirs[0, len(ids) :].tolist()
    assert "France" in ours.tokenizer.decode(mine)


def test_the_quantized_default_path_continues_the_text(
    gemma3_gguf: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATAPP_HOME", str(home))
    model = engine.load(gemma3_gguf)
    # Q4_K_M: Q4_K and Q6_K blocks as they are where the native kernels run, else int4/int8
    assert ("q4_k" if native.ggml_kernels() else "int4") in model.weight_format
    ids = model.tokenizer.encode(PROMPT)
    out = list(model.generate(ids, engine.SamplingParams(temperature=0, max_new_tokens=12)))
    assert "capital" in model.tokenizer.decode(out)


@pytest.mark.skipif(not native.ggml_kernels(), reason="no native K-quant kernels here")
def test_the_blocks_kernels_agree_with_the_converted_int4_int8_path(
    gemma3_gguf: Path, ours: engine.Model, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding from the file's blocks and from their conversion (int4/int8, Q8_0 as
    bfloat16) both pick the tokens the float32 reference picks. (Before Q8_0 was converted to
    bfloat16 the blocks also did at least as well as the conversion: 0.90/0.90 against
    0.88/0.87; now the conversion's exact embedding/head makes it the closer one, ~1.0 against
    0.93, at twice the head's bytes a token.)"""
    monkeypatch.setenv("CHATAPP_HOME", str(home))
    blocks = engine.load(gemma3_gguf)
    monkeypatch.setattr(native, "ggml_kernels", lambda: False)
    converted = engine.load(gemma3_gguf)
    assert "q4_k" in blocks.weight_format and "q4_k" not in converted.weight_format
    ids = ours.tokenizer.encode(" ".join(TEXTS[:1] + [TEXTS[3]]) * 2)
    ref = ours.logits(ids).argmax(-1)

    def stepwise(model: engine.Model) -> torch.Tensor:  # the decode path: a token a step
        cfg = model.config
        cache = KVCache(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, 256, dtype=model.dtype)
        with torch.no_grad():
            return torch.stack(
                [
                    model.net(torch.tensor([[t]]), cache=cache, start=i)[0, -1].argmax()
                    for i, t in enumerate(ids)
                ]  # fmt: skip
            )

    for pick in (lambda m: m.logits(ids).argmax(-1), stepwise):  # prefill, decode
        agree = [float((pick(m) == ref).float().mean()) for m in (blocks, converted)]
        assert min(agree) >= 0.85, agree


def test_a_base_model_says_so_and_chats_in_gemmas_turn_format(ours: engine.Model) -> None:
    assert any("base model" in w and "Gemma's turn format" in w for w in ours.warnings)
    text = ours.tokenizer.render_chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert ours.tokenizer.encode("<end_of_turn>", add_special_tokens=False)[0] in ours.eos_ids
