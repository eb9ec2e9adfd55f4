"""``ModelConfig``: one dataclass for both families, read from and written to HF ``config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from engine.errors import ModelLoadError

# Hugging Face architecture name -> our family. Llama-family variants differ only in flags.
LLAMA_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
GPT2_ARCHITECTURES = ("GPT2LMHeadModel",)
SUPPORTED_ARCHITECTURES = GPT2_ARCHITECTURES + LLAMA_ARCHITECTURES

_MODEL_TYPE_TO_ARCH = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}
_ARCH_TO_MODEL_TYPE = {v: k for k, v in _MODEL_TYPE_TO_ARCH.items()}

# The family flags of ModelConfig (derived from the architecture; as_dict() shows them).
Norm = Literal["rmsnorm", "layernorm"]
Positions = Literal["rope", "learned"]  # rotary, or a learned position embedding
MLPKind = Literal["gated", "plain"]  # SwiGLU, or GPT-2's GELU MLP

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
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
        rope = dict(hf.get("rope_parameters") or {})
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
            if kind == "default":
                scaling = None
        try:
            hidden = int(hf["hidden_size"])
            heads = int(hf["num_attention_heads"])
            is_qwen2 = arch == "Qwen2ForCausalLM"
            attn_bias = bool(hf.get("attention_bias", False))
            window = hf.get("sliding_window")
            if is_qwen2 and not hf.get("use_sliding_window", False):
                window = None
            return cls(
                architecture=arch,
                vocab_size=int(hf["vocab_size"]),
                hidden_size=hidden,
                num_layers=int(hf["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                head_dim=int(hf.get("head_dim") or hidden // heads),
                intermediate_size=int(hf["intermediate_size"]),
                context_length=int(hf.get("max_position_embeddings", 2048)),
                norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                hidden_act=_activation(hf.get("hidden_act", "silu")),
                qkv_bias=is_qwen2 or attn_bias,
                o_bias=attn_bias and not is_qwen2,
                mlp_bias=bool(hf.get("mlp_bias", False)),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
                rope_theta=theta,
                rope_scaling=scaling,
                sliding_window=int(window) if window else None,
                bos_token_id=hf.get("bos_token_id"),
                eos_token_ids=eos,
                torch_dtype=dtype,
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
        if self.architecture == "MistralForCausalLM":
            out["sliding_window"] = self.sliding_window
        elif self.architecture == "Qwen2ForCausalLM" and self.sliding_window:
            out |= {"use_sliding_window": True, "sliding_window": self.sliding_window}
        if self.architecture != "Qwen2ForCausalLM":
            out["attention_bias"] = self.qkv_bias
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _activation(name: str) -> str:
    if name not in SUPPORTED_ACTIVATIONS:
        raise ModelLoadError(
            f"unsupported activation {name!r}; supported: {', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    return name
