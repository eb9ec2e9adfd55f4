"""Model size presets for training from scratch: Llama-style configs (RoPE, RMSNorm, SwiGLU,
grouped-query attention, tied embeddings)."""

from __future__ import annotations

from dataclasses import replace

from engine.config import ModelConfig

# name -> (hidden, layers, heads, kv heads, MLP width, context)
_SHAPES: dict[str, tuple[int, int, int, int, int, int]] = {
    "nano": (64, 2, 4, 2, 176, 128),  # tests and smoke runs: trains in seconds
    "tiny": (256, 6, 8, 4, 704, 512),  # ~5M parameters at vocab 4096: the embedded guide
    "small": (512, 8, 8, 4, 1408, 1024),  # ~30M at vocab 8192: a few hours on a laptop CPU
    "base": (768, 12, 12, 4, 2048, 2048),  # ~100M: wants a GPU
}

PRESETS = tuple(_SHAPES)


def preset_config(name: str, vocab_size: int, *, context_length: int | None = None) -> ModelConfig:
    """A fresh ``ModelConfig`` for preset ``name`` and a tokenizer of ``vocab_size`` ids."""
    if name not in _SHAPES:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    hidden, layers, heads, kv_heads, mlp, ctx = _SHAPES[name]
    cfg = ModelConfig(
        architecture="LlamaForCausalLM",
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=mlp,
        context_length=ctx,
        norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    return replace(cfg, context_length=context_length) if context_length else cfg
