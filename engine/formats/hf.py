"""Tensor names between Hugging Face checkpoints and our ``Transformer``.

Llama/Mistral/Qwen2 use our names with a ``model.`` prefix. GPT-2 fuses q/k/v into one
``c_attn`` and stores linear weights as Conv1D (``[in, out]``), so those are split and
transposed on load and fused back on save.
"""

from __future__ import annotations

import re

import torch

from engine.config import ModelConfig

# Buffers some checkpoints carry that are recomputed, not loaded.
IGNORED = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|rotary_emb\.inv_freq)$")

_GPT2_LAYER = {
    "ln_1": "input_layernorm",
    "ln_2": "post_attention_layernorm",
    "attn.c_proj": "self_attn.o_proj",
    "mlp.c_fc": "mlp.up_proj",
    "mlp.c_proj": "mlp.down_proj",
}


def from_hf(cfg: ModelConfig, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF state dict -> ours."""
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if IGNORED.search(name):
            continue
        if cfg.family == "llama":
            out[name.removeprefix("model.")] = t
            continue
        out.update(_gpt2_tensor(cfg, name.removeprefix("transformer."), t))
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def _gpt2_tensor(cfg: ModelConfig, name: str, t: torch.Tensor) -> dict[str, torch.Tensor]:
    if name == "wte.weight":
        return {"embed_tokens.weight": t}
    if name == "wpe.weight":
        return {"embed_positions.weight": t}
    if name.startswith("ln_f."):
        return {"norm." + name[5:]: t}
    if name == "lm_head.weight":
        return {name: t}
    m = re.match(r"h\.(\d+)\.(.+)\.(weight|bias)$", name)
    if not m:
        return {name: t}  # unknown: reported as unexpected by the loader
    layer, part, kind = m.groups()
    prefix = f"layers.{layer}."
    conv = part in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    if conv and kind == "weight":
        t = t.t()  # Conv1D stores [in, out]
    if part == "attn.c_attn":
        q, k, v = t.split(cfg.hidden_size, dim=0)
        return {
            f"{prefix}self_attn.{p}_proj.{kind}": x.contiguous()
            for p, x in zip("qkv", (q, k, v), strict=True)
        }
    if part not in _GPT2_LAYER:
        return {name: t}
    return {f"{prefix}{_GPT2_LAYER[part]}.{kind}": t.contiguous()}


def to_hf(cfg: ModelConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> HF names (tied lm_head left out, as transformers saves it)."""
    state = dict(state)
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    if cfg.family == "llama":
        return {
            (k if k.startswith("lm_head.") else "model." + k): v.contiguous()
            for k, v in state.items()
        }
    inverse = {v: k for k, v in _GPT2_LAYER.items()}
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name == "embed_tokens.weight":
            out["transformer.wte.weight"] = t
        elif name == "embed_positions.weight":
            out["transformer.wpe.weight"] = t
        elif name.startswith("norm."):
            out["transformer.ln_f." + name[5:]] = t
        elif name == "lm_head.weight":
            out[name] = t
        else:
            m = re.match(r"layers\.(\d+)\.(.+)\.(weight|bias)$", name)
            assert m, name
            layer, part, kind = m.groups()
            if part.startswith("self_attn.") and part[10] in "qkv":
                continue  # fused below
            hf_part = inverse[part]
            conv = hf_part in ("attn.c_proj", "mlp.c_fc", "mlp.c_proj")
            out[f"transformer.h.{layer}.{hf_part}.{kind}"] = (
                t.t() if conv and kind == "weight" else t
            )
    for layer in range(cfg.num_layers):
        p = f"layers.{layer}.self_attn."
        for kind in ("weight", "bias"):
            if f"{p}q_proj.{kind}" in state:
                fused = torch.cat([state[f"{p}{x}_proj.{kind}"] for x in "qkv"], dim=0)
                out[f"transformer.h.{layer}.attn.c_attn.{kind}"] = (
                    fused.t() if kind == "weight" else fused
                )
    return {k: v.contiguous() for k, v in out.items()}
