"""``ModelConfig``: one dataclass for every family, read from and written to HF ``config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from engine.errors import ModelLoadError

# Hugging Face architecture name -> our family. Llama-family variants differ only in flags.
LLAMA_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
)
GPT2_ARCHITECTURES = ("GPT2LMHeadModel",)
SUPPORTED_ARCHITECTURES = GPT2_ARCHITECTURES + LLAMA_ARCHITECTURES

_MODEL_TYPE_TO_ARCH = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
}
_ARCH_TO_MODEL_TYPE = {v: k for k, v in _MODEL_TYPE_TO_ARCH.items()}
SLIDING, FULL = "sliding_attention", "full_attention"  # HF's layer_types values

# The family flags of ModelConfig (derived from the architecture; as_dict() shows them).
Norm = Literal["rmsnorm", "layernorm"]
Positions = Literal["rope", "learned"]  # rotary, or a learned position embedding
MLPKind = Literal["gated", "plain"]  # SwiGLU, or GPT-2's GELU MLP

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "longrope")
SUPPORTED_ACTIVATIONS = ("silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


@dataclass
class ModelConfig:
    """Shape and flags of a decoder-only Transformer (GPT-2 or Llama family)."""

    architecture: str = "LlamaForCausalLM"
    vocab_size: int = 32000
    hidden_size: int = 512
    num_layers: int = 8
    num_heads: int = 8
    num_kv_heads: int = 8
    head_dim: int = 64
    intermediate_size: int = 1376
    context_length: int = 2048
    norm_eps: float = 1e-5
    hidden_act: str = "silu"
    # Family flags: these, not class trees, make GPT-2 and Llama one model.
    norm: Norm = "rmsnorm"
    positions: Positions = "rope"
    mlp: MLPKind = "gated"
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = False
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    sliding_window: int | None = None  # Mistral: each token sees at most this many keys
    bos_token_id: int | None = None
    eos_token_ids: list[int] = field(default_factory=list)
    torch_dtype: str = "float32"
    pad_token_id: int | None = None
    # Per-layer attention (Gemma 3, Qwen): which layers use ``sliding_window``; None: all do.
    layer_types: list[str] | None = None
    # Gemma 3's sliding layers rotate with their own RoPE base and no scaling.
    local_rope_theta: float | None = None
    rotary_dim: int | None = None  # Phi-3/4: RoPE on the first dims of a head only
    qk_norm: bool = False  # Qwen 3, Gemma 3: RMSNorm of each query and key head
    # Gemma 3: norms around both sublayers (post-attention and pre/post feed-forward), the
    # embeddings scaled by this factor, the attention scale 1 / sqrt(query_pre_attn_scalar),
    # and norm weights stored as (weight - 1) in HF checkpoints.
    sandwich_norms: bool = False
    embed_scale: float | None = None
    attn_scale: float | None = None
    final_logit_softcapping: float | None = None

    def layer_window(self, layer: int) -> int | None:
        """The sliding window of ``layer`` (None: it attends to the whole context)."""
        if self.layer_types is not None and self.layer_types[layer] != SLIDING:
            return None
        return self.sliding_window

    @property
    def norm_weight_offset(self) -> float:
        """What HF checkpoints of this architecture leave out of their RMSNorm weights."""
        return 1.0 if self.architecture == "Gemma3ForCausalLM" else 0.0

    @property
    def family(self) -> str:
        return "gpt2" if self.architecture in GPT2_ARCHITECTURES else "llama"

    @property
    def model_type(self) -> str:
        return _ARCH_TO_MODEL_TYPE[self.architecture]

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ModelLoadError(
                f"num_attention_heads ({self.num_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_kv_heads})"
            )

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> ModelConfig:
        """Read a Hugging Face ``config.json`` dict; unsupported models raise ModelLoadError."""
        archs = hf.get("architectures") or []
        arch = archs[0] if archs else _MODEL_TYPE_TO_ARCH.get(hf.get("model_type", ""), "")
        if arch not in SUPPORTED_ARCHITECTURES:
            name = arch or hf.get("model_type") or "unknown"
            raise ModelLoadError(
                f"unsupported architecture {name!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        eos = hf.get("eos_token_id")
        eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        dtype = hf.get("torch_dtype") or hf.get("dtype") or "float32"
        if arch in GPT2_ARCHITECTURES:
            return cls._from_gpt2(hf, arch, eos_ids, str(dtype))
        return cls._from_llama(hf, arch, eos_ids, str(dtype))

    @classmethod
    def _from_gpt2(cls, hf: dict[str, Any], arch: str, eos: list[int], dtype: str) -> ModelConfig:
        try:
            hidden = int(hf["n_embd"])
            heads = int(hf["n_head"])
            return cls(
                architecture=arch,
                vocab_size=int(hf["vocab_size"]),
                hidden_size=hidden,
                num_layers=int(hf["n_layer"]),
                num_heads=heads,
                num_kv_heads=heads,
                head_dim=hidden // heads,
                intermediate_size=int(hf.get("n_inner") or 4 * hidden),
                context_length=int(hf.get("n_positions", 1024)),
                norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                hidden_act=_activation(hf.get("activation_function", "gelu_new")),
                norm="layernorm",
                positions="learned",
                mlp="plain",
                qkv_bias=True,
                o_bias=True,
                mlp_bias=True,
                norm_bias=True,
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
                bos_token_id=hf.get("bos_token_id"),
                eos_token_ids=eos,
                torch_dtype=dtype,
            )
        except KeyError as e:
            raise ModelLoadError(f"config.json lacks the key {e.args[0]!r} for {arch}") from None

    @classmethod
    def _from_llama(cls, hf: dict[str, Any], arch: str, eos: list[int], dtype: str) -> ModelConfig:
        # transformers >= 5 nests rope settings in "rope_parameters"; older files use
        # "rope_theta" and "rope_scaling" at the top level.
        # Gemma 3 keeps one such dict per layer type (full / sliding attention).
        rope = dict(hf.get("rope_parameters") or {})
        local_theta = None
        if FULL in rope or SLIDING in rope:
            local = rope.get(SLIDING) or {}
            local_theta = float(local.get("rope_theta", 10000.0))
            if local.get("rope_type", "default") != "default":
                raise ModelLoadError("unsupported rope scaling on sliding-window layers")
            rope = dict(rope.get(FULL) or {})
        elif hf.get("rope_local_base_freq") is not None:  # Gemma 3 in transformers 4.x
            local_theta = float(hf["rope_local_base_freq"])
        partial = float(rope.pop("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)))
        theta = float(rope.pop("rope_theta", hf.get("rope_theta", 10000.0)))
        scaling = rope or hf.get("rope_scaling") or None
        if scaling:
            scaling = dict(scaling)
            kind = scaling.get("rope_type", scaling.get("type", "default"))
            if kind not in SUPPORTED_ROPE_TYPES:
                raise ModelLoadError(
                    f"unsupported rope scaling {kind!r}; supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
                )
            scaling["rope_type"] = kind
            scaling.pop("type", None)
            if kind == "longrope" and "original_max_position_embeddings" not in scaling:
                scaling["original_max_position_embeddings"] = hf.get(
                    "original_max_position_embeddings"
                ) or hf.get("max_position_embeddings", 2048)
            if kind == "default":
                scaling = None
        try:
            hidden = int(hf["hidden_size"])
            heads = int(hf["num_attention_heads"])
            head_dim = int(hf.get("head_dim") or hidden // heads)
            layers = int(hf["num_hidden_layers"])
            is_qwen2 = arch == "Qwen2ForCausalLM"
            is_gemma = arch == "Gemma3ForCausalLM"
            attn_bias = bool(hf.get("attention_bias", False))
            window = hf.get("sliding_window")
            layer_types = _layer_types(hf, arch, layers)
            if arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM") and not hf.get(
                "use_sliding_window", False
            ):
                window, layer_types = None, None
            if arch == "Gemma3ForCausalLM" and hf.get("attn_logit_softcapping") is not None:
                raise ModelLoadError("unsupported: attention logit soft-capping (Gemma 2)")
            rotary = int(head_dim * partial) if partial < 1.0 else None
            return cls(
                architecture=arch,
                vocab_size=int(hf["vocab_size"]),
                hidden_size=hidden,
                num_layers=layers,
                num_heads=heads,
                num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                head_dim=head_dim,
                intermediate_size=int(hf["intermediate_size"]),
                context_length=int(hf.get("max_position_embeddings", 2048)),
                norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                hidden_act=_activation(
                    hf.get("hidden_activation") or hf.get("hidden_act") or "silu"
                ),
                qkv_bias=is_qwen2 or attn_bias,
                o_bias=attn_bias and not is_qwen2,
                mlp_bias=bool(hf.get("mlp_bias", False)),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", is_gemma)),
                rope_theta=theta,
                rope_scaling=scaling,
                sliding_window=int(window) if window else None,
                bos_token_id=hf.get("bos_token_id"),
                eos_token_ids=eos,
                torch_dtype=dtype,
                layer_types=layer_types if window else None,
                local_rope_theta=local_theta if is_gemma else None,
                rotary_dim=rotary,
                qk_norm=arch in ("Qwen3ForCausalLM", "Gemma3ForCausalLM"),
                sandwich_norms=is_gemma,
                embed_scale=hidden**0.5 if is_gemma else None,
                attn_scale=float(hf.get("query_pre_attn_scalar", 256)) ** -0.5
                if is_gemma
                else None,
                final_logit_softcapping=hf.get("final_logit_softcapping") if is_gemma else None,
                pad_token_id=hf.get("pad_token_id"),
            )
        except KeyError as e:
            raise ModelLoadError(f"config.json lacks the key {e.args[0]!r} for {arch}") from None

    def to_hf(self) -> dict[str, Any]:
        """The Hugging Face ``config.json`` for this model (so it loads in transformers)."""
        eos: int | list[int] | None = self.eos_token_ids or None
        if isinstance(eos, list) and len(eos) == 1:
            eos = eos[0]
        common: dict[str, Any] = {
            "architectures": [self.architecture],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.torch_dtype,
        }
        if self.family == "gpt2":
            return common | {
                "n_embd": self.hidden_size,
                "n_layer": self.num_layers,
                "n_head": self.num_heads,
                "n_inner": self.intermediate_size,
                "n_positions": self.context_length,
                "layer_norm_epsilon": self.norm_eps,
                "activation_function": self.hidden_act,
            }
        out = common | {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.context_length,
            "rms_norm_eps": self.norm_eps,
            "hidden_act": self.hidden_act,
            "mlp_bias": self.mlp_bias,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling,
        }
        if self.architecture in ("MistralForCausalLM", "Phi3ForCausalLM"):
            out["sliding_window"] = self.sliding_window
        elif self.architecture.startswith("Qwen") and self.sliding_window:
            out |= {"use_sliding_window": True, "sliding_window": self.sliding_window}
        if self.layer_types is not None:
            out["layer_types"] = self.layer_types
        if self.architecture != "Qwen2ForCausalLM":
            out["attention_bias"] = self.qkv_bias
        if self.rotary_dim is not None:
            out["partial_rotary_factor"] = self.rotary_dim / self.head_dim
        if self.rope_scaling and self.rope_scaling.get("rope_type") == "longrope":
            out["original_max_position_embeddings"] = self.rope_scaling[
                "original_max_position_embeddings"
            ]
        if self.architecture == "Gemma3ForCausalLM":
            out |= {
                "sliding_window": self.sliding_window,
                "hidden_activation": self.hidden_act,
                "query_pre_attn_scalar": _whole((self.attn_scale or 1.0) ** -2),
                "final_logit_softcapping": self.final_logit_softcapping,
                "attn_logit_softcapping": None,
                "rope_parameters": {
                    FULL: {"rope_type": "default", "rope_theta": self.rope_theta}
                    | (self.rope_scaling or {}),
                    SLIDING: {"rope_type": "default", "rope_theta": self.local_rope_theta},
                },
            }
            del out["rope_theta"], out["rope_scaling"]
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _whole(x: float) -> float | int:
    """``x`` as an int when it is one up to rounding (config.json's integer fields)."""
    return round(x) if abs(x - round(x)) < 1e-6 * max(1.0, abs(x)) else x


def _layer_types(hf: dict[str, Any], arch: str, layers: int) -> list[str] | None:
    """Which layers slide: ``layer_types`` when the config lists them; else Gemma 3's
    ``sliding_window_pattern`` (every n-th layer global) or Qwen's ``max_window_layers`` (the
    layers from there on slide, as transformers does)."""
    types = hf.get("layer_types")
    if isinstance(types, list):
        if len(types) != layers or any(t not in (FULL, SLIDING) for t in types):
            raise ModelLoadError(f"config.json's layer_types does not fit {layers} layers")
        return [str(t) for t in types]
    if arch == "Gemma3ForCausalLM":
        pattern = int(hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6)
        return [SLIDING if (i + 1) % pattern else FULL for i in range(layers)]
    if arch.startswith("Qwen") and hf.get("max_window_layers") is not None:
        first = int(hf["max_window_layers"])
        return [SLIDING if i >= first else FULL for i in range(layers)]
    return None


def _activation(name: str) -> str:
    if name not in SUPPORTED_ACTIVATIONS:
        raise ModelLoadError(
            f"unsupported activation {name!r}; supported: {', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    return name
