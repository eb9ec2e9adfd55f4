"""Tiny random models of each supported architecture, built with transformers (the reference)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "def main():\n    return 42  # code with    spaces\n",
    "你好，世界！语言模型在终端里运行。",
    "Emoji: 😀🎉🚀 and accents: café naïve résumé.",
    "The KV cache keeps keys and values of earlier tokens.",
] * 4

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def make_tokenizer(vocab_size: int = 300) -> Tokenizer:
    """A small byte-level BPE: multi-byte characters span several tokens, as in real models."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def hf_config(arch: str, vocab: int, **over: Any) -> Any:
    import transformers as tf

    eos = 2  # <|im_end|>
    if arch == "gpt2":
        return tf.GPT2Config(
            vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=128,
            bos_token_id=0, eos_token_id=eos, initializer_range=0.3, **over,
        )  # fmt: skip
    common = dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=0, eos_token_id=eos, initializer_range=0.3,
    )  # fmt: skip
    if arch == "gemma3":  # 6 layers: the 6th is global, the others slide (window 8)
        common |= dict(
            num_hidden_layers=6, head_dim=16, sliding_window=8, query_pre_attn_scalar=24,
            hidden_activation="gelu_pytorch_tanh", pad_token_id=1, initializer_range=0.05,
        )  # fmt: skip
        common["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        }
    if arch == "qwen3":
        common |= dict(head_dim=24)  # not hidden / heads: Qwen 3 states it
    if arch == "phi3":
        common |= dict(pad_token_id=1, partial_rotary_factor=0.5)
    common.update(over)
    cls = {
        "llama": tf.LlamaConfig,
        "mistral": tf.MistralConfig,
        "qwen2": tf.Qwen2Config,
        "qwen3": tf.Qwen3Config,
        "gemma3": tf.Gemma3TextConfig,
        "phi3": tf.Phi3Config,
    }[arch]
    return cls(**common)


def make_hf_model(arch: str, folder: Path, *, seed: int = 0, **over: Any) -> Any:
    """Build a random transformers model of ``arch``, save it with a tokenizer to ``folder``."""
    import transformers as tf

    torch.manual_seed(seed)
    tok = make_tokenizer()
    cfg = hf_config(arch, tok.get_vocab_size(), **over)
    cls = {
        "gpt2": tf.GPT2LMHeadModel,
        "llama": tf.LlamaForCausalLM,
        "mistral": tf.MistralForCausalLM,
        "qwen2": tf.Qwen2ForCausalLM,
        "qwen3": tf.Qwen3ForCausalLM,
        "gemma3": tf.Gemma3ForCausalLM,
        "phi3": tf.Phi3ForCausalLM,
    }[arch]
    model = cls(cfg).eval()
    with torch.no_grad():  # random biases, so the bias code paths are really exercised
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.02)
            elif name.endswith("norm.weight") and arch in ("gemma3", "qwen3", "phi3"):
                p.add_(torch.randn_like(p) * 0.2)  # not all ones (or zeros: Gemma's 1 + w)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save(str(folder / "tokenizer.json"))
    # A chat model's files (a template of its own): base models are tested on their own.
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {"eos_token": "<|im_end|>", "bos_token": "<|endoftext|>", "chat_template": CHATML}
        )
    )
    return model
