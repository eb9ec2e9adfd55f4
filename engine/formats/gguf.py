"""GGUF files (llama.cpp) -> checkpoint folders in the Hugging Face layout.

A GGUF holds the weights (often quantized) and, as metadata, the config and the tokenizer.
We convert it once into ``<cache>/gguf/<key>/`` (config.json, float32 model.safetensors,
tokenizer.json, ...) and load that folder like any other checkpoint; the key changes when the
file does. Dequantization is ``gguf.quants`` (numpy over all blocks of a row group at once).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, LlamaFileType
from safetensors.numpy import save_file

from engine import paths
from engine.errors import ModelLoadError
from engine.formats.gguf_config import ARCHITECTURES, hf_config
from engine.formats.gguf_dequant import SUPPORTED_TYPES, dequantize_tensor, unpermute_rope
from engine.formats.gguf_header import read_header
from engine.formats.gguf_tokenizer import build_tokenizer, field_value

# Bump when the converted folder changes shape, so old cache entries are rebuilt.
CONVERTER_VERSION = 1
# float32 safetensors shards: the conversion holds at most one in memory.
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


def gguf_checkpoint(path: Path) -> Path:
    """The converted folder for ``path`` (converted now unless the cache already has it)."""
    path = Path(path)
    key = cache_key(path)
    root = paths.cache_dir() / "gguf"
    dest = root / key
    if (dest / "config.json").is_file():  # folders appear complete (renamed into place)
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        convert_gguf(path, tmp)
        (tmp / "source.json").write_text(json.dumps({"source": str(path.resolve())}))
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / "config.json").is_file():  # not a concurrent conversion
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _drop_stale(root, dest, path)
    return dest


def cache_key(path: Path) -> str:
    """Folder name for ``path``: its stem and a digest of size, mtime and first MiB."""
    try:
        st = path.stat()
        with path.open("rb") as f:
            head = f.read(1 << 20)
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror or e}") from None
    h = hashlib.sha256(f"{CONVERTER_VERSION}:{st.st_size}:{st.st_mtime_ns}:".encode())
    h.update(head)
    return f"{path.stem}-{h.hexdigest()[:16]}"


def _drop_stale(root: Path, keep: Path, source: Path) -> None:
    """Remove earlier conversions of the same file (it changed since)."""
    want = str(source.resolve())
    for d in root.glob(f"{source.stem}-*"):
        if d == keep or not d.is_dir():
            continue
        try:
            if json.loads((d / "source.json").read_text())["source"] == want:
                shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError, KeyError, TypeError):
            continue


def open_gguf(path: Path) -> GGUFReader:
    """``GGUFReader`` with its failures turned into one-line ``ModelLoadError``s."""
    try:
        with Path(path).open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror or e}") from None
    if magic != b"GGUF":
        raise ModelLoadError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    try:
        return GGUFReader(path)
    except ValueError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "is not a valid GGMLQuantizationType" in msg:
            raise ModelLoadError(f"{path} has a tensor of unknown type ({msg})") from None
        if "version" in msg:
            raise ModelLoadError(f"{path}: unsupported GGUF version ({msg})") from None
        raise ModelLoadError(f"{path} is truncated or corrupt ({msg}); download it again") from None
    except (IndexError, KeyError, OverflowError, TypeError) as e:
        raise ModelLoadError(f"{path} is truncated or corrupt ({e}); download it again") from None


def gguf_metadata_summary(path: Path) -> dict[str, Any]:
    """Architecture, name, file type (quantization), context length, tensor types and parameter
    count of a GGUF file, from its header alone (fast: no vocabulary or weights are read)."""
    meta, tensors = read_header(Path(path))
    arch = meta.get("general.architecture")
    file_type = meta.get("general.file_type")
    try:
        ftype = (
            LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
        )
    except ValueError:
        ftype = str(file_type)
    types = set()
    for _, t, _ in tensors:
        try:
            types.add(GGMLQuantizationType(t).name)
        except ValueError:
            types.add(str(t))
    return {
        "architecture": arch,
        "name": meta.get("general.name"),
        "file_type": ftype,
        "context_length": meta.get(f"{arch}.context_length"),
        "tensor_types": sorted(types),
        "parameters": sum(n for _, _, n in tensors),
    }


def convert_gguf(path: Path, out_dir: Path) -> None:
    """Write ``path`` as a Hugging Face checkpoint into the folder ``out_dir`` (made if absent;
    not atomic: ``gguf_checkpoint`` and callers that need it write to a temp folder first)."""
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
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    gen = {"bos_token_id": tok.bos_id, "eos_token_id": tok.end_ids}
    (out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2))
    tok.save(out_dir)
    write_weights(reader, arch, config, path.name, out_dir)


def write_weights(
    reader: GGUFReader, arch: str, config: dict[str, Any], name: str, out_dir: Path
) -> None:
    """Dequantize tensor by tensor into safetensors shards of at most ``SHARD_BYTES``, so
    memory holds one shard, not the whole float32 model."""
    groups: list[list[Any]] = [[]]
    size = 0
    for t in reader.tensors:
        nbytes = int(t.n_elements) * 4
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
        shard = dict(hf_weights(group, arch, config, name))
        save_file(shard, str(out_dir / file), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(shard, file)
        del shard
    if len(groups) > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def hf_weights(
    tensors: list[Any], arch: str, config: dict[str, Any], name: str
) -> Iterator[tuple[str, np.ndarray]]:
    """Each tensor dequantized to float32, under its Hugging Face name and layout."""
    rename: Callable[[str, np.ndarray], tuple[str, np.ndarray] | None]
    rename = _gpt2_tensor if arch == "gpt2" else _llama_tensor
    for t in tensors:
        w = dequantize_tensor(t)
        if arch == "llama" and re.search(r"\.attn_[qk]\.", t.name):
            heads = config["num_attention_heads"]
            if ".attn_k." in t.name:
                heads = config["num_key_value_heads"]
            w = unpermute_rope(w, heads)
        mapped = rename(t.name, w)
        if mapped is None:
            raise ModelLoadError(f"{name}: unexpected tensor {t.name!r} for architecture {arch}")
        if mapped[0]:
            yield mapped


def _llama_tensor(gname: str, w: np.ndarray) -> tuple[str, np.ndarray] | None:
    fixed = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
        "rope_freqs.weight": "",  # folded into config.json's rope_scaling
    }
    if gname in fixed:
        return fixed[gname], w
    m = _BLOCK.match(gname)
    if not m or m.group(2) not in _LLAMA_NAMES:
        return None
    layer, part, kind = m.groups()
    return f"model.layers.{layer}.{_LLAMA_NAMES[part]}.{kind}", w


def _gpt2_tensor(gname: str, w: np.ndarray) -> tuple[str, np.ndarray] | None:
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
    if part in _GPT2_CONV1D and kind == "weight":
        w = np.ascontiguousarray(w.T)
    return f"transformer.h.{layer}.{_GPT2_NAMES[part]}.{kind}", w
