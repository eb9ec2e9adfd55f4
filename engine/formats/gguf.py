"""GGUF files (llama.cpp) -> checkpoint folders in the Hugging Face layout.

A GGUF holds the weights (often quantized) and, as metadata, the config and the tokenizer.
We convert it once into ``<cache>/gguf/<key>/`` (config.json, model.safetensors,
tokenizer.json, ...) and load that folder like any other checkpoint; the key changes when the
file does. Two conversions exist: the quantized one (the default: quantized tensors stay
quantized, see ``gguf_quant``; about the file's size) and the float32 one (the reference for
parity, ``dtype="float32"``). Dequantization is ``gguf.quants`` (numpy over all blocks of a row
group at once).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType, LlamaFileType
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch
from tokenizers import Tokenizer

from engine.atomic_dir import fsync_tree, remove_stale
from engine.errors import ModelLoadError
from engine.formats.gguf_cache import QUANTIZED_SUFFIX, cache_folder, is_complete
from engine.formats.gguf_config import ARCHITECTURES, hf_config
from engine.formats.gguf_dequant import SUPPORTED_TYPES, dequantize_tensor, unpermute_rope
from engine.formats.gguf_file import GGUFFile, GGUFFormatError, Truncated
from engine.formats.gguf_quant import FLOAT_TYPES, quantized_weight
from engine.formats.gguf_tokenizer import build_tokenizer, field_value
from engine.quantize import GROUP, QUANT_METHOD, QuantizedWeight, quantized_tensors

Q = GGMLQuantizationType
# Notes for the user about a converted model (a list of one-line strings).
WARNINGS_FILE = "warnings.json"
# safetensors shards: the conversion holds at most one in memory.
SHARD_BYTES = 2 << 30

_LLAMA_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# Per architecture, what differs from the Llama names above.
_ARCH_NAMES: dict[str, dict[str, str]] = {
    "qwen3": {"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"},
    "gemma3": {
        "attn_q_norm": "self_attn.q_norm",
        "attn_k_norm": "self_attn.k_norm",
        "post_attention_norm": "post_attention_layernorm",
        "ffn_norm": "pre_feedforward_layernorm",
        "post_ffw_norm": "post_feedforward_layernorm",
    },
    "phi3": {"attn_qkv": "self_attn.qkv_proj", "ffn_up": "mlp.gate_up_proj"},  # fused
}
_GPT2_NAMES = {
    "attn_norm": "ln_1",
    "ffn_norm": "ln_2",
    "attn_qkv": "attn.c_attn",
    "attn_output": "attn.c_proj",
    "ffn_up": "mlp.c_fc",
    "ffn_down": "mlp.c_proj",
}
# GPT-2 keeps these as Conv1D ([in, out]); llama.cpp stores them as [out, in].
_GPT2_CONV1D = ("attn_qkv", "attn_output", "ffn_up", "ffn_down")
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")


def gguf_checkpoint(path: Path, *, quantized: bool = True) -> Path:
    """The converted folder for ``path`` (converted now unless the cache already has it):
    quantized tensors kept quantized, or everything float32 (``quantized=False``)."""
    return convert_to_cache(path, quantized=quantized)[0]


def convert_to_cache(path: Path, *, quantized: bool = True) -> tuple[Path, Tokenizer | None]:
    """``gguf_checkpoint``'s folder, and the tokenizer that this call wrote into it (None
    where the cache had the folder already): the loader takes it as it is rather than parse
    the ``tokenizer.json`` it was just saved as (Gemma 3's: 1.5 s)."""
    path = Path(path)
    dest = cache_folder(path, quantized=quantized)
    if is_complete(dest):
        return dest, None
    key, root = dest.name, dest.parent
    root.mkdir(parents=True, exist_ok=True)
    remove_stale(root, key)  # a conversion killed earlier
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        tokenizer: Tokenizer | None = convert_gguf(path, tmp, quantized=quantized)
        (tmp / "source.json").write_text(json.dumps({"source": str(path.resolve())}))
        fsync_tree(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not is_complete(dest):  # not a concurrent conversion
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            tokenizer = None  # the folder that won holds another conversion's file
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _drop_stale(root, key.removesuffix(QUANTIZED_SUFFIX), path)
    return dest, tokenizer


def _drop_stale(root: Path, key: str, source: Path) -> None:
    """Remove earlier conversions of the same file (it changed since); both conversions of
    its current version (``key``) stay."""
    want = str(source.resolve())
    for d in root.glob(f"{source.stem}-*"):
        if d.name in (key, key + QUANTIZED_SUFFIX) or not d.is_dir():
            continue
        try:
            if json.loads((d / "source.json").read_text())["source"] == want:
                shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError, KeyError, TypeError):
            continue


def open_gguf(path: Path) -> GGUFFile:
    """The file's metadata and tensors, its failures turned into one-line ``ModelLoadError``s."""
    try:
        with Path(path).open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror or e}") from None
    if magic != b"GGUF":
        raise ModelLoadError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    try:
        return GGUFFile(path)
    except Truncated as e:
        raise ModelLoadError(f"{path} is truncated ({e}); download it again") from None
    except GGUFFormatError as e:
        msg = str(e)
        if "is not a valid GGMLQuantizationType" in msg:
            raise ModelLoadError(f"{path} has a tensor of unknown type ({msg})") from None
        if "version" in msg:
            raise ModelLoadError(f"{path}: unsupported GGUF version ({msg})") from None
        raise ModelLoadError(f"{path} is corrupt ({msg}); download it again") from None
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror or e}") from None


def gguf_metadata_summary(path: Path) -> dict[str, Any]:
    """Architecture, name, file type (quantization), context length, tensor types and parameter
    count of a GGUF file, from its metadata (no weights are read)."""
    reader = open_gguf(Path(path))
    arch = field_value(reader, "general.architecture")
    file_type = field_value(reader, "general.file_type")
    try:
        ftype = (
            LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
        )
    except ValueError:
        ftype = str(file_type)
    return {
        "architecture": arch,
        "name": field_value(reader, "general.name"),
        "file_type": ftype,
        "context_length": field_value(reader, f"{arch}.context_length"),
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
        "parameters": sum(t.n_elements for t in reader.tensors),
    }


def convert_gguf(path: Path, out_dir: Path, *, quantized: bool = False) -> Tokenizer:
    """Write ``path`` as a Hugging Face checkpoint into the folder ``out_dir`` (made if absent;
    not atomic: ``gguf_checkpoint`` and callers that need it write to a temp folder first).
    ``quantized``: quantized tensors stay quantized (our int4/int8 form, marked in config.json),
    float ones keep their type; else everything is float32 (loads in transformers too).
    Returns the tokenizer saved as ``tokenizer.json``."""
    path, out_dir = Path(path), Path(out_dir)
    reader = open_gguf(path)
    arch = field_value(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise ModelLoadError(
            f"{path.name}: unsupported GGUF architecture {arch!r}; supported: {', '.join(ARCHITECTURES)}"
        )
    for t in reader.tensors:
        if t.tensor_type not in SUPPORTED_TYPES:
            raise ModelLoadError(
                f"{path.name}: tensor {t.name!r} has type {t.tensor_type.name}, which is not "
                f"supported; supported: {', '.join(q.name for q in SUPPORTED_TYPES)}"
            )
    tensors = {t.name: t for t in reader.tensors}
    config = hf_config(reader, arch, tensors, path.name)
    tok = build_tokenizer(reader, path.name)
    config["bos_token_id"] = tok.bos_id
    config["eos_token_id"] = tok.eos_id
    quantized = quantized and any(t.tensor_type not in FLOAT_TYPES for t in reader.tensors)
    if quantized:
        config["quantization_config"] = {"quant_method": QUANT_METHOD, "group_size": GROUP}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    gen = {"bos_token_id": tok.bos_id, "eos_token_id": tok.end_ids}
    (out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2))
    tok.save(out_dir)
    if tok.warnings:  # shown when the model loads (Model.warnings): not only in a log
        (out_dir / WARNINGS_FILE).write_text(json.dumps(tok.warnings, indent=2))
    write_weights(reader, arch, config, path.name, out_dir, quantized=quantized)
    return tok.tokenizer


def write_weights(
    reader: GGUFFile,
    arch: str,
    config: dict[str, Any],
    name: str,
    out_dir: Path,
    *,
    quantized: bool = False,
) -> None:
    """Convert tensor by tensor into safetensors shards of at most ``SHARD_BYTES``, so
    memory holds one shard, not the whole converted model."""
    groups: list[list[Any]] = [[]]
    size = 0
    for t in reader.tensors:
        nbytes = int(t.n_bytes) if quantized else int(t.n_elements) * 4
        if groups[-1] and size + nbytes > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(t)
        size += nbytes
    weight_map: dict[str, str] = {}
    for i, group in enumerate(groups):
        file = "model.safetensors"
        if len(groups) > 1:
            file = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        if quantized:
            shard = quantized_tensors(dict(hf_weights(group, arch, config, name, quantized=True)))
            save_torch(shard, str(out_dir / file), metadata={"format": "pt"})
            weight_map |= dict.fromkeys(shard, file)
        else:
            arrays = dict(hf_weights(group, arch, config, name))
            save_file(arrays, str(out_dir / file), metadata={"format": "pt"})
            weight_map |= dict.fromkeys(arrays, file)
    if len(groups) > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def hf_weights(
    tensors: list[Any], arch: str, config: dict[str, Any], name: str, *, quantized: bool = False
) -> Iterator[tuple[str, Any]]:
    """Each tensor under its Hugging Face name and layout: dequantized to float32, or with
    ``quantized`` a ``QuantizedWeight`` (quantized 2-D tensors) or a tensor of its own type."""
    rename: Callable[[str, Any], tuple[str, Any] | None]
    names = _LLAMA_NAMES | _ARCH_NAMES.get(arch, {})
    rename = _gpt2_tensor if arch == "gpt2" else functools.partial(_llama_tensor, names=names)
    for t in tensors:
        w: Any
        if not quantized:
            w = dequantize_tensor(t)
        elif t.tensor_type in FLOAT_TYPES or len(t.shape) != 2:
            w = _float_tensor(t)
        else:
            w = quantized_weight(t)
        if arch == "llama" and re.search(r"\.attn_[qk]\.", t.name):
            heads = config["num_attention_heads"]
            if ".attn_k." in t.name:
                heads = config["num_key_value_heads"]
            if isinstance(w, QuantizedWeight):
                rows = np.arange(w.shape[0])[:, None]
                w = w.permute_rows(torch.from_numpy(unpermute_rope(rows, heads)[:, 0]))
            else:
                w = unpermute_rope(np.asarray(w), heads)
        if arch == "gemma3" and t.name.endswith("norm.weight"):
            w = w - 1  # llama.cpp stores Gemma's (1 + weight); HF checkpoints the weight
        mapped = rename(t.name, w)
        if mapped is None:
            raise ModelLoadError(f"{name}: unexpected tensor {t.name!r} for architecture {arch}")
        if mapped[0]:
            key, value = mapped
            if quantized and isinstance(value, np.ndarray):
                value = torch.from_numpy(np.array(value))  # a copy: the file map is read-only
            yield key, value


def _llama_tensor(gname: str, w: Any, names: dict[str, str]) -> tuple[str, Any] | None:
    fixed = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
        "rope_freqs.weight": "",  # folded into config.json's rope_scaling
        "rope_factors_long.weight": "",  # Phi-3/4 longrope: the same
        "rope_factors_short.weight": "",
    }
    if gname in fixed:
        return fixed[gname], w
    m = _BLOCK.match(gname)
    if not m or m.group(2) not in names:
        return None
    layer, part, kind = m.groups()
    return f"model.layers.{layer}.{names[part]}.{kind}", w


def _float_tensor(t: Any) -> np.ndarray:
    """A float GGUF tensor in its own type (F32, F16; BF16 as float32), torch order."""
    if t.tensor_type == Q.F16:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        return np.ascontiguousarray(np.asarray(t.data).view(np.float16).reshape(shape))
    return dequantize_tensor(t)


def _gpt2_tensor(gname: str, w: Any) -> tuple[str, Any] | None:
    fixed = {
        "token_embd.weight": "transformer.wte.weight",
        "position_embd.weight": "transformer.wpe.weight",
        "output_norm.weight": "transformer.ln_f.weight",
        "output_norm.bias": "transformer.ln_f.bias",
        "output.weight": "lm_head.weight",
    }
    if gname in fixed:
        return fixed[gname], w
    m = _BLOCK.match(gname)
    if not m or m.group(2) not in _GPT2_NAMES:
        return None
    layer, part, kind = m.groups()
    if part in _GPT2_CONV1D and kind == "weight" and not isinstance(w, QuantizedWeight):
        w = np.ascontiguousarray(np.asarray(w).T)  # quantized weights stay [out, in]
    return f"transformer.h.{layer}.{_GPT2_NAMES[part]}.{kind}", w
