"""``engine.load`` and ``engine.save``: checkpoints in the Hugging Face folder layout."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

from engine import fused_decode, native
from engine.atomic_dir import building
from engine.config import ModelConfig
from engine.errors import ModelLoadError
from engine.formats import hf
from engine.formats.hf import Weight, fuse, unfuse
from engine.formats.safetensors_file import SafetensorsFormatError, read_safetensors
from engine.generate import Model
from engine.memory import available_bytes, gc_paused, trim_heap
from engine.model import Transformer
from engine.quantize import (
    COMPUTE_DTYPE,
    QUANT_METHOD,
    QuantizedWeight,
    group_quantized,
    quantize_weight,
    quantized_tensors,
    swap_in,
)
from engine.registry import resolve_source
from engine.tokenizer import Tokenizer

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
SMALL_MODEL_PARAMETERS = 30_000_000  # below this, "auto" keeps float32 on the CPU
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


QUANTS = ("auto", "none", "int8", "int4")


def load(
    source: str | os.PathLike[str],
    *,
    dtype: str = "auto",
    device: str = "cpu",
    quant: str = "auto",
) -> Model:
    """Load a checkpoint folder, a ``.gguf`` file or a model name from the data dir.

    ``quant``: ``auto`` keeps quantized weights quantized (a GGUF file's 4-bit tensors as int4,
    its other quantized types as int8; a folder as it was saved) and floats as floats, except
    that ``dtype="float32"`` asks for the float reference path (everything dequantized);
    ``none`` dequantizes everything; ``int8`` / ``int4`` also quantize float weights (int4 for
    the transformer blocks, int8 for the embeddings and output head).
    """
    with gc_paused():
        return _load(source, dtype=dtype, device=device, quant=quant)


def _load(source: str | os.PathLike[str], *, dtype: str, device: str, quant: str) -> Model:
    if quant not in QUANTS:
        raise ModelLoadError(f"unknown quant {quant!r}; use {', '.join(QUANTS)}")
    if quant == "auto" and dtype == "float32":
        quant = "none"
    if quant in ("int8", "int4") and device != "cpu":
        raise ModelLoadError(f"{quant} weights run on the CPU only for now; use quant='none'")
    if device != "cpu":
        quant = "none"  # the quantized kernels here are the CPU ones
    path = resolve_source(source)
    name = path.name
    our_cache = False  # a folder we wrote (to a new name, renamed): never rewritten in place
    parsed = None  # the tokenizer a conversion just wrote, as it is in memory
    if path.is_file() and path.suffix.lower() == ".gguf":
        from engine.formats.gguf_cache import converted

        name = path.stem  # not the cache folder's name, which carries a digest
        done = converted(path, quantized=quant != "none")
        if done is None:  # the converter (gguf, numpy) is imported only to convert
            from engine.formats.gguf import convert_to_cache

            # A first build of the kernels (seconds of cc) runs meanwhile; it is waited for
            # below (native.kernel() holds a lock), or here where the conversion fails.
            build = threading.Thread(target=native.kernel, name="native-build", daemon=True)
            if device == "cpu":
                build.start()
            try:
                done, parsed = convert_to_cache(path, quantized=quant != "none")
            except BaseException:
                if build.is_alive():
                    build.join()  # not a compiler cut off at exit, leaving its build folder
                raise
        path, our_cache = done, True
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise _pickle_error(path)
        raise ModelLoadError(f"{path} is not a model: give a checkpoint folder or a .gguf file")
    config = read_config_json(path)
    cfg = ModelConfig.from_hf(config)
    saved_quantized = is_quantized_config(config)
    check_memory(path, grows=quant == "none" and saved_quantized)
    eos_ids = cfg.eos_token_ids + _generation_eos(path)
    tokenizer = Tokenizer.from_dir(path, eos_ids=eos_ids, parsed=parsed)
    # Parsing tokenizer.json leaves its transient buffers in malloc's free lists (Gemma 3's
    # 262k-token vocabulary: 290 MiB resident after the parse, 96 MiB of it the tokenizer),
    # which the weights, allocated apart, would sit on top of: hand them back first.
    trim_heap()
    stays_quantized = quant in ("int8", "int4") or (quant == "auto" and saved_quantized)
    torch_dtype = COMPUTE_DTYPE if stays_quantized else _pick_dtype(dtype, cfg, device)
    # Floats are cast as they are read, except when they are about to be quantized. A GGUF
    # conversion whose blocks the kernels read as they are is mapped, not copied.
    mapped = (
        our_cache
        and quant == "auto"
        and device == "cpu"
        and torch_dtype == torch.bfloat16
        and native.ggml_kernels()
    )
    state = read_weights(
        path, cfg, dtype=None if quant in ("int8", "int4") else torch_dtype, mapped=mapped
    )
    state = apply_quant(cfg, state, quant)
    with torch.device("meta"), _SkipInit():
        net = Transformer(cfg)
    check_shapes(path, cfg, state, unfuse(cfg, net.state_dict()))
    if cfg.tie_word_embeddings and isinstance(state.get("embed_tokens.weight"), QuantizedWeight):
        state["lm_head.weight"] = state["embed_tokens.weight"]  # one quantized copy, shared
    state = fuse(cfg, state)
    rest = swap_in(net, state, torch_dtype)
    rest = {k: t.to(device=device, dtype=torch_dtype) for k, t in rest.items()}
    net.load_state_dict(rest, strict=False, assign=True)
    net.tie_weights()
    net.to(device)
    left = [k for k, t in net.state_dict().items() if t.is_meta]
    if left:  # cannot happen for a checked state; a clear error beats garbage
        raise ModelLoadError(f"{path}: no weights for {left[0]!r}")
    del state, rest
    trim_heap()
    if device == "cpu" and torch_dtype == torch.bfloat16:
        native.kernel()  # built (the first time on a machine) or loaded now, not at the 1st token
        fused_decode.attach(net)
    model = Model(net, tokenizer, name=name, path=str(path))
    model.warnings = read_warnings(path)
    if not tokenizer.has_own_template:
        model.base_model_note = base_model_note(name, tokenizer.template_name)
        model.warnings.append(model.base_model_note)
    return model


def base_model_note(name: str, template: str) -> str:
    """What the user is told about a model without a chat template (most likely a base
    model: chatting with one is a common surprise)."""
    return (
        f"{name} has no chat template, so it is probably a base model: it continues text "
        f"rather than answering; the chat uses {template} as a fallback"
    )


def read_warnings(path: Path) -> list[str]:
    """What the converter noted for the user (``warnings.json``: a list of strings)."""
    try:
        data = json.loads((path / "warnings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(w) for w in data] if isinstance(data, list) else []


def check_memory(path: Path, *, grows: bool = False) -> None:
    """Refuse early, with one line, a model that cannot fit in the memory available now
    (rather than filling it tensor by tensor until the OS kills the process). The weights'
    files are the estimate; dequantizing a quantized folder to float32 (``grows``) takes about
    seven times as much."""
    need = sum(f.stat().st_size for f in path.glob("*.safetensors")) * (7 if grows else 1)
    have = available_bytes()
    if have is not None and need > have:
        raise ModelLoadError(
            f"{path.name} needs about {need / 1e9:.1f} GB of memory and {have / 1e9:.1f} GB is "
            "available; close other programs, or use a smaller or quantized model"
        )


def is_quantized_config(config: dict[str, Any]) -> bool:
    """Whether a config.json says its folder's weights are quantized (our int4/int8 form)."""
    qc = config.get("quantization_config")
    return isinstance(qc, dict) and qc.get("quant_method") == QUANT_METHOD


def apply_quant(cfg: ModelConfig, state: dict[str, Weight], quant: str) -> dict[str, Weight]:
    """Bring ``state`` to the ``quant`` asked for (see ``load``)."""
    if quant == "auto":
        return state
    if quant == "none":
        return {
            k: v.dequantize(torch.float32) if isinstance(v, QuantizedWeight) else v
            for k, v in state.items()
        }
    out: dict[str, Weight] = {}
    for k, v in state.items():
        kind = quant if k.startswith("layers.") else "int8"  # embeddings and head: int8
        is_matrix = k.endswith(".weight") and len(v.shape) == 2 and "embed_positions" not in k
        if isinstance(v, QuantizedWeight):
            out[k] = v if v.kind == kind else quantize_weight(v.dequantize(), kind)
        elif is_matrix:
            out[k] = quantize_weight(v, kind)
        else:
            out[k] = v
    return out


def check_shapes(
    path: Path, cfg: ModelConfig, state: dict[str, Weight], expected: dict[str, torch.Tensor]
) -> None:
    """Every tensor the config needs is there, with the shape it needs, and nothing else."""
    missing = [k for k in expected if k not in state and not _tied(cfg, k)]
    if missing:
        raise ModelLoadError(
            f"{path}: the weights lack tensor {missing[0]!r} (and {len(missing) - 1} more)"
            if len(missing) > 1
            else f"{path}: the weights lack tensor {missing[0]!r}"
        )
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise ModelLoadError(
            f"{path}: unexpected tensor {unexpected[0]!r} for {cfg.architecture}; "
            "is config.json from the same model?"
        )
    for k, t in state.items():
        want = tuple(expected[k].shape)
        if tuple(t.shape) != want:
            raise ModelLoadError(
                f"{path}: tensor {k!r} has shape {tuple(t.shape)} but the config needs {want}"
            )


class _SkipInit(TorchFunctionMode):
    """Skip ``torch.nn.init`` while building a net whose parameters the checkpoint replaces.
    Besides saving the work, ``normal_`` on a meta tensor goes through ``torch._refs``, which
    imports ``torch._dynamo`` and sympy: about a second and 80 MiB of RSS on the first load."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


def read_config(path: Path) -> ModelConfig:
    return ModelConfig.from_hf(read_config_json(path))


def read_config_json(path: Path) -> dict[str, Any]:
    """``path/config.json`` as a dict, or a one-line ``ModelLoadError``."""
    cj = path / "config.json"
    if not path.is_dir():
        raise ModelLoadError(f"{path} does not exist")
    if not cj.is_file():
        if any(path.glob("*.gguf")):
            raise ModelLoadError(f"{path} holds a .gguf file: load the file itself, not the folder")
        raise ModelLoadError(f"{path} has no config.json; is it a Hugging Face model folder?")
    try:
        data = json.loads(cj.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{cj} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{cj} is not a JSON object")
    return data


def _generation_eos(path: Path) -> list[int]:
    gc = path / "generation_config.json"
    try:
        eos = json.loads(gc.read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return []
    items = eos if isinstance(eos, list) else [eos]
    return [int(e) for e in items if isinstance(e, int)]


def _tied(cfg: ModelConfig, key: str) -> bool:
    return cfg.tie_word_embeddings and key == "lm_head.weight"


def _pick_dtype(dtype: str, cfg: ModelConfig, device: str) -> torch.dtype:
    if dtype == "auto":
        # Decoding is memory-bound: bfloat16 halves the bytes read per token (and the RSS).
        # On CPUs without native bf16 matmul it would be slower than float32, so use float32.
        if device == "cpu" and not _cpu_has_bf16():
            return torch.float32
        # Tiny models are not memory-bound: per-token overhead dominates and float32 kernels
        # are faster (the 5M-parameter guide: 558 vs 365 tok/s), at a few MB more.
        if device == "cpu" and _approx_parameters(cfg) < SMALL_MODEL_PARAMETERS:
            return torch.float32
        return torch.bfloat16
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _approx_parameters(cfg: ModelConfig) -> int:
    h, kv = cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim
    attn = h * cfg.num_heads * cfg.head_dim * 2 + h * kv * 2
    mlp = h * cfg.intermediate_size * (3 if cfg.mlp == "gated" else 2)
    embed = cfg.vocab_size * h * (1 if cfg.tie_word_embeddings else 2)
    return cfg.num_layers * (attn + mlp) + embed


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _pickle_error(path: Path) -> ModelLoadError:
    return ModelLoadError(
        f"{path.name} is a pickle checkpoint, which is never loaded (it can run code); convert it "
        "to safetensors first (e.g. transformers' save_pretrained(..., safe_serialization=True))"
    )


def read_weights(
    path: Path, cfg: ModelConfig, dtype: torch.dtype | None = None, *, mapped: bool = False
) -> dict[str, Weight]:
    """Read ``model.safetensors`` (or its shards) and map names to ours (fused projections
    still in parts; quantized weights as ``QuantizedWeight``). Float tensors are cast to
    ``dtype`` as they are read, so a float32 file never sits in memory twice. ``mapped``: the
    tensors kept as stored are views of a map of the files (only for files we wrote)."""
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError):
            raise ModelLoadError(f"{index} is not a valid safetensors index") from None
        files = [path / f for f in sorted(set(weight_map.values()))]
    else:
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise _pickle_error(pickles[0])
        raise ModelLoadError(f"{path} has no model.safetensors")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        if not f.is_file():
            raise ModelLoadError(f"{f} is missing (named in the safetensors index)")
        try:
            tensors |= read_safetensors(f, dtype, mapped=mapped)
        except SafetensorsFormatError as e:
            raise ModelLoadError(f"{f} is corrupt or truncated ({e}); download it again") from None
        except OSError as e:
            raise ModelLoadError(f"cannot read {f}: {e.strerror or e}") from None
    try:
        grouped = group_quantized(tensors)
    except ValueError as e:
        raise ModelLoadError(f"{path}: {e}") from None
    return hf.from_hf(cfg, grouped)


def save(
    model: Model, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` as a Hugging Face folder (loads in transformers too), atomically:
    everything goes to a temp folder that replaces ``path`` only when complete."""
    from engine.quantize import weight_kinds

    if weight_kinds(model.net):
        raise ValueError(
            f"{model.name or 'this model'} holds quantized weights, which save() does not "
            "write; save the float model, or quantize a folder with quantize_checkpoint()"
        )
    dest = Path(path)
    with building(dest) as tmp:
        write_checkpoint(model.net, model.tokenizer, tmp, metadata=metadata)
    return dest


def quantize_checkpoint(src: Path, dest: Path, kind: str) -> None:
    """Write the checkpoint folder ``src`` into the existing folder ``dest`` with its weights
    quantized to ``kind`` (``int8`` or ``int4``, see ``load``); tokenizer and config files are
    copied, config.json gains a ``quantization_config``."""
    if kind not in ("int8", "int4"):
        raise ValueError(f"kind must be int8 or int4, got {kind!r}")
    config = read_config_json(src)
    cfg = ModelConfig.from_hf(config)
    state = apply_quant(cfg, read_weights(src, cfg), kind)
    tensors = quantized_tensors(hf.to_hf(cfg, state))
    config["quantization_config"] = {"quant_method": QUANT_METHOD, "bits": kind}
    for f in src.iterdir():
        if (
            (
                f.is_file()
                and f.suffix == ".json"
                and f.name != "config.json"
                and "safetensors" not in f.name
            )
            or f.is_file()
            and f.suffix in (".jinja", ".txt", ".model", ".md")
        ):
            shutil.copy2(f, dest / f.name)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})


def write_checkpoint(
    net: Transformer, tokenizer: Tokenizer, folder: Path, *, metadata: dict[str, Any] | None = None
) -> None:
    """The files of a checkpoint, written into an existing ``folder``."""
    cfg = net.config
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    tensors = hf.to_hf(cfg, state)
    dtype = next(iter(tensors.values())).dtype
    hf_cfg = cfg.to_hf() | {"torch_dtype": str(dtype).removeprefix("torch.")}
    (folder / "config.json").write_text(json.dumps(hf_cfg, indent=2))
    eos = sorted(tokenizer.eos_ids | set(cfg.eos_token_ids))
    gen = {"eos_token_id": eos, "bos_token_id": cfg.bos_token_id}
    (folder / "generation_config.json").write_text(json.dumps(gen, indent=2))
    meta = {"format": "pt"} | {k: str(v) for k, v in (metadata or {}).items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata=meta)
    tokenizer.save(folder)
