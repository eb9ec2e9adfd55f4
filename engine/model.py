"""One decoder-only Transformer for the GPT-2, Llama, Qwen, Phi-3 and Gemma 3 families.

The families differ in config flags (norm kind, positional scheme, MLP kind, biases, query/key
norms, Gemma's sandwich norms and per-layer sliding windows), not in class trees. Parameter names follow Hugging Face's Llama layout without the ``model.``
prefix, except that q/k/v and gate/up are fused into ``qkv_proj`` and ``gate_up_proj`` (fewer,
larger matrix multiplies per token); ``formats/hf.py`` maps checkpoints both ways.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine import native
from engine.config import ModelConfig
from engine.kv_cache import KVCache


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        # (the weight, its data pointer and version, [weight, weight]) for inference
        self._doubled: tuple[torch.Tensor, tuple[int, int], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On the CPU, F.rms_norm is a composite of about ten kernels (upcast, pow, mean, add,
        # rsqrt, two muls, downcast...), ~9 us for one token's vector: 60 calls per token add
        # up. The LayerNorm of [x, -x] is the same function (its mean is 0 and its variance
        # mean(x^2)) in LayerNorm's one fused kernel, float32 inside and rounded once like
        # F.rms_norm: the outputs are bit-identical in tests, at half the cost.
        d = x.shape[-1]
        both = torch.cat((x, -x), dim=-1)
        return F.layer_norm(both, (2 * d,), self._doubled_weight(), None, self.eps)[..., :d]

    def _doubled_weight(self) -> torch.Tensor:
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return torch.cat((w, w))  # training: the gradient flows to the weight
        try:
            version = w._version
        except RuntimeError:  # an inference tensor has no version counter
            version = -1
        state = (w.data_ptr(), version)  # made again if the weight is replaced or changed
        if self._doubled is None or self._doubled[0] is not w or self._doubled[1] != state:
            self._doubled = (w, state, torch.cat((w, w)).detach())
        return self._doubled[2]


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "layernorm":
        return nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)
    return RMSNorm(cfg.hidden_size, cfg.norm_eps)


def activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "silu":
        return F.silu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu(x)
    return F.relu(x)


def rope_inv_freq(cfg: ModelConfig, *, long: bool = False) -> torch.Tensor:
    """Inverse frequencies for RoPE, with ``linear``, ``llama3`` or ``longrope`` scaling
    applied (``long``: longrope's factors for sequences past the original context)."""
    dim = cfg.rotary_dim or cfg.head_dim
    # float32 throughout, as the reference computes it: float64 here shifts long-range angles.
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    scaling = cfg.rope_scaling or {}
    kind = scaling.get("rope_type", "default")
    if kind == "longrope":  # Phi-3/4: a divisor per frequency, a short and a long set
        factors = torch.tensor(scaling["long_factor" if long else "short_factor"])
        inv_freq = 1.0 / (factors.float() * cfg.rope_theta ** (torch.arange(0, dim, 2) / dim))
    elif kind == "linear":
        inv_freq = inv_freq / float(scaling["factor"])
    elif kind == "llama3":
        # Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between.
        factor = float(scaling["factor"])
        low = float(scaling.get("low_freq_factor", 1.0))
        high = float(scaling.get("high_freq_factor", 4.0))
        old_len = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        inv_freq = torch.where(medium, blended, scaled)
    return inv_freq.float()


def longrope_scales(cfg: ModelConfig) -> tuple[int, float] | None:
    """For longrope: the original context (past it the long factors apply) and the factor on
    cos and sin (the LongRoPE paper's attention scaling); None for other kinds."""
    scaling = cfg.rope_scaling or {}
    if scaling.get("rope_type") != "longrope":
        return None
    original = int(scaling["original_max_position_embeddings"])
    attention = scaling.get("attention_factor")
    if attention is None:
        factor = float(scaling.get("factor") or cfg.context_length / original)
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    return original, float(attention)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate halves (HF/NeoX layout): x is [1, n, heads, head_dim], cos/sin [n, 1, rot_dim].

    ``sin`` has its first half negated (see ``Transformer.rope``), so the rotation of each
    pair (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) is ``x * cos + roll(x) * sin``: three
    kernels per call instead of the six of rotate_half's chunk/neg/cat. With partial rotary
    (rot_dim < head_dim) only the first rot_dim dims of each head turn.
    """
    rot = cos.shape[-1]
    if rot < x.shape[-1]:
        return torch.cat((apply_rope(x[..., :rot], cos, sin), x[..., rot:]), dim=-1)
    return torch.addcmul(x * cos, x.roll(rot // 2, dims=-1), sin)


def _cpu_has_amx() -> bool:
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


# Decode attention with the query heads of each key/value head as its rows (Attention.forward)
# measured 4x faster than enable_gqa at a 2,000-token context on a Zen 5 CPU (AVX-512, no AMX;
# 3x at 100), but 1.3x slower on a Sapphire Rapids Xeon (AMX), where SDPA's bfloat16 kernels
# differ (SmolLM2, 2 threads, both). Elsewhere (a GPU) either is fine.
GROUPED_DECODE = not _cpu_has_amx()


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = (
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.head_dim,
        )
        # q, k and v in one projection: one matrix multiply per layer instead of three.
        qkv = (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim
        self.qkv_proj = nn.Linear(cfg.hidden_size, qkv, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=cfg.o_bias)
        self.scale = cfg.attn_scale  # None: SDPA's 1 / sqrt(head_dim)
        self.window: int | None = None  # a sliding layer's window (set by Transformer)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: KVCache | None,
        layer: int,
        start: int,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        bsz, n, _ = x.shape
        heads, kv_heads = self.num_heads, self.num_kv_heads
        qkv = self.qkv_proj(x).view(bsz, n, heads + 2 * kv_heads, self.head_dim)
        qk, v = qkv[:, :, : heads + kv_heads], qkv[:, :, heads + kv_heads :]
        if hasattr(self, "q_norm"):  # per head, before the rotation
            qk = torch.cat((self.q_norm(qk[:, :, :heads]), self.k_norm(qk[:, :, heads:])), 2)
        if rope is not None:
            qk = apply_rope(qk, *rope)  # q and k rotated together
        q, k = qk[:, :, :heads].transpose(1, 2), qk[:, :, heads:].transpose(1, 2)
        v = v.transpose(1, 2)
        if cache is not None:
            k, v = cache.write(layer, start, k, v)
        gqa = heads != kv_heads
        if n == 1 and self.window is not None and k.shape[2] > self.window:
            # Decoding one token on a sliding layer: its keys are the last ``window``, so
            # slicing them replaces a mask (SDPA's masked path costs several times more).
            k, v = k[:, :, -self.window :], v[:, :, -self.window :]
        if n == 1 and mask is None:
            out = native.decode_attention(q, k, v, self.scale)
            if out is not None:
                return self.o_proj(out)
        if n == 1 and gqa and mask is None and GROUPED_DECODE:
            # One new token sees every key, so the query heads that share a key/value head
            # can be that head's query rows: [b, kv_heads, heads / kv_heads, head_dim]. Each
            # key/value head is then read once, not once per query head as enable_gqa's
            # path does.
            grouped = q.reshape(bsz, kv_heads, heads // kv_heads, self.head_dim)
            out = F.scaled_dot_product_attention(grouped, k, v, scale=self.scale)
            return self.o_proj(out.reshape(bsz, 1, -1))
        if mask is None:
            # No cache history (a fresh prefix) -> plain causal; one new token -> sees everything.
            out = F.scaled_dot_product_attention(
                q, k, v, is_causal=n > 1, enable_gqa=gqa, scale=self.scale
            )
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, enable_gqa=gqa, scale=self.scale
            )
        return self.o_proj(out.transpose(1, 2).reshape(bsz, n, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.act = cfg.hidden_act
        self.gated = cfg.mlp == "gated"
        if self.gated:  # gate and up in one projection, gate first
            self.gate_up_proj = nn.Linear(
                cfg.hidden_size, 2 * cfg.intermediate_size, bias=cfg.mlp_bias
            )
        else:
            self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:  # SwiGLU
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
            return self.down_proj(activation(self.act, gate) * up)
        return self.down_proj(activation(self.act, self.up_proj(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = make_norm(cfg)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.sandwich = cfg.sandwich_norms
        if self.sandwich:  # Gemma: post_attention_layernorm normalises the attention's output
            self.pre_feedforward_layernorm = make_norm(cfg)
            self.post_feedforward_layernorm = make_norm(cfg)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: KVCache | None,
        layer: int,
        start: int,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        h = self.self_attn(self.input_layernorm(x), rope, cache, layer, start, mask)
        if self.sandwich:
            x = x + self.post_attention_layernorm(h)
            h = self.mlp(self.pre_feedforward_layernorm(x))
            return x + self.post_feedforward_layernorm(h)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    """Decoder-only Transformer; ``forward`` optionally reads and writes a ``KVCache``."""

    rope_cos: torch.Tensor | None
    rope_sin: torch.Tensor | None

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        if cfg.positions == "learned":
            self.embed_positions = nn.Embedding(cfg.context_length, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # cos/sin per position, grown on demand (a config may declare a huge context) and
        # moved with the module by .to(); never saved.
        self.register_buffer("rope_cos", None, persistent=False)
        self.register_buffer("rope_sin", None, persistent=False)
        # Gemma 3's sliding layers: their own base, no scaling (same shape as the above).
        self.register_buffer("rope_local_cos", None, persistent=False)
        self.register_buffer("rope_local_sin", None, persistent=False)
        # longrope (Phi-3/4): the long factors' tables, for forwards that end past the original
        # context (as transformers picks per forward; the cache keeps what it has).
        self.register_buffer("rope_long_cos", None, persistent=False)
        self.register_buffer("rope_long_sin", None, persistent=False)
        self.longrope = longrope_scales(cfg)
        self.windows = [cfg.layer_window(i) for i in range(cfg.num_layers)]
        for block, window in zip(self.layers, self.windows, strict=True):
            assert isinstance(block, Block)
            block.self_attn.window = window
        # One new token through every block in one native call, where engine.fused_decode
        # attached one (the blocks' weights must be in its kernels' forms); None: the loop.
        self.fused_decode: Callable[..., torch.Tensor | None] | None = None

    def tie_weights(self) -> None:
        if self.config.tie_word_embeddings and isinstance(self.embed_tokens, nn.Embedding):
            self.lm_head.weight = self.embed_tokens.weight

    def rope(self, start: int, end: int, *, local: bool = False) -> tuple[torch.Tensor, ...]:
        """cos and sign-folded sin for positions start..end, shaped [n, 1, rot_dim]
        (``local``: the sliding layers' own tables, where the family has them)."""
        cos = self.rope_cos
        if cos is None or cos.shape[0] < end:
            self._grow_rope(end)
        if local and self.rope_local_cos is not None:
            assert self.rope_local_sin is not None
            return self.rope_local_cos[start:end], self.rope_local_sin[start:end]
        if self.longrope is not None and end > self.longrope[0]:
            assert self.rope_long_cos is not None and self.rope_long_sin is not None
            return self.rope_long_cos[start:end], self.rope_long_sin[start:end]
        assert self.rope_cos is not None and self.rope_sin is not None
        return self.rope_cos[start:end], self.rope_sin[start:end]

    def _grow_rope(self, end: int) -> None:
        have = 0 if self.rope_cos is None else self.rope_cos.shape[0]
        size = min(self.config.context_length, max(end, 2 * have, 256))
        scale = self.longrope[1] if self.longrope is not None else 1.0
        self.rope_cos, self.rope_sin = self._rope_tables(size, rope_inv_freq(self.config), scale)
        if self.longrope is not None:
            long = rope_inv_freq(self.config, long=True)
            self.rope_long_cos, self.rope_long_sin = self._rope_tables(size, long, scale)
        if self.config.local_rope_theta is not None:
            local = dataclasses.replace(
                self.config, rope_theta=self.config.local_rope_theta, rope_scaling=None
            )
            self.rope_local_cos, self.rope_local_sin = self._rope_tables(size, rope_inv_freq(local))

    def _rope_tables(
        self, size: int, inv_freq: torch.Tensor, scale: float = 1.0
    ) -> tuple[torch.Tensor, ...]:
        ref: torch.Tensor = self.norm.weight  # type: ignore[assignment]
        device, dtype = ref.device, ref.dtype
        t = torch.arange(size, device=device, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq.to(device))
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * scale, emb.sin() * scale
        sin[:, : sin.shape[1] // 2] *= -1  # see apply_rope
        return cos.to(dtype)[:, None, :], sin.to(dtype)[:, None, :]

    def forward(
        self,
        ids: torch.Tensor,
        cache: KVCache | None = None,
        start: int = 0,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits for ``ids`` ([batch, n]) placed at positions start..start+n.

        With a cache, keys/values are written at those positions and attention sees the whole
        cached prefix. ``last_only`` computes the vocabulary projection for the last position
        only, which is all decoding needs.
        """
        n = ids.shape[1]
        end = start + n
        if end > self.config.context_length:
            raise ValueError(
                f"sequence of {end} tokens exceeds context {self.config.context_length}"
            )
        cfg = self.config
        x = self.embed_tokens(ids)
        if cfg.embed_scale is not None:  # Gemma: the scale in the activations' dtype, as HF
            x = x * torch.tensor(cfg.embed_scale, dtype=x.dtype)
        if cfg.positions == "learned":
            x = x + self.embed_positions.weight[start:end]
        rope = self.rope(start, end) if cfg.positions == "rope" else None
        local_rope = self.rope(start, end, local=True) if cfg.local_rope_theta else rope
        # One mask per distinct window (Gemma 3 mixes sliding and global layers).
        masks = {
            w: self._mask(ids.device, start, end, cache is not None, w) for w in set(self.windows)
        }
        fused = None
        if self.fused_decode is not None and cache is not None and ids.shape == (1, 1):
            fused = self.fused_decode(x, cache, start, rope, local_rope)
        if fused is not None:
            x = fused
        else:
            for i, layer in enumerate(self.layers):
                window = self.windows[i]
                x = layer(x, local_rope if window else rope, cache, i, start, masks[window])
        if cache is not None:
            cache.length = end
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(self.norm(x))
        if cfg.final_logit_softcapping:
            cap = cfg.final_logit_softcapping
            logits = torch.tanh(logits / cap) * cap
        return logits

    @staticmethod
    def _mask(
        device: torch.device, start: int, end: int, cached: bool, window: int | None
    ) -> torch.Tensor | None:
        """The attention mask for queries start..end, or None where SDPA's own causal rule (or
        none, for one new token) is right."""
        n = end - start
        windowed = window is not None and end > window
        if n == 1 or not (start > 0 or windowed):  # one token: Attention slices the window
            return None
        # A chunk after cached history: query i (absolute start+i) sees keys 0..start+i.
        # SDPA's is_causal aligns top-left for non-square shapes, so build the mask.
        q_pos = torch.arange(start, end, device=device)[:, None]
        k_pos = torch.arange(end if cached else n, device=device)[None, :]
        if not cached:
            k_pos = k_pos + start
        mask = k_pos <= q_pos
        if window is not None and windowed:
            mask &= k_pos > q_pos - window
        return mask
