"""Tensor names between Hugging Face checkpoints and our ``Transformer``.

Llama/Mistral/Qwen2 use our names with a ``model.`` prefix, but keep q/k/v and gate/up as
separate matrices, which our model fuses (``qkv_proj``, ``gate_up_proj``). GPT-2 fuses q/k/v
already (``c_attn``) and stores linear weights as Conv1D (``[in, out]``), so those are
transposed. ``from_hf`` gives the per-part names (``q_proj``...) that errors can name;
``fuse`` then joins the parts. Values may be ``QuantizedWeight``s (always ``[out, in]``).
"""

from __future__ import annotations

import re
from typing import Any

from engine.config import ModelConfig
from engine.quantize import QuantizedWeight, join_rows

# Buffers some checkpoints carry that are recomputed, not loaded.
IGNORED = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|rotary_emb\.inv_freq)$")

# Our fused projections and the parts they are made of, in order.
FUSED = {
    "self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj"),
}

_GPT2_LAYER = {
    "ln_1": "input_layernorm",
    "ln_2": "post_attention_layernorm",
    "attn.c_proj": "self_attn.o_proj",
    "mlp.c_fc": "mlp.up_proj",
    "mlp.c_proj": "mlp.down_proj",
}
_GPT2_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")

Weight = Any  # torch.Tensor | QuantizedWeight (a list of them after ``fuse``)


def from_hf(cfg: ModelConfig, tensors: dict[str, Weight]) -> dict[str, Weight]:
    """HF state dict -> ours, with fused projections still in parts (``layers.0.self_attn.
    q_proj.weight``...)."""
    out: dict[str, Weight] = {}
    offset = cfg.norm_weight_offset
    for name, t in tensors.items():
        if IGNORED.search(name):
            continue
        if cfg.family == "gpt2":
            out.update(_gpt2_tensor(cfg, name.removeprefix("transformer."), t))
            continue
        name = name.removeprefix("model.")
        if offset and name.endswith("norm.weight"):
            t = t.float() + offset  # Gemma's RMSNorm multiplies by (1 + weight)
        m = re.match(
            r"(layers\.\d+\.)(self_attn\.qkv_proj|mlp\.gate_up_proj)\.(weight|bias)$", name
        )
        if m:  # Phi-3 ships these fused: parts here (errors name them), joined by ``fuse``
            out |= unfuse(cfg, {name: t})
            continue
        out[name] = t
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def _transposed(t: Weight) -> Weight:
    return t if isinstance(t, QuantizedWeight) else t.t()


def _gpt2_tensor(cfg: ModelConfig, name: str, t: Weight) -> dict[str, Weight]:
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
    if part in _GPT2_CONV1D and kind == "weight":
        t = _transposed(t)  # Conv1D stores [in, out]
    if part == "attn.c_attn":
        return {f"{prefix}self_attn.{p}.{kind}": x for p, x in _split(t, cfg.hidden_size, 3)}
    if part not in _GPT2_LAYER:
        return {name: t}
    return {f"{prefix}{_GPT2_LAYER[part]}.{kind}": _contiguous(t)}


def _split(t: Weight, size: int, count: int) -> list[tuple[str, Weight]]:
    names = ("q_proj", "k_proj", "v_proj")[:count]
    if isinstance(t, QuantizedWeight):
        return [(n, t.rows(i * size, (i + 1) * size)) for i, n in enumerate(names)]
    return list(zip(names, [x.contiguous() for x in t.split(size, dim=0)], strict=True))


def _contiguous(t: Weight) -> Weight:
    return t if isinstance(t, QuantizedWeight) else t.contiguous()


def fuse(cfg: ModelConfig, state: dict[str, Weight]) -> dict[str, Weight]:
    """Join the parts of each fused projection. Parts of one form are concatenated; parts of
    different forms (a quantized file may mix int4 and int8) become a list."""
    out = dict(state)
    for layer in range(cfg.num_layers):
        for fused, parts in FUSED.items():
            for kind in ("weight", "bias"):
                names = [f"layers.{layer}.{p}.{kind}" for p in parts]
                if not all(n in out for n in names):
                    continue
                values = [out.pop(n) for n in names]
                out[f"layers.{layer}.{fused}.{kind}"] = join_rows(values)
    return out


def unfuse(cfg: ModelConfig, state: dict[str, Weight]) -> dict[str, Weight]:
    """The inverse of ``fuse``: each fused projection split back into its parts."""
    rows = {
        "self_attn.qkv_proj": [cfg.num_heads * cfg.head_dim]
        + [cfg.num_kv_heads * cfg.head_dim] * 2,
        "mlp.gate_up_proj": [cfg.intermediate_size] * 2,
    }
    out: dict[str, Weight] = {}
    for name, t in state.items():
        m = re.match(
            r"(layers\.\d+\.)(self_attn\.qkv_proj|mlp\.gate_up_proj)\.(weight|bias)$", name
        )
        if not m:
            out[name] = t
            continue
        prefix, fused, kind = m.groups()
        bounds = [sum(rows[fused][:i]) for i in range(len(rows[fused]) + 1)]
        chunks = t if isinstance(t, list) else [t]  # a list: parts in different forms
        starts = [sum(c.shape[0] for c in chunks[:i]) for i in range(len(chunks))]
        for part, a, b in zip(FUSED[fused], bounds, bounds[1:], strict=False):
            i = max(j for j, s in enumerate(starts) if s <= a)  # parts never straddle chunks
            chunk, base = chunks[i], starts[i]
            if isinstance(chunk, QuantizedWeight):
                out[f"{prefix}{part}.{kind}"] = chunk.rows(a - base, b - base)
            else:
                out[f"{prefix}{part}.{kind}"] = chunk[a - base : b - base]
    return out


def to_hf(cfg: ModelConfig, state: dict[str, Weight]) -> dict[str, Weight]:
    """Our state dict -> HF names (tied lm_head left out, as transformers saves it)."""
    state = unfuse(cfg, state)
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    if cfg.family == "llama":
        offset = cfg.norm_weight_offset
        if offset:
            state = {k: v - offset if k.endswith("norm.weight") else v for k, v in state.items()}
        if cfg.architecture == "Phi3ForCausalLM":
            state = fuse(cfg, state)
        return {
            (k if k.startswith("lm_head.") else "model." + k): _contiguous(v)
            for k, v in state.items()
        }
    inverse = {v: k for k, v in _GPT2_LAYER.items()}
    out: dict[str, Weight] = {}
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
            conv = hf_part in _GPT2_CONV1D and kind == "weight"
            out[f"transformer.h.{layer}.{hf_part}.{kind}"] = _transposed(t) if conv else t
    for layer in range(cfg.num_layers):
        p = f"layers.{layer}.self_attn."
        for kind in ("weight", "bias"):
            if f"{p}q_proj.{kind}" in state:
                parts = [state[f"{p}{x}_proj.{kind}"] for x in "qkv"]
                fused = join_rows(parts)
                if isinstance(fused, list):
                    raise ValueError("GPT-2's fused c_attn needs q, k and v in one form")
                out[f"transformer.h.{layer}.attn.c_attn.{kind}"] = (
                    _transposed(fused) if kind == "weight" else fused
                )
    return {k: _contiguous(v) for k, v in out.items()}
