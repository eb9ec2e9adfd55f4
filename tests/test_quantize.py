"""Quantized weights: int4/int8 forms, their kernels against the dequantized math, GGUF 4-bit
tensors kept exactly, quantized checkpoints (import --quant), and the decode loop's edges."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from test_gguf import random_blocks, raw_tensor, write_gguf

import engine
from chatapp.cli import main
from engine import native
from engine.formats.gguf_dequant import dequantize_tensor
from engine.formats.gguf_quant import quantized_weight
from engine.quantize import (
    ConcatLinear,
    Int4Linear,
    Int8Linear,
    QuantizedEmbedding,
    QuantizedWeight,
    dequant_workspace,
    pack_int4,
    quantize_int4,
    quantize_int8,
    unpack_int4,
)

BF16 = torch.bfloat16


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def test_int4_packing_is_two_values_per_byte_even_columns_low() -> None:
    q = torch.randint(0, 16, (4, 64), dtype=torch.uint8)
    packed = pack_int4(q)
    assert packed.shape == (4, 32) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), q)
    assert int(packed[0, 0]) == int(q[0, 0]) | int(q[0, 1]) << 4


def test_round_to_nearest_error_is_within_half_a_step() -> None:
    """Half a step, plus a little for the scales and zeros kept in bfloat16."""
    w = torch.randn(32, 128, generator=torch.Generator().manual_seed(0))
    q4 = quantize_int4(w)
    step = q4.scales.float().repeat_interleave(32, dim=1)
    assert ((q4.dequantize() - w).abs() <= step * 0.55).all()
    q8 = quantize_int8(w)
    # int8: a bfloat16 scale is off by up to 2^-9 of itself, times values up to 127
    assert ((q8.dequantize() - w).abs() <= q8.scales.float()[:, None] * 0.8).all()


@pytest.mark.parametrize("rows", [1, 100], ids=["decode", "prefill"])
@pytest.mark.parametrize("out_features", [192, 80])  # 80: not a multiple of 64, kernel only
def test_int4_linear_computes_with_its_dequantized_weight(rows: int, out_features: int) -> None:
    torch.manual_seed(0)
    qw = quantize_int4(torch.randn(out_features, 96))
    bias = torch.randn(out_features)
    layer = Int4Linear(qw, bias)
    x = torch.randn(2, rows, 96).to(BF16)
    expected = x.float() @ qw.dequantize().t() + bias.to(BF16).float()
    y = layer(x)
    assert y.shape == (2, rows, out_features) and y.dtype == BF16
    assert rel_err(y, expected) < 1e-2


def test_prefill_unpacks_the_kernels_layout_into_the_file_forms_values() -> None:
    torch.manual_seed(0)
    qw = quantize_int4(torch.randn(192, 160))
    layer = Int4Linear(qw)
    if not layer.unpackable:
        pytest.skip("this CPU's int4 kernel uses another layout (kernel only)")
    expected = qw.dequantize().t()
    outside = layer.dequantize_t().clone()
    # ``offset = zero - 8 * scale`` and the result are each rounded to bfloat16 once.
    group = (qw.zeros.float().abs() + 8 * qw.scales.float().abs()).repeat_interleave(32, 1)
    bound = (group.t() + expected.abs()) * 2**-8
    assert ((outside.float() - expected).abs() <= bound).all()
    with dequant_workspace():
        with dequant_workspace():  # nested blocks share the outer one's buffer
            inner = layer.dequantize_t().clone()
        assert torch.equal(layer.dequantize_t(), outside) and torch.equal(inner, outside)
    assert torch.equal(layer.dequantize_t(), outside)


@pytest.mark.parametrize("rows", [1, 100], ids=["decode", "prefill"])
def test_int8_linear_computes_with_its_dequantized_weight(rows: int) -> None:
    torch.manual_seed(0)
    qw = quantize_int8(torch.randn(48, 64))
    x = torch.randn(rows, 64).to(BF16)
    assert rel_err(Int8Linear(qw)(x), x.float() @ qw.dequantize().t()) < 1e-2


def test_mixed_parts_of_a_fused_projection_are_side_by_side() -> None:
    torch.manual_seed(0)
    w = torch.randn(96, 64)
    parts = [quantize_int4(w[:64]), quantize_int8(w[64:])]
    layer = ConcatLinear([Int4Linear(parts[0]), Int8Linear(parts[1])])
    x = torch.randn(3, 64).to(BF16)
    expected = x.float() @ torch.cat([p.dequantize() for p in parts]).t()
    assert rel_err(layer(x), expected) < 1e-2


@pytest.mark.parametrize("kind", ["int4", "int8"])
def test_quantized_embedding_rows_are_the_dequantized_rows(kind: str) -> None:
    table = torch.randn(40, 64)
    qw = quantize_int4(table) if kind == "int4" else quantize_int8(table)
    ids = torch.tensor([[3, 0, 39]])
    got = QuantizedEmbedding(qw)(ids)
    assert got.shape == (1, 3, 64)
    assert rel_err(got, qw.dequantize()[ids]) < 1e-2


def gguf_tensor(tmp_path: Path, qtype: Q, rows: int, cols: int) -> object:
    """A GGUF tensor of random blocks (finite scales, random values) of ``qtype``."""
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    blocks = random_blocks(qtype, rows * cols // block, np.random.default_rng(0))
    return raw_tensor(tmp_path / "t.gguf", blocks.reshape(rows, -1), qtype)


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q4_K], ids=lambda q: q.name)
def test_gguf_4bit_tensors_keep_their_values_as_int4(qtype: Q, tmp_path: Path) -> None:
    """Q4_0/Q4_1/Q4_K are int4 groups of 32 already: the 4-bit values are copied, so the only
    difference from ggml's dequantization is bfloat16 rounding of the scales and offsets.
    (They are kept as their blocks, and become int4 where the native kernels cannot run.)"""
    t = gguf_tensor(tmp_path, qtype, 32, 512)
    ref = torch.from_numpy(dequantize_tensor(t))
    qw = quantized_weight(t)
    assert qw.kind == qtype.name.lower() and qw.shape == (32, 512)
    assert torch.allclose(qw.dequantize(), ref, rtol=1e-6, atol=1e-6)
    qw = qw.portable()
    assert qw.kind == "int4" and qw.shape == (32, 512)
    got = qw.dequantize()
    # Per group: |error| <= 2^-8 of (|zero| + 8 |scale|) (bfloat16 rounding of both); a value
    # one step off would be off by a whole |scale|.
    scale = qw.scales.float().repeat_interleave(32, dim=1)
    zero = qw.zeros.float().repeat_interleave(32, dim=1)  # type: ignore[union-attr]
    assert ((got - ref).abs() <= (zero.abs() + 8 * scale.abs()) / 256 + 1e-6).all()


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q5_0, Q.Q5_1, Q.Q6_K], ids=lambda q: q.name)
def test_other_gguf_types_become_int8_rows(qtype: Q, tmp_path: Path) -> None:
    t = gguf_tensor(tmp_path, qtype, 16, 256)
    qw = quantized_weight(t)
    ref = torch.from_numpy(dequantize_tensor(t))
    # kept as blocks; int8 where the native kernels cannot run
    assert qw.kind == qtype.name.lower() and qw.shape == (16, 256)
    assert torch.allclose(qw.dequantize(), ref, rtol=1e-6, atol=1e-6)
    assert qw.portable().kind == "int8"
    assert rel_err(qw.portable().dequantize(), ref) < 1e-2


@pytest.mark.parametrize(
    ("qtype", "kind"), [(Q.Q4_0, "int4"), (Q.Q4_1, "int4"), (Q.Q5_0, "int8"), (Q.Q8_0, "int8")]
)
def test_rows_that_are_not_whole_pairs_of_blocks_take_the_portable_forms(
    qtype: Q, kind: str, tmp_path: Path
) -> None:
    """The 32-weight blocks kernels read blocks in pairs: a row of 96 weights (three blocks)
    is converted when the file is read."""
    t = gguf_tensor(tmp_path, qtype, 64, 96)
    qw = quantized_weight(t)
    assert qw.kind == kind and qw.shape == (64, 96)
    ref = torch.from_numpy(dequantize_tensor(t))
    assert rel_err(qw.dequantize(), ref) < 1e-2


def logits_agree(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).float().mean())


def test_a_quantized_gguf_loads_quantized_and_stays_close_to_the_float_path(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    path = write_gguf(tmp_path / "q.gguf", "llama", tiny_models["llama"], Q.Q4_0)
    fast = engine.load(path)
    ref = engine.load(path, dtype="float32")
    # Q4_0 blocks where the native kernels run, int4 elsewhere
    assert ("q4_0" if native.ggml_kernels() else "int4") in fast.weight_format
    assert ref.weight_format == "float32"
    assert not any(isinstance(m, torch.nn.Linear) for m in fast.net.layers.modules())
    ids = list(range(3, 60))
    assert logits_agree(fast.logits(ids), ref.logits(ids)) > 0.9
    assert rel_err(fast.logits(ids), ref.logits(ids)) < 0.1
    # The cached conversion keeps the file's size, not float32's.
    cache = Path(fast.path)
    size = sum(f.stat().st_size for f in cache.glob("*.safetensors"))
    assert size < 1.5 * sum(f.stat().st_size for f in Path(ref.path).glob("*.safetensors")) / 4


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_import_quant_int4_writes_a_smaller_checkpoint_that_loads_quantized(
    arch: str, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tiny_models[arch]), "--name", "q4", "--quant", "int4"]) == 0
    assert "int4" in capsys.readouterr().out
    folder = engine.models_dir() / "q4"
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "chatapp"
    quantized = engine.load("q4")
    assert quantized.weight_format == "int4+int8"  # blocks int4, embeddings and head int8
    same = engine.load(tiny_models[arch], quant="int4")  # quantizing at load: the same model
    ids = list(range(3, 40))
    assert torch.equal(quantized.logits(ids), same.logits(ids))
    # The kernels compute what the quantized weights say (float32 dequantized: the reference)...
    dequantized = engine.load("q4", dtype="float32")
    assert dequantized.weight_format == "float32"
    assert rel_err(quantized.logits(ids), dequantized.logits(ids)) < 0.1  # bf16 activations
    # ... and those are the original model's, to 4 bits.
    original = engine.load(tiny_models[arch], dtype="float32").logits(ids)
    cosine = torch.nn.functional.cosine_similarity(quantized.logits(ids), original, dim=-1)
    assert cosine.mean() > 0.8  # random tiny weights are hard on 4 bits; int8 below is closer
    int8 = engine.load(tiny_models[arch], quant="int8")
    assert int8.weight_format == "int8"
    cosine8 = torch.nn.functional.cosine_similarity(int8.logits(ids), original, dim=-1)
    assert cosine8.min() > 0.98
    assert main(["models"]) == 0
    assert "int4+int8" in capsys.readouterr().out


def test_prefill_checks_cancel_between_chunks(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = engine.load(tiny_models["llama"])
    monkeypatch.setattr(engine.generate, "PREFILL_CHUNK", 8)
    cancel = threading.Event()
    calls = []
    forward = model.net.forward

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        cancel.set()  # Esc pressed while the first chunk runs
        return forward(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model.net, "forward", spy)
    out = list(model.generate(list(range(3, 60)), engine.SamplingParams(), cancel=cancel))
    assert out == [] and model.last_stats.stop_reason == "cancelled"
    assert len(calls) == 1  # not the other six chunks


def test_no_forward_pass_after_the_last_token(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = engine.load(tiny_models["llama"])
    calls = []
    forward = model.net.forward
    monkeypatch.setattr(model.net, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    params = engine.SamplingParams(temperature=0, max_new_tokens=5)
    assert len(list(model.generate([3, 4, 5], params, ignore_eos=True))) == 5
    assert len(calls) == 1 + 4  # the prefill, then one per token that is sampled after it


def test_top_k_sampling_draws_only_among_the_k_best() -> None:
    logits = torch.tensor([5.0, 4.0, 3.0, -1.0, -2.0] + [-9.0] * 100)
    params = engine.SamplingParams(temperature=5.0, top_k=3, seed=1)
    gen = engine.sampling.make_generator(params)
    draws = {engine.sampling.sample_next(logits, params, gen) for _ in range(200)}
    assert draws == {0, 1, 2}


def test_quantized_weight_file_form_round_trips() -> None:
    qw = quantize_int4(torch.randn(16, 64))
    from engine.quantize import group_quantized

    back = group_quantized(qw.tensors("layer"))["layer.weight"]
    assert isinstance(back, QuantizedWeight) and back.kind == "int4"
    assert torch.equal(back.dequantize(), qw.dequantize())


@pytest.mark.skipif(not __import__("engine.quantize").quantize.block_layout(),
                    reason="this CPU's int4 kernel uses another layout")  # fmt: skip
@pytest.mark.parametrize("shape", [(64, 32), (128, 576), (192, 64)])
def test_byte_packing_equals_the_kernels_own(shape: tuple[int, int]) -> None:
    from engine.quantize import pack_blocks

    q = torch.randint(0, 16, shape, dtype=torch.uint8)
    ref = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32), 2)
    assert torch.equal(pack_blocks(pack_int4(q)), ref)


@pytest.mark.parametrize(
    "qtype", [Q.Q8_0, Q.Q6_K, Q.Q4_K, Q.Q4_1, Q.Q4_0, Q.Q5_0, Q.Q5_1], ids=lambda q: q.name
)
def test_torch_block_decoding_equals_ggml(qtype: Q, tmp_path: Path) -> None:
    """Our whole-tensor torch decoding of each type gives ggml's values exactly."""
    from engine import ggml_blocks as gb
    from engine.formats import gguf_quant as gq

    t = gguf_tensor(tmp_path, qtype, 32, 512)
    ref = torch.from_numpy(dequantize_tensor(t))
    data = gq._bytes(t, 32)
    if qtype == Q.Q8_0:
        got = gb.q8_0(data, 32, 512)
    elif qtype == Q.Q6_K:
        got = gb.q6_k(data, 32, 512)
    elif qtype in (Q.Q5_0, Q.Q5_1):
        got = gb.to_float(qtype.name.lower(), data, 32, 512)
    else:
        if qtype == Q.Q4_K:
            q, scale, zero = gb.q4_k(data, 32, 512)
        else:
            q, scale, zero = gb.q4_0_1(data, 32, 512, with_min=qtype == Q.Q4_1)
        s = scale.repeat_interleave(32, dim=1)
        got = (q.float() - 8) * s + zero.repeat_interleave(32, dim=1)
    assert torch.allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_saving_a_quantized_model_is_refused_not_written_broken(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = engine.load(tiny_models["llama"], quant="int8")
    with pytest.raises(ValueError, match="quantized"):
        engine.save(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_second_generation_in_the_same_thread_raises_instead_of_hanging(
    tiny_models: dict[str, Path],
) -> None:
    model = engine.load(tiny_models["llama"])
    params = engine.SamplingParams(temperature=0, max_new_tokens=5)
    outer = model.generate([3, 4, 5], params, ignore_eos=True)
    next(outer)  # suspended mid-reply, holding the model
    with pytest.raises(engine.GenerationError, match="already running"):
        next(model.generate([6, 7], params))
    outer.close()
    assert len(list(model.generate([6, 7], params, ignore_eos=True))) == 5  # free again


def test_non_finite_scores_are_one_clear_error(tiny_models: dict[str, Path]) -> None:
    model = engine.load(tiny_models["llama"])
    with torch.no_grad():
        model.net.norm.weight.fill_(float("nan"))
    params = engine.SamplingParams(temperature=0, max_new_tokens=3)
    with pytest.raises(engine.GenerationError, match="NaN or infinite"):
        list(model.generate([3, 4, 5], params))
