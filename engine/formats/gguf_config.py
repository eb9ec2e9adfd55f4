"""config.json (Hugging Face keys) from a GGUF file's ``<arch>.*`` metadata."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import ModelLoadError
from engine.formats.gguf_dequant import dequantize_tensor
from engine.formats.gguf_tokenizer import field_value

ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
}
# What llama.cpp hard-codes for Gemma 3 rather than storing in the file.
GEMMA3_SLIDING_PATTERN = 6  # every 6th layer attends globally
GEMMA3_LOCAL_ROPE_THETA = 10000.0


def hf_config(reader: Any, arch: str, tensors: dict[str, Any], name: str) -> dict[str, Any]:
    """config.json (HF keys) from ``<arch>.*`` metadata."""

    def get(key: str, default: Any = None) -> Any:
        v = field_value(reader, f"{arch}.{key}")
        if v is None and default is None:
            raise ModelLoadError(f"{name}: the GGUF metadata lacks {arch}.{key}")
        return default if v is None else v

    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise ModelLoadError(f"{name}: the GGUF file has no token_embd.weight tensor")
    vocab = int(embd.shape[1])
    hidden, layers, heads = (
        int(get("embedding_length")),
        int(get("block_count")),
        int(get("attention.head_count")),
    )
    common: dict[str, Any] = {
        "architectures": [ARCHITECTURES[arch]],
        "model_type": "gemma3_text" if arch == "gemma3" else arch,
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in tensors,
        "torch_dtype": "float32",
    }
    if arch == "gpt2":
        return common | {
            "n_embd": hidden,
            "n_layer": layers,
            "n_head": heads,
            "n_inner": int(get("feed_forward_length", 4 * hidden)),
            "n_positions": int(get("context_length")),
            "layer_norm_epsilon": float(get("attention.layer_norm_epsilon", 1e-5)),
            "activation_function": "gelu_new",
        }
    head_dim = int(
        get("attention.key_length", 0) or get("rope.dimension_count", 0) or hidden // heads
    )
    out = common | {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "intermediate_size": int(get("feed_forward_length")),
        "max_position_embeddings": int(get("context_length")),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        "hidden_act": "silu",
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "rope_scaling": _rope_scaling(reader, arch, tensors, head_dim, name),
    }
    if arch == "llama":
        out["attention_bias"] = "blk.0.attn_q.bias" in tensors
    window = field_value(reader, f"{arch}.attention.sliding_window")
    if arch == "gemma3":
        # llama.cpp scales queries by 1/sqrt(head_dim), except for the 27B (62 layers).
        scalar = hidden // heads if layers == 62 else head_dim
        pattern = int(get("attention.sliding_window_pattern", GEMMA3_SLIDING_PATTERN))
        out |= {
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": scalar,
            "sliding_window": int(window or 512),
            "layer_types": [
                "sliding_attention" if (i + 1) % pattern else "full_attention"
                for i in range(layers)
            ],
            "rope_local_base_freq": GEMMA3_LOCAL_ROPE_THETA,
        }
        del out["hidden_act"]
    elif arch == "phi3":
        rotary = int(get("rope.dimension_count", head_dim))
        out |= {"partial_rotary_factor": rotary / head_dim, "sliding_window": window}
    return out


def _rope_scaling(
    reader: Any, arch: str, tensors: dict[str, Any], head_dim: int, name: str
) -> dict[str, Any] | None:
    kind = field_value(reader, f"{arch}.rope.scaling.type")
    factor = field_value(reader, f"{arch}.rope.scaling.factor")
    if "rope_factors_long.weight" in tensors:
        # Phi-3/4 (longrope): llama.cpp keeps the two factor sets as tensors.
        original = field_value(reader, f"{arch}.rope.scaling.original_context_length")
        if "rope_factors_short.weight" not in tensors or not original:
            raise ModelLoadError(f"{name}: incomplete longrope rope scaling in the file")
        scaling: dict[str, Any] = {
            "rope_type": "longrope",
            "long_factor": dequantize_tensor(tensors["rope_factors_long.weight"])
            .reshape(-1)
            .tolist(),
            "short_factor": dequantize_tensor(tensors["rope_factors_short.weight"])
            .reshape(-1)
            .tolist(),
            "original_max_position_embeddings": int(original),
        }
        attn = field_value(reader, f"{arch}.rope.scaling.attn_factor")
        if attn:
            scaling["attention_factor"] = float(attn)
        return scaling
    if kind == "longrope":
        raise ModelLoadError(f"{name}: longrope rope scaling without its factor tensors")
    if "rope_freqs.weight" in tensors:
        # Llama 3.1+: llama.cpp stores the per-frequency divisors, not the HF parameters.
        # Recover them (every Llama 3.x uses these three) and check that they reproduce the table.
        freqs = dequantize_tensor(tensors["rope_freqs.weight"]).reshape(-1)
        theta = float(field_value(reader, f"{arch}.rope.freq_base") or 10000.0)
        scaling = {
            "rope_type": "llama3",
            "factor": float(freqs.max()),
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
        if not np.allclose(llama3_divisors(scaling, theta, head_dim), freqs, rtol=1e-3):
            raise ModelLoadError(f"{name}: unsupported rope_freqs table (not Llama 3 rope scaling)")
        return scaling
    if kind in (None, "none") or factor in (None, 1.0, 0.0):
        return None
    if kind != "linear":
        raise ModelLoadError(
            f"{name}: unsupported rope scaling {kind!r}; supported: linear, llama3"
        )
    return {"rope_type": "linear", "factor": float(factor)}


def llama3_divisors(s: dict[str, Any], theta: float, head_dim: int) -> np.ndarray:
    """What llama.cpp's converter writes as ``rope_freqs`` for these llama3 parameters."""
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * np.pi / freqs
    old = s["original_max_position_embeddings"]
    low, high = old / s["low_freq_factor"], old / s["high_freq_factor"]
    smooth = (old / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] - s["low_freq_factor"])
    mid = 1 / ((1 - smooth) / s["factor"] + smooth)
    return np.where(wavelen < high, 1.0, np.where(wavelen > low, s["factor"], mid))
