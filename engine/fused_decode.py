"""A decode step through all the blocks in one native call, where a model allows it.

A small model's decode step is mostly the overhead of its ~15 torch operations a block
(SmolLM2-135M on a 2-core Xeon: 12 of 29 ms a token); ``csrc/decode_layers.c`` runs the same
operations, rounded where torch's bfloat16 path rounds, in one call a token. It takes models
whose every projection is GGML blocks (``quantize.GGMLLinear``), with RMSNorm, RoPE over
whole heads, grouped-query attention and a gated SiLU/GELU MLP (Llama, Qwen, Gemma 3, SmolLM2;
Gemma's sandwich norms, query/key norms, sliding windows and qkv biases included).
Everything else, a prefill, and any input the kernels refuse, takes ``engine/model.py``'s
torch path, which stays the reference; ``CHATAPP_FUSED_DECODE=0`` turns this off.

Like ``engine.quantize``, this module only attaches itself to a built net
(``Transformer.fused_decode``); ``engine/model.py`` knows nothing of what is inside.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import torch
from torch import nn

from engine import native
from engine.kv_cache import KVCache
from engine.model import Block, RMSNorm, Transformer
from engine.quantize import COMPUTE_DTYPE, ConcatLinear, GGMLLinear

ENV = "CHATAPP_FUSED_DECODE"
MAX_PARTS = 3
ACTIVATIONS = {"silu": 0, "gelu_pytorch_tanh": 1, "gelu_new": 1}


class _Proj(ctypes.Structure):
    _fields_ = [
        ("parts", ctypes.c_int32),
        ("type", ctypes.c_int32 * MAX_PARTS),
        ("w", ctypes.c_void_p * MAX_PARTS),
        ("rows", ctypes.c_int64 * MAX_PARTS),
        ("bias", ctypes.c_void_p),
    ]


class _Layer(ctypes.Structure):
    _fields_ = [
        ("attn_norm", ctypes.c_void_p),
        ("mlp_norm", ctypes.c_void_p),
        ("post_attn_norm", ctypes.c_void_p),
        ("post_mlp_norm", ctypes.c_void_p),
        ("q_norm", ctypes.c_void_p),
        ("k_norm", ctypes.c_void_p),
        ("qkv", _Proj),
        ("o", _Proj),
        ("gate_up", _Proj),
        ("down", _Proj),
        ("window", ctypes.c_int64),
        ("local_rope", ctypes.c_int32),
    ]


class _Stack(ctypes.Structure):
    _fields_ = [
        ("hidden", ctypes.c_int64),
        ("heads", ctypes.c_int64),
        ("kv_heads", ctypes.c_int64),
        ("head_dim", ctypes.c_int64),
        ("inter", ctypes.c_int64),
        ("eps", ctypes.c_float),
        ("scale", ctypes.c_float),
        ("act", ctypes.c_int32),
        ("layers", ctypes.c_int32),
        ("layer", ctypes.POINTER(_Layer)),
    ]


def _proj(module: nn.Module, keep: list[Any], *, bias_ok: bool) -> _Proj | None:
    """A projection's blocks, or None if it is not all GGML blocks the kernel takes (a bias
    it makes is appended to ``keep``)."""
    if isinstance(module, GGMLLinear):
        parts = [module]
    elif isinstance(module, ConcatLinear) and module.blocks:
        parts = [p for p in module.parts if isinstance(p, GGMLLinear)]
    else:
        return None
    biases = [p.bias for p in parts]
    if len(parts) > MAX_PARTS or (not bias_ok and any(b is not None for b in biases)):
        return None
    p = _Proj(parts=len(parts))
    for i, part in enumerate(parts):
        p.type[i] = native.GGML_TYPES[part.kind]
        p.w[i] = part.weight.data_ptr()
        p.rows[i] = part.out_features
    if any(b is not None for b in biases):
        bias = torch.cat(
            [
                torch.zeros(part.out_features, dtype=COMPUTE_DTYPE) if b is None else b.detach()
                for part, b in zip(parts, biases, strict=True)
            ]
        ).to(COMPUTE_DTYPE)
        keep.append(bias)
        p.bias = bias.data_ptr()
    return p


def _norm(module: nn.Module | None) -> int | None:
    if module is None:
        return None
    assert isinstance(module, RMSNorm)
    return int(module.weight.data_ptr())


class FusedDecode:
    """Called by ``Transformer.forward`` for one new token: the hidden state after every block,
    or None where the native step does not apply (the torch path then runs)."""

    def __init__(self, stack: _Stack, keep: list[Any]) -> None:
        self.stack = stack
        self._keep = keep  # the ctypes arrays the stack points into
        kern = native.kernel()
        assert kern is not None
        self._fn = kern.decode_layers
        self._stack_ptr = ctypes.addressof(stack)

    def __call__(
        self,
        x: torch.Tensor,
        cache: KVCache,
        start: int,
        rope: tuple[torch.Tensor, ...] | None,
        local_rope: tuple[torch.Tensor, ...] | None,
    ) -> torch.Tensor | None:
        if x.dtype != COMPUTE_DTYPE or cache.k.dtype != COMPUTE_DTYPE or x.shape[:2] != (1, 1):
            return None
        if rope is None or local_rope is None:
            return None
        (cos, sin), (lcos, lsin) = rope, local_rope
        cache.reserve(start + 1)
        k, v = cache.k, cache.v  # [layers, 1, kv_heads, capacity, head_dim]
        x = x.contiguous().clone()  # updated in place
        status = self._fn(
            self._stack_ptr, x.data_ptr(), k.data_ptr(), v.data_ptr(),
            k.stride(0), k.stride(2), start,
            cos.data_ptr(), sin.data_ptr(), lcos.data_ptr(), lsin.data_ptr(),
            torch.get_num_threads(),
        )  # fmt: skip
        return x if status == 0 else None


def attach(net: Transformer) -> bool:
    """Give ``net`` a native decode step if every block is of a kind it takes; say whether."""
    net.fused_decode = None
    if os.environ.get(ENV, "1") == "0" or not native.ggml_kernels():
        return False
    cfg = net.config
    rot = cfg.rotary_dim or cfg.head_dim
    if (
        cfg.norm != "rmsnorm"
        or cfg.mlp != "gated"
        or cfg.hidden_act not in ACTIVATIONS
        or cfg.positions != "rope"
        or rot != cfg.head_dim
        or cfg.num_heads % cfg.num_kv_heads
        or cfg.num_heads // cfg.num_kv_heads > 16  # the attention kernel's limits
        or cfg.head_dim % 16
        or cfg.head_dim > 256
    ):
        return False
    layers = (_Layer * cfg.num_layers)()
    keep: list[Any] = [layers]
    for i, block in enumerate(net.layers):
        assert isinstance(block, Block)
        if block.input_layernorm.weight.dtype != COMPUTE_DTYPE:
            return False
        attn, mlp = block.self_attn, block.mlp
        projs = (
            _proj(attn.qkv_proj, keep, bias_ok=True),
            _proj(attn.o_proj, keep, bias_ok=False),
            _proj(mlp.gate_up_proj, keep, bias_ok=False),
            _proj(mlp.down_proj, keep, bias_ok=False),
        )
        if any(p is None for p in projs):
            return False
        layer = layers[i]
        layer.qkv, layer.o, layer.gate_up, layer.down = projs
        layer.attn_norm = _norm(block.input_layernorm)
        if block.sandwich:
            layer.post_attn_norm = _norm(block.post_attention_layernorm)
            layer.mlp_norm = _norm(block.pre_feedforward_layernorm)
            layer.post_mlp_norm = _norm(block.post_feedforward_layernorm)
        else:
            layer.mlp_norm = _norm(block.post_attention_layernorm)
        layer.q_norm = _norm(getattr(attn, "q_norm", None))
        layer.k_norm = _norm(getattr(attn, "k_norm", None))
        layer.window = attn.window or 0
        layer.local_rope = int(bool(attn.window) and cfg.local_rope_theta is not None)
    stack = _Stack(
        hidden=cfg.hidden_size,
        heads=cfg.num_heads,
        kv_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        inter=cfg.intermediate_size,
        eps=cfg.norm_eps,
        scale=cfg.attn_scale if cfg.attn_scale is not None else cfg.head_dim**-0.5,
        act=ACTIVATIONS[cfg.hidden_act],
        layers=cfg.num_layers,
        layer=layers,
    )
    net.fused_decode = FusedDecode(stack, keep)
    return True
