"""GGUF import on small files written here with ``gguf.GGUFWriter`` from the tiny transformers
models: dequantization, the q/k un-permutation, tokenizers, the conversion cache, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from helpers import CORPUS, make_hf_model
from safetensors.numpy import load_file
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

import engine
from engine import native, paths
from engine.formats import gguf as gguf_format
from engine.formats.gguf import (
    convert_gguf,
    convert_to_cache,
    gguf_checkpoint,
    gguf_metadata_summary,
)
from engine.formats.gguf_config import llama3_divisors
from engine.formats.gguf_dequant import dequantize_tensor

TEXTS = [
    *CORPUS[:5],
    "  leading spaces and\ttabs\n\n\nnewlines   ",
    "Numbers 1234567 and 3.14159, 'quotes' it's we'll",
    "return 42424242  # 424242",
    "<|im_start|>user\nhi<|im_end|>\n",
]

# ---------------------------------------------------------------- writing GGUF files

# Hugging Face -> llama.cpp tensor names (as llama.cpp's convert_hf_to_gguf.py writes them).
LLAMA_LAYER = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# What llama.cpp's converter names differently per architecture.
ARCH_LAYER = {
    "qwen3": {"self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"},
    "gemma3": {
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
        "post_attention_layernorm": "post_attention_norm",
        "pre_feedforward_layernorm": "ffn_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
    },
    "phi3": {"self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up"},
}
GPT2_LAYER = {
    "ln_1": "attn_norm",
    "ln_2": "ffn_norm",
    "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
}


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's converter does to q/k rows (``LlamaModel.permute``)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def to_gguf_tensors(arch: str, folder: Path) -> dict[str, np.ndarray]:
    """The tiny HF model's tensors under llama.cpp names and layouts."""
    cfg = json.loads((folder / "config.json").read_text())
    out: dict[str, np.ndarray] = {}
    for name, w in load_file(str(folder / "model.safetensors")).items():
        w = w.astype(np.float32)
        if arch == "gpt2":
            name = name.removeprefix("transformer.")
            fixed = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight"}
            fixed |= {"ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}
            fixed |= {"lm_head.weight": "output.weight"}
            if name in fixed:
                out[fixed[name]] = w
                continue
            m = re.match(r"h\.(\d+)\.(.+)\.(weight|bias)$", name)
            if not m or m.group(2) not in GPT2_LAYER:
                continue  # attention-mask buffers
            layer, part, kind = m.groups()
            if kind == "weight" and w.ndim == 2:
                w = w.T.copy()  # Conv1D [in, out] -> [out, in]
            out[f"blk.{layer}.{GPT2_LAYER[part]}.{kind}"] = w
            continue
        if arch == "gemma3" and name.endswith("norm.weight"):
            w = w + 1  # llama.cpp stores Gemma's (1 + weight)
        fixed = {"model.embed_tokens.weight": "token_embd.weight"}
        fixed |= {"model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
        if name in fixed:
            out[fixed[name]] = w
            continue
        m = re.match(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)$", name)
        assert m, name
        layer, part, kind = m.groups()
        if arch == "llama" and part in ("self_attn.q_proj", "self_attn.k_proj"):
            heads = cfg["num_attention_heads"]
            if part == "self_attn.k_proj":
                heads = cfg["num_key_value_heads"]
            w = llama_cpp_permute(w, heads)
        names = LLAMA_LAYER | ARCH_LAYER.get(arch, {})
        out[f"blk.{layer}.{names[part]}.{kind}"] = w
    return out


def quantized(w: np.ndarray, qtype: Q) -> np.ndarray:
    """Bytes (or floats) as llama.cpp stores ``w``: 1-D tensors stay F32, as in real files."""
    if w.ndim == 1 or qtype == Q.F32:
        return w
    return gguf.quants.quantize(w, qtype)


def add_tensor(writer: gguf.GGUFWriter, name: str, w: np.ndarray, qtype: Q) -> None:
    data = quantized(w, qtype)
    raw = qtype if data.dtype == np.uint8 else None
    writer.add_tensor(name, data, raw_dtype=raw)


def add_byte_level_tokenizer(writer: gguf.GGUFWriter, folder: Path, pre: str = "gpt-2") -> None:
    tj = json.loads((folder / "tokenizer.json").read_text())
    vocab: dict[str, int] = tj["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    specials = {t["content"] for t in tj["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])
    writer.add_token_merges([" ".join(m) for m in tj["model"]["merges"]])
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(engine.tokenizer.CHATML_TEMPLATE)


def write_gguf(
    path: Path,
    arch: str,
    folder: Path,
    qtype: Q = Q.F32,
    *,
    arch_name: str | None = None,
    extra: dict[str, np.ndarray] | None = None,
    pre: str = "gpt-2",
) -> Path:
    """A GGUF file of the HF model in ``folder``, its 2-D tensors stored as ``qtype``."""
    cfg = json.loads((folder / "config.json").read_text())
    w = gguf.GGUFWriter(str(path), arch_name or arch)
    w.add_name(f"tiny {arch}")
    if arch == "gpt2":
        w.add_context_length(cfg["n_positions"])
        w.add_embedding_length(cfg["n_embd"])
        w.add_block_count(cfg["n_layer"])
        w.add_feed_forward_length(cfg.get("n_inner") or 4 * cfg["n_embd"])
        w.add_head_count(cfg["n_head"])
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
    else:
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(cfg["hidden_size"])
        w.add_block_count(cfg["num_hidden_layers"])
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_head_count(cfg["num_attention_heads"])
        w.add_head_count_kv(cfg["num_key_value_heads"])
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        rope = cfg.get("rope_parameters") or {}
        rope = rope.get("full_attention", rope)  # Gemma 3: per layer type
        w.add_rope_freq_base(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        if cfg.get("sliding_window"):
            w.add_sliding_window(cfg["sliding_window"])
        partial = rope.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0))
        w.add_rope_dimension_count(int(head_dim * partial))
        if rope.get("rope_type") == "longrope":
            w.add_uint32(f"{arch}.rope.scaling.original_context_length",
                         cfg["original_max_position_embeddings"])  # fmt: skip
            long = np.array(rope["long_factor"], dtype=np.float32)
            extra = {"rope_factors_long.weight": long,
                     "rope_factors_short.weight": np.array(rope["short_factor"], np.float32),
                     **(extra or {})}  # fmt: skip
    add_byte_level_tokenizer(w, folder, pre)
    for name, t in (to_gguf_tensors(arch, folder) | (extra or {})).items():
        add_tensor(w, name, t, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def reference_model(arch: str, folder: Path, qtype: Q) -> Any:
    """The transformers model with every 2-D weight replaced by its quantize/dequantize round
    trip in llama.cpp's layout: what an exact GGUF import must compute."""
    import transformers

    ref = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    if qtype == Q.F32:
        return ref
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if p.ndim != 2:
                continue
            w = p.detach().numpy()
            conv = arch == "gpt2" and "wte" not in name and "wpe" not in name
            w = w.T if conv else w  # GGUF rows are output features (quantized along inputs)
            back = gguf.quants.dequantize(quantized(np.ascontiguousarray(w), qtype), qtype)
            p.copy_(torch.from_numpy(np.ascontiguousarray(back.T if conv else back)))
    return ref


# ---------------------------------------------------------------- dequantization


def _f16(b: np.ndarray) -> np.ndarray:
    return b.view(np.float16).astype(np.float32)


def _scale_min_k4(j: int, q: np.ndarray) -> tuple[int, int]:
    if j < 4:
        return int(q[j] & 63), int(q[j + 4] & 63)
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4)
    return int(d), int(m)


def reference_block(qtype: Q, b: np.ndarray) -> np.ndarray:
    """One block decoded element by element, following ggml-quants.c's dequantize_row_*."""
    y = np.zeros(256 if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K) else 32, dtype=np.float32)
    if qtype == Q.Q8_0:
        return _f16(b[:2])[0] * b[2:].view(np.int8).astype(np.float32)
    if qtype in (Q.Q4_0, Q.Q4_1):
        d = _f16(b[:2])[0]
        m = _f16(b[2:4])[0] if qtype == Q.Q4_1 else 0.0
        qs = b[4:] if qtype == Q.Q4_1 else b[2:]
        off = 0 if qtype == Q.Q4_1 else 8
        for j in range(16):
            y[j] = (int(qs[j] & 0xF) - off) * d + m
            y[j + 16] = (int(qs[j] >> 4) - off) * d + m
        return y
    if qtype in (Q.Q5_0, Q.Q5_1):
        d = _f16(b[:2])[0]
        m = _f16(b[2:4])[0] if qtype == Q.Q5_1 else 0.0
        rest = b[4:] if qtype == Q.Q5_1 else b[2:]
        qh = int(rest[:4].view(np.uint32)[0])
        qs = rest[4:]
        off = 0 if qtype == Q.Q5_1 else 16
        for j in range(16):
            h0 = ((qh >> j) << 4) & 0x10
            h1 = (qh >> (j + 12)) & 0x10
            y[j] = ((int(qs[j] & 0xF) | h0) - off) * d + m
            y[j + 16] = ((int(qs[j] >> 4) | h1) - off) * d + m
        return y
    if qtype in (Q.Q4_K, Q.Q5_K):
        d, dmin = _f16(b[:2])[0], _f16(b[2:4])[0]
        scales = b[4:16]
        qh = b[16:48] if qtype == Q.Q5_K else None
        ql = b[48:] if qtype == Q.Q5_K else b[16:]
        for i, j in enumerate(range(0, 256, 64)):
            sc1, m1 = _scale_min_k4(2 * i, scales)
            sc2, m2 = _scale_min_k4(2 * i + 1, scales)
            q = ql[32 * i : 32 * i + 32]
            for k in range(32):
                hi1 = 16 if qh is not None and qh[k] & (1 << (2 * i)) else 0
                hi2 = 16 if qh is not None and qh[k] & (2 << (2 * i)) else 0
                y[j + k] = d * sc1 * ((q[k] & 0xF) + hi1) - dmin * m1
                y[j + 32 + k] = d * sc2 * ((q[k] >> 4) + hi2) - dmin * m2
        return y
    assert qtype == Q.Q6_K
    ql, qh, sc, d = b[:128], b[128:192], b[192:208].view(np.int8), _f16(b[208:210])[0]
    for n in range(2):
        L, H, S = ql[64 * n :], qh[32 * n :], sc[8 * n :]
        for k in range(32):
            s = k // 16
            q1 = int((L[k] & 0xF) | ((H[k] >> 0) & 3) << 4) - 32
            q2 = int((L[k + 32] & 0xF) | ((H[k] >> 2) & 3) << 4) - 32
            q3 = int((L[k] >> 4) | ((H[k] >> 4) & 3) << 4) - 32
            q4 = int((L[k + 32] >> 4) | ((H[k] >> 6) & 3) << 4) - 32
            for off, si, q in ((0, 0, q1), (32, 2, q2), (64, 4, q3), (96, 6, q4)):
                y[128 * n + k + off] = d * S[s + si] * q
    return y


BLOCK_TYPES = [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]


def random_blocks(qtype: Q, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random blocks whose fp16 scales are finite (random bits elsewhere)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    scale = rng.uniform(-0.05, 0.05, size=(n, 2)).astype(np.float16).view(np.uint8)
    if qtype == Q.Q6_K:
        raw[:, 208:210] = scale[:, :2]
    else:
        nscales = 4 if qtype in (Q.Q4_1, Q.Q5_1, Q.Q4_K, Q.Q5_K) else 2
        raw[:, :nscales] = scale[:, :nscales]
    return raw


def raw_tensor(path: Path, raw: np.ndarray, qtype: Q) -> Any:
    """A file holding one tensor ``t`` of ``qtype`` blocks (bytes ``[rows, bytes per row]``),
    read back with gguf's reader."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("t", raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (tensor,) = gguf.GGUFReader(path).tensors
    return tensor


@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda q: q.name)
def test_dequantization_matches_ggml_reference(qtype: Q, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    rows, per_row = 4, 2
    blocks = random_blocks(qtype, rows * per_row, rng)
    expected = np.stack([reference_block(qtype, b) for b in blocks]).reshape(rows, per_row * block)
    got = dequantize_tensor(raw_tensor(tmp_path / "q.gguf", blocks.reshape(rows, -1), qtype))
    assert got.shape == (rows, per_row * block) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("qtype", "bound"),
    [(Q.F16, 1e-3), (Q.BF16, 8e-3), (Q.Q8_0, 8e-3), (Q.Q5_0, 0.07), (Q.Q4_0, 0.15), (Q.Q4_1, 0.15)],
    ids=lambda x: getattr(x, "name", ""),
)
def test_quantization_round_trip_error_is_bounded(qtype: Q, bound: float, tmp_path: Path) -> None:
    """Relative error of quantize -> our dequantize, at the precision each type has."""
    x = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    w = gguf.GGUFWriter(str(tmp_path / "q.gguf"), "llama")
    add_tensor(w, "t", x, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (tensor,) = gguf.GGUFReader(tmp_path / "q.gguf").tensors
    got = dequantize_tensor(tensor)
    err = np.abs(got - x).max() / np.abs(x).max()
    assert 0 < err < bound if qtype != Q.F16 else err < bound


# ---------------------------------------------------------------- whole models


@pytest.mark.parametrize(
    ("arch", "qtype"),
    [
        ("llama", Q.F32),
        ("qwen2", Q.F32),
        ("gpt2", Q.F32),
        ("llama", Q.F16),
        ("llama", Q.Q8_0),
        ("llama", Q.Q4_0),
        ("llama", Q.Q5_1),
        ("qwen2", Q.Q4_1),
        ("gpt2", Q.Q8_0),
    ],
    ids=lambda x: getattr(x, "name", x),
)
def test_logits_match_transformers(
    arch: str, qtype: Q, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """Exact import: our logits equal transformers' on the same (de)quantized weights."""
    path = write_gguf(tmp_path / f"{arch}.gguf", arch, tiny_models[arch], qtype)
    model = engine.load(path, dtype="float32")
    ref = reference_model(arch, tiny_models[arch], qtype)
    ids = model.tokenizer.encode(TEXTS[0] + TEXTS[2])
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4


def test_without_unpermuting_logits_would_differ(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The test above can fail: skipping the un-permutation changes the logits."""
    path = write_gguf(tmp_path / "l.gguf", "llama", tiny_models["llama"])
    model = engine.load(path, dtype="float32")
    ids = model.tokenizer.encode(TEXTS[0])
    good = model.logits(ids)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gguf_format, "unpermute_rope", lambda w, n: w)
        mp.setenv("CHATAPP_HOME", str(tmp_path / "other-home"))
        bad = engine.load(path, dtype="float32").logits(ids)
    assert (good - bad).abs().max().item() > 1e-2


def test_matches_transformers_gguf_loader(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """A second, independent reading of the same file: transformers' own GGUF loader."""
    import transformers

    pytest.importorskip("accelerate")
    path = write_gguf(tmp_path / "t.gguf", "llama", tiny_models["llama"], Q.Q4_0)
    model = engine.load(path, dtype="float32")
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file=path.name, dtype=torch.float32
    ).eval()
    ids = model.tokenizer.encode(TEXTS[1])
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4


def test_llama3_rope_scaling_from_rope_freqs(tmp_path: Path) -> None:
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    ref = make_hf_model("llama", tmp_path / "m", rope_scaling=dict(scaling), rope_theta=500000.0)
    # llama.cpp writes the per-frequency divisors, not the parameters.
    freqs = llama3_divisors(scaling, 500000.0, 16).astype(np.float32)
    extra = {"rope_freqs.weight": freqs}
    path = write_gguf(tmp_path / "l3.gguf", "llama", tmp_path / "m", extra=extra)
    model = engine.load(path, dtype="float32")
    assert model.config.rope_scaling == scaling
    ids = model.tokenizer.encode(TEXTS[0] * 2)
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4


def test_converted_folder_has_hf_files(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "q.gguf", "qwen2", tiny_models["qwen2"], Q.Q8_0)
    out = tmp_path / "out"
    out.mkdir()
    convert_gguf(path, out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"]
    assert cfg["max_position_embeddings"] == 128 and cfg["num_key_value_heads"] == 2
    assert cfg["bos_token_id"] == 0 and cfg["eos_token_id"] == 2
    tc = json.loads((out / "tokenizer_config.json").read_text())
    assert tc["chat_template"] == engine.tokenizer.CHATML_TEMPLATE
    assert tc["eos_token"] == "<|im_end|>" and tc["bos_token"] == "<|endoftext|>"
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [2]
    summary = gguf_metadata_summary(path)
    assert summary["architecture"] == "qwen2" and summary["context_length"] == 128


def test_chat_runs_on_an_imported_model(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "c.gguf", "gpt2", tiny_models["gpt2"], Q.Q8_0)
    model = engine.load(path, dtype="float32")
    params = engine.SamplingParams(temperature=0, max_new_tokens=8)
    reply = "".join(model.chat([{"role": "user", "content": "hi"}], params))
    assert model.last_stats is not None and model.last_stats.new_tokens > 0
    assert isinstance(reply, str)


# ---------------------------------------------------------------- tokenizers


def _reference_tokenizer(path: Path) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.mark.parametrize("pre", ["gpt-2", "llama-bpe", "qwen2", "smollm"])
def test_byte_level_tokenizer_matches_transformers(
    pre: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    path = write_gguf(tmp_path / "t.gguf", "llama", tiny_models["llama"], pre=pre)
    ours = engine.load(path, dtype="float32").tokenizer
    ref = _reference_tokenizer(path)
    original = Tokenizer.from_file(str(tiny_models["llama"] / "tokenizer.json"))
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == ref(text).input_ids, text
        assert ours.decode(ids, skip_special_tokens=False) == ref.decode(ids)
        if pre == "gpt-2":  # the same split regex as the tokenizer the file came from
            assert ids == original.encode(text).ids


def test_unknown_pre_tokenizer_falls_back_to_gpt2(
    tiny_models: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_gguf(tmp_path / "t.gguf", "llama", tiny_models["llama"], pre="martian")
    model = engine.load(path, dtype="float32")
    original = Tokenizer.from_file(str(tiny_models["llama"] / "tokenizer.json"))
    assert model.tokenizer.encode(TEXTS[1]) == original.encode(TEXTS[1]).ids
    assert "martian" in caplog.text
    # ...and where the user sees it: the model's warnings (the chat shows them, ask and
    # import print them), for the quantized conversion too
    (warning,) = model.warnings
    assert "unknown pre-tokenizer 'martian'" in warning and "\n" not in warning
    assert engine.load(path).warnings == [warning]


def _sentencepiece_gguf(path: Path, *, merges: bool) -> Path:
    """A tiny SentencePiece-style (``tokenizer.ggml.model == llama``) vocabulary."""
    spm = Tokenizer(models.BPE())
    spm.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=200, show_progress=False)
    spm.train_from_iterator([t for t in CORPUS if t.isascii()], trainer)
    learned = json.loads(spm.to_str())["model"]
    pieces = sorted(learned["vocab"], key=learned["vocab"].__getitem__)
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *pieces]
    types = [2, 3, 3, *([6] * 256), *([1] * len(pieces))]
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores(scores)
    if merges:
        w.add_token_merges([" ".join(m) for m in learned["merges"]])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("merges", [True, False], ids=["merges", "scores"])
def test_sentencepiece_tokenizer_matches_transformers(merges: bool, tmp_path: Path) -> None:
    from engine.formats.gguf_tokenizer import build_tokenizer

    path = _sentencepiece_gguf(tmp_path / "spm.gguf", merges=merges)
    ours = build_tokenizer(gguf.GGUFReader(path), path.name).tokenizer
    ref = _reference_tokenizer(path)
    for text in [*TEXTS, "The quick fox", " two  spaces"]:
        ids = ours.encode(text).ids
        assert ids == ref(text).input_ids, text
        assert ids[0] == 1  # add_bos defaults to on for SentencePiece vocabularies
        assert ours.decode(ids, skip_special_tokens=True) == ref.decode(
            ids, skip_special_tokens=True
        )


def test_saved_merges_take_the_faster_form_only_where_it_is_unambiguous() -> None:
    """``"a b"`` merges where no token holds a space (the same tokenizer, parsed faster);
    pairs where one does."""
    from tokenizers import Tokenizer, models

    from engine.formats.gguf_tokenizer import tokenizer_json

    vocab = {"a": 0, "b": 1, "ab": 2, " ": 3, "a ": 4, "aba": 5}
    plain = Tokenizer(models.BPE(vocab, [("a", "b"), ("ab", "a")]))
    text = tokenizer_json(plain)
    assert json.loads(text)["model"]["merges"] == ["a b", "ab a"]
    assert Tokenizer.from_str(text).encode("abaab").ids == plain.encode("abaab").ids == [5, 2]
    spaced = Tokenizer(models.BPE(vocab, [("a", "b"), ("a", " ")]))
    text = tokenizer_json(spaced)
    assert json.loads(text)["model"]["merges"] == [["a", "b"], ["a", " "]]
    assert Tokenizer.from_str(text).encode("a ab").ids == spaced.encode("a ab").ids == [4, 2]


def test_a_conversion_writes_the_faster_merges_unless_a_token_holds_a_space(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from engine.formats.gguf_tokenizer import build_tokenizer

    path = write_gguf(tmp_path / "b.gguf", "llama", tiny_models["llama"])
    tok = build_tokenizer(gguf.GGUFReader(path), path.name)
    assert not any(" " in t for t in tok.tokens)
    tok.save(tmp_path)
    merges = json.loads((tmp_path / "tokenizer.json").read_text())["model"]["merges"]
    assert merges and all(isinstance(m, str) for m in merges)
    saved = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in TEXTS:
        assert saved.encode(text).ids == tok.tokenizer.encode(text).ids
    tok.tokens.append("a b")  # as in a vocabulary with a token that holds a space (Gemma 3's)
    tok.save(tmp_path)
    merges = json.loads((tmp_path / "tokenizer.json").read_text())["model"]["merges"]
    assert merges and all(isinstance(m, list) for m in merges)


# ---------------------------------------------------------------- cache


def test_the_kernels_build_while_the_file_converts(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first load on a machine builds the kernels (seconds of cc) beside the conversion,
    not after it."""
    during: list[bool] = []
    finished = threading.Event()
    real_kernel = native.kernel

    def kernel() -> Any:
        if threading.current_thread().name == "native-build":
            during.append(not finished.is_set())
        return real_kernel()

    def convert(*args: Any, **kwargs: Any) -> Any:
        try:
            return convert_to_cache(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(native, "kernel", kernel)
    monkeypatch.setattr(gguf_format, "convert_to_cache", convert)
    engine.load(write_gguf(tmp_path / "k.gguf", "llama", tiny_models["llama"], Q.Q8_0))
    assert during == [True]


def test_second_load_reuses_the_conversion(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_gguf(tmp_path / "m.gguf", "llama", tiny_models["llama"])
    folder = gguf_checkpoint(path)
    assert folder.parent == paths.cache_dir() / "gguf" and (folder / "model.safetensors").is_file()

    def fail(*_: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(gguf_format, "convert_gguf", fail)
    assert gguf_checkpoint(path) == folder
    engine.load(path)


def test_a_first_load_takes_the_tokenizer_it_wrote(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conversion's tokenizer object goes to the model as it is (Gemma 3's tokenizer.json
    takes 1.5 s to parse); a later load parses the file, and both encode alike."""
    from engine import tokenizer as tokenizer_module

    parsed: list[str] = []

    class Counting:
        @staticmethod
        def from_file(file: str) -> Tokenizer:
            parsed.append(file)
            return Tokenizer.from_file(file)

    monkeypatch.setattr(tokenizer_module, "HFTokenizer", Counting)
    path = write_gguf(tmp_path / "m.gguf", "llama", tiny_models["llama"])
    first = engine.load(path)
    assert parsed == []
    second = engine.load(path)
    assert len(parsed) == 1
    text = "Hello, wörld! 123\n\tdone"
    assert first.tokenizer.encode(text) == second.tokenizer.encode(text)
    assert first.tokenizer.decode(first.tokenizer.encode(text)) == text


def test_a_cached_gguf_loads_without_the_converter_and_leaves_gc_on(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """A cache hit needs only the folder's name: the converter (the gguf package, numpy) stays
    unimported, which is most of what a warm load spent importing; and the load's pause of
    the cyclic GC ends with it."""
    path = write_gguf(tmp_path / "m.gguf", "llama", tiny_models["llama"])
    gguf_checkpoint(path)
    code = (
        "import gc, sys, engine\n"
        f"engine.load({str(path)!r})\n"
        "print('gguf' in sys.modules, 'engine.formats.gguf' in sys.modules, gc.isenabled())"
    )
    out = subprocess.run(  # CHATAPP_HOME (the test's own) is in the environment
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "True"]


def test_a_gguf_model_is_named_after_the_file(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "Tiny-Llama.Q8_0.gguf", "llama", tiny_models["llama"])
    assert engine.load(path).name == "Tiny-Llama.Q8_0"


def test_changed_file_is_converted_again(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", "llama", tiny_models["llama"])
    first = gguf_checkpoint(path)
    write_gguf(path, "llama", tiny_models["llama"], Q.Q8_0)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = gguf_checkpoint(path)
    assert second != first and second.is_dir()
    assert not first.exists(), "the stale conversion of the same file is removed"


def test_failed_conversion_leaves_nothing(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_gguf(tmp_path / "m.gguf", "llama", tiny_models["llama"])

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_format, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gguf_checkpoint(path)
    assert list((paths.cache_dir() / "gguf").iterdir()) == []


# ---------------------------------------------------------------- errors


def _one_line_error(path: Path) -> str:
    with pytest.raises(engine.ModelLoadError) as e:
        engine.load(path)
    msg = str(e.value)
    assert "\n" not in msg and path.name in msg
    return msg


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    assert "not a GGUF file" in _one_line_error(path)


def test_truncated_file(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "cut.gguf", "llama", tiny_models["llama"])
    data = path.read_bytes()
    for size in (len(data) // 2, 200):  # inside the tensor data, inside the metadata
        path.write_bytes(data[:size])
        assert "truncated" in _one_line_error(path)


def test_a_vocabulary_cut_short_or_not_utf8_is_one_line(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The string arrays' fast reader keeps the checks: a file cut inside the vocabulary is
    truncated, a token that is not UTF-8 makes the file corrupt."""
    path = write_gguf(tmp_path / "v.gguf", "llama", tiny_models["llama"])
    data = path.read_bytes()
    key = b"tokenizer.ggml.tokens"
    first = data.index(key) + len(key) + 4 + 4 + 8  # value type, element type, count
    assert int.from_bytes(data[first : first + 8], "little") > 0  # the first token's length
    for cut in (first + 3, first + 9, first + 400):
        path.write_bytes(data[:cut])
        assert "truncated" in _one_line_error(path)
    path.write_bytes(data[: first + 8] + b"\xff" + data[first + 9 :])
    assert "corrupt" in _one_line_error(path)


def test_unsupported_tensor_type(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "q2k.gguf"
    extra = {"blk.0.attn_q.weight": np.zeros((64, 84), dtype=np.uint8)}  # one Q2_K block per row
    w = gguf.GGUFWriter(str(path), "llama")
    add_byte_level_tokenizer(w, tiny_models["llama"])
    w.add_tensor("blk.0.attn_q.weight", extra["blk.0.attn_q.weight"], raw_dtype=Q.Q2_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    msg = _one_line_error(path)
    assert "'blk.0.attn_q.weight'" in msg and "Q2_K" in msg and "Q4_K" in msg


def test_unsupported_architecture(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", "llama", tiny_models["llama"], arch_name="mamba")
    msg = _one_line_error(path)
    assert "'mamba'" in msg and "llama, qwen2, qwen3, gemma3, phi3, gpt2" in msg


def test_merges_from_scores_match_transformers(tmp_path: Path) -> None:
    from transformers.tokenization_utils_base import generate_merges

    from engine.formats.gguf_tokenizer import field_value, merges_from_scores

    reader = gguf.GGUFReader(_sentencepiece_gguf(tmp_path / "spm.gguf", merges=False))
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    scores = dict(zip(tokens, field_value(reader, "tokenizer.ggml.scores"), strict=True))
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = merges_from_scores(vocab, scores)
    assert len(merges) > 100
    assert merges == generate_merges(vocab, scores)


def test_metadata_summary_from_the_header(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "s.gguf", "gpt2", tiny_models["gpt2"], Q.Q8_0)
    reader = gguf.GGUFReader(path)
    summary = gguf_metadata_summary(path)
    assert summary == {
        "architecture": "gpt2",
        "name": "tiny gpt2",
        "file_type": None,  # this writer sets no general.file_type
        "context_length": 128,
        "tensor_types": ["F32", "Q8_0"],
        "parameters": sum(int(t.n_elements) for t in reader.tensors),
    }
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(engine.ModelLoadError, match="truncated"):
        gguf_metadata_summary(path)


def test_large_models_are_written_in_shards(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_gguf(tmp_path / "s.gguf", "llama", tiny_models["llama"], Q.Q8_0)
    whole = engine.load(path, dtype="float32")
    monkeypatch.setattr(gguf_format, "SHARD_BYTES", 40_000)
    out = tmp_path / "sharded"
    convert_gguf(path, out)
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    assert len(shards) > 2 and not (out / "model.safetensors").exists()
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == shards
    ids = whole.tokenizer.encode(TEXTS[0])
    sharded = engine.load(out, dtype="float32")
    assert torch.equal(sharded.logits(ids), whole.logits(ids))


def test_control_tokens_outside_the_byte_alphabet_are_specials(
    tiny_models: dict[str, Path],
) -> None:
    """DeepSeek-R1-Distill's ``<｜User｜>`` (full-width bars) is one special token, found whole
    in the text and decoded back as written."""
    from engine.formats.gguf_file import Field
    from engine.formats.gguf_tokenizer import build_tokenizer

    tj = json.loads((tiny_models["llama"] / "tokenizer.json").read_text())
    vocab: dict[str, int] = tj["model"]["vocab"]
    tokens = [*sorted(vocab, key=vocab.__getitem__), "<｜User｜>"]
    specials = {t["content"] for t in tj["added_tokens"]} | {"<｜User｜>"}

    class Reader:
        fields = {
            "tokenizer.ggml.model": Field("gpt2"),
            "tokenizer.ggml.pre": Field("gpt-2"),
            "tokenizer.ggml.tokens": Field(tokens),
            "tokenizer.ggml.token_type": Field([3 if t in specials else 1 for t in tokens]),
            "tokenizer.ggml.merges": Field([" ".join(m) for m in tj["model"]["merges"]]),
        }

    tok = build_tokenizer(Reader(), "t.gguf").tokenizer
    user = len(tokens) - 1
    ids = tok.encode("hi<｜User｜>there").ids
    assert user in ids and ids.count(user) == 1
    assert tok.decode(ids, skip_special_tokens=False) == "hi<｜User｜>there"


@pytest.mark.parametrize("arch", ["qwen3", "gemma3", "phi3"])
def test_new_architectures_from_gguf_match_transformers(
    arch: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """llama.cpp's names and layouts for Qwen 3, Gemma 3 (norms stored as 1 + w) and Phi-3
    (fused projections), read back to the same logits as transformers on the HF folder."""
    import transformers
    from helpers import make_hf_model

    folder = tiny_models[arch]
    if arch == "gemma3":  # llama.cpp scales queries by 1/sqrt(head_dim): no other scalar
        folder = tmp_path / "hf"
        make_hf_model("gemma3", folder, query_pre_attn_scalar=16)
    path = write_gguf(tmp_path / "m.gguf", arch, folder)
    model = engine.load(path, dtype="float32")
    ref = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = model.tokenizer.encode("Hello world! The KV cache keeps keys.")
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4


def test_phi3_longrope_from_gguf(tmp_path: Path) -> None:
    import transformers
    from helpers import make_hf_model

    torch.manual_seed(1)
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
            "short_factor": (1 + torch.rand(4)).tolist(),
            "long_factor": (2 + 3 * torch.rand(4)).tolist()}  # fmt: skip
    make_hf_model("phi3", tmp_path / "hf", rope_parameters=rope,
                  original_max_position_embeddings=16)  # fmt: skip
    model = engine.load(write_gguf(tmp_path / "m.gguf", "phi3", tmp_path / "hf"), dtype="float32")
    assert model.config.rope_scaling and model.config.rope_scaling["rope_type"] == "longrope"
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    ids = model.tokenizer.encode("Hello world! 你好，世界 😀 The KV cache keeps keys.")
    assert len(ids) > 16  # past the original context: the long factors
    with torch.no_grad():
        expected = ref.eval()(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - expected).abs().max().item() < 1e-4
