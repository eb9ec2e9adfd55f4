"""GGML K-quant blocks kept as they are: the native kernels against gguf's own dequantization,
the layers built on them, and the conversion where the kernels cannot run."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from test_gguf import random_blocks, raw_tensor, write_gguf

import engine
from engine import native
from engine.formats.gguf_dequant import dequantize_tensor
from engine.formats.gguf_quant import quantized_weight
from engine.quantize import (
    ConcatLinear,
    GGMLLinear,
    Int4Linear,
    Int8Linear,
    QuantizedEmbedding,
    QuantizedWeight,
    group_quantized,
    linear_module,
    quantized_tensors,
    swap_in,
)

needs_kernels = pytest.mark.skipif(
    not native.ggml_kernels(), reason="no C compiler or AVX512-VNNI here: blocks are converted"
)
KINDS = {
    Q.Q4_K: "q4_k", Q.Q6_K: "q6_k", Q.Q8_0: "q8_0",
    Q.Q4_0: "q4_0", Q.Q4_1: "q4_1", Q.Q5_0: "q5_0", Q.Q5_1: "q5_1",
}  # fmt: skip


def blocks(tmp_path: Path, qtype: Q, rows: int, cols: int, seed: int = 0):
    """A GGUF tensor of random ``qtype`` blocks, as ours and as gguf's float32 values."""
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    raw = random_blocks(qtype, rows * cols // block, np.random.default_rng(seed))
    t = raw_tensor(tmp_path / f"t{seed}.gguf", raw.reshape(rows, -1), qtype)
    return quantized_weight(t), torch.from_numpy(dequantize_tensor(t))


def within_bf16(got: torch.Tensor, ref: torch.Tensor, scale: torch.Tensor | float) -> bool:
    """Every value within bfloat16 rounding (2^-8 relative, plus a float32 sum's slack)."""
    return bool(((got.float() - ref).abs() <= ref.abs() / 256 + 1e-5 * scale).all())


@needs_kernels
@pytest.mark.parametrize("qtype", list(KINDS), ids=lambda q: q.name)
@pytest.mark.parametrize(("rows", "cols", "n"), [(16, 256, 1), (40, 1024, 1), (33, 512, 7),
                                                 (64, 768, 64)])  # fmt: skip
def test_matmul_on_the_blocks_equals_the_dequantized_product(
    qtype: Q, rows: int, cols: int, n: int, tmp_path: Path
) -> None:
    qw, ref = blocks(tmp_path, qtype, rows, cols)
    assert qw.kind == KINDS[qtype] and qw.shape == (rows, cols)
    x = torch.randn(n, cols, generator=torch.Generator().manual_seed(n)).bfloat16()
    y = native.ggml_matmul(qw.kind, qw.qweight.contiguous(), cols, x)
    # x goes in as ggml's Q8_K (Q8_0 for Q8_0 weights): int8 per 256 (32) values, scale
    # max |x| / 127 (int8 dot products)
    size = 256 if qtype in (Q.Q4_K, Q.Q6_K) else 32
    blocks_of_x = x.float().view(n, cols // size, size)  # float32 steps, as the kernel's
    dx = blocks_of_x.abs().amax(-1, keepdim=True) / 127
    xq = (torch.round(blocks_of_x * (1 / dx)).double() * dx.double()).view(n, cols)
    expected = xq @ ref.double().T
    bound = (xq.abs() @ ref.double().abs().T) * 1e-5  # float32 sums, then one rounding
    assert y.shape == (n, rows) and y.dtype == torch.bfloat16
    assert ((y.double() - expected).abs() <= expected.abs() / 256 + bound).all()
    # and against the unquantized x: int8's step, not a wrong block
    full = x.double() @ ref.double().T
    assert ((y.double() - full).abs().amax() / full.abs().amax()) < 0.03


@needs_kernels
@pytest.mark.parametrize("qtype", list(KINDS), ids=lambda q: q.name)
def test_dequantize_gives_ggmls_values_rounded_to_bfloat16(qtype: Q, tmp_path: Path) -> None:
    qw, ref = blocks(tmp_path, qtype, 48, 512, seed=1)
    got = native.ggml_dequantize(qw.kind, qw.qweight.contiguous(), 512)
    assert got.dtype == torch.bfloat16 and got.shape == (48, 512)
    assert within_bf16(got, ref, ref.abs().max())
    assert (got.float() == ref.bfloat16().float()).float().mean() > 0.99  # one rounding


@needs_kernels
@pytest.mark.parametrize("qtype", list(KINDS), ids=lambda q: q.name)
def test_the_layer_decodes_from_the_blocks_and_prefills_through_bfloat16(
    qtype: Q, tmp_path: Path
) -> None:
    qw, ref = blocks(tmp_path, qtype, 96, 512, seed=2)
    torch.manual_seed(0)
    bias = torch.randn(96)
    layer = linear_module(qw, bias, torch.bfloat16)
    assert isinstance(layer, GGMLLinear)
    for shape in [(1, 1, 512), (1, 5, 512), (2, 100, 512)]:  # decode, a few rows, a prefill
        x = torch.randn(shape).bfloat16()
        y = layer(x)
        expected = x.float() @ ref.T + bias.bfloat16().float()
        assert y.shape == (*shape[:-1], 96)
        err = (y.float() - expected).abs().max() / expected.abs().max()
        assert err < 0.03  # decode: x in int8 (see the matmul test); prefill: bfloat16


@needs_kernels
def test_a_fused_projection_of_blocks_writes_its_parts_side_by_side(tmp_path: Path) -> None:
    """q/k in Q4_K and v in Q6_K (llama.cpp's Q4_K_M): one output, each part its columns."""
    (q4, _), (q6, _) = (
        blocks(tmp_path, Q.Q4_K, 48, 512, seed=6),
        blocks(tmp_path, Q.Q6_K, 16, 512, seed=7),
    )
    fused = linear_module([q4, q6], None, torch.bfloat16)
    assert isinstance(fused, ConcatLinear) and fused.blocks
    parts = [linear_module(w, None, torch.bfloat16) for w in (q4, q6)]
    for n in (1, 3, 40):  # decode, a few rows, a prefill chunk
        x = torch.randn(1, n, 512, generator=torch.Generator().manual_seed(n)).bfloat16()
        assert torch.equal(fused(x), torch.cat([p(x) for p in parts], dim=-1))
    x = torch.randn(2, 512).bfloat16()
    wide = torch.zeros(2, 100, dtype=torch.bfloat16)
    native.ggml_matmul("q4_k", q4.qweight.contiguous(), 512, x, out=wide[:, 10:58])
    assert torch.equal(wide[:, 10:58], parts[0](x)) and not wide[:, :10].any()


@needs_kernels
def test_embedding_rows_come_from_the_blocks(tmp_path: Path) -> None:
    qw, ref = blocks(tmp_path, Q.Q6_K, 64, 256, seed=3)
    emb = QuantizedEmbedding(qw)
    ids = torch.tensor([[3, 0, 63, 3]])
    rows = emb(ids)
    assert rows.shape == (1, 4, 256) and rows.dtype == torch.bfloat16
    assert within_bf16(rows[0], ref[ids[0]], ref.abs().max())


@needs_kernels
def test_the_build_without_avx512_bf16_has_the_kernels_too(tmp_path: Path) -> None:
    """VNNI without BF16 (Cascade Lake, Ice Lake): the products are the same int8 ones, and
    dequantization rounds to bfloat16 by hand, to the same values."""
    import ctypes

    kern = native._Kernel(
        ctypes.CDLL(str(native.build(tmp_path, extra_flags=("-mno-avx512bf16",))))
    )
    assert kern.ggml_isa == 1
    for qtype in KINDS:
        qw, _ = blocks(tmp_path, qtype, 32, 512, seed=8)
        w = qw.qweight.contiguous()
        out = torch.empty(32, 512, dtype=torch.bfloat16)
        assert (
            kern.ggml_dequant(
                native.GGML_TYPES[qw.kind], w.data_ptr(), 32, 512, out.data_ptr(), 512, 2
            )
            == 0
        )
        assert torch.equal(out, native.ggml_dequantize(qw.kind, w, 512))
        x = torch.randn(3, 512, generator=torch.Generator().manual_seed(3)).bfloat16()
        y = torch.empty(3, 32, dtype=torch.bfloat16)
        args = (w.data_ptr(), 32, 512, x.data_ptr(), 512, 3, y.data_ptr(), 32, 2)
        assert kern.ggml_matmul(native.GGML_TYPES[qw.kind], *args) == 0
        assert torch.equal(y, native.ggml_matmul(qw.kind, w, 512, x))


def test_the_file_form_round_trips(tmp_path: Path) -> None:
    qw, _ = blocks(tmp_path, Q.Q4_K, 32, 512)
    files = quantized_tensors({"layers.0.mlp.down_proj.weight": qw})
    assert list(files) == ["layers.0.mlp.down_proj.ggml_q4_k"]
    back = group_quantized(files)["layers.0.mlp.down_proj.weight"]
    assert isinstance(back, QuantizedWeight) and back.kind == "q4_k"
    assert torch.equal(back.qweight, qw.qweight) and back.shape == (32, 512)
    with pytest.raises(ValueError, match="q6_k blocks"):
        group_quantized({"x.ggml_q6_k": torch.zeros(4, 100, dtype=torch.uint8)})


def test_rows_of_blocks_split_permute_and_join(tmp_path: Path) -> None:
    """What the converter does to q/k/v and gate/up rows works block-row by block-row."""
    qw, _ = blocks(tmp_path, Q.Q4_K, 32, 512)
    ref = qw.dequantize()
    order = torch.randperm(32)
    assert torch.equal(qw.permute_rows(order).dequantize(), ref[order])
    joined = QuantizedWeight.cat([qw.rows(0, 10), qw.rows(10, 32)])
    assert torch.equal(joined.dequantize(), ref)


class EmbedHeadProj(torch.nn.Module):
    """A tied-embedding net's three kinds of weight, on the meta device (swap_in fills it)."""

    def __init__(self) -> None:
        super().__init__()
        with torch.device("meta"):
            self.embed = torch.nn.Embedding(64, 256)
            self.head = torch.nn.Linear(256, 64, bias=False)
            self.proj = torch.nn.Linear(256, 64, bias=False)


def test_without_the_kernels_blocks_become_int4_and_int8_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernels cannot run, Q4_K loads as int4 and Q6_K as int8 (a tied embedding
    and head converted once and shared), computing the same values."""
    monkeypatch.setattr(native, "ggml_kernels", lambda: False)
    q4, ref4 = blocks(tmp_path, Q.Q4_K, 64, 256, seed=4)
    q6, ref6 = blocks(tmp_path, Q.Q6_K, 64, 256, seed=5)

    net = EmbedHeadProj()
    state = {"embed.weight": q6, "head.weight": q6, "proj.weight": q4}
    swap_in(net, state, torch.bfloat16)  # type: ignore[arg-type]
    assert isinstance(net.proj, Int4Linear) and isinstance(net.head, Int8Linear)
    assert isinstance(net.embed, QuantizedEmbedding) and net.embed.kind == "int8"
    assert net.embed.qweight.data_ptr() == net.head.weight.data_ptr()
    x = torch.randn(1, 256).bfloat16()
    assert (net.proj(x).float() - x.float() @ ref4.T).abs().max() < 0.02 * ref4.abs().sum(1).max()
    assert (net.head(x).float() - x.float() @ ref6.T).abs().max() < 0.02 * ref6.abs().sum(1).max()


def test_without_the_kernels_q8_0_loads_as_bfloat16_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Q8_0 re-quantized to int8 with one scale a row would lose most of a row's precision to
    one outlier (SmolLM2's embedding: ~1.5% error a row, enough to turn "Paris" into garbage);
    as bfloat16 its values are kept to one rounding. A tied embedding and head share it."""
    monkeypatch.setattr(native, "ggml_kernels", lambda: False)
    q8, ref = blocks(tmp_path, Q.Q8_0, 64, 256, seed=8)

    net = EmbedHeadProj()
    rest = swap_in(net, {"embed.weight": q8, "head.weight": q8}, torch.bfloat16)  # type: ignore[arg-type]
    assert set(rest) == {"embed.weight", "head.weight"}
    assert rest["embed.weight"] is rest["head.weight"]
    assert rest["embed.weight"].dtype == torch.bfloat16
    assert within_bf16(rest["embed.weight"], ref, ref.abs().max())


def _mapped_ranges(name: str) -> list[tuple[int, int]]:
    """Address ranges of this process's maps of files called ``name`` (Linux)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].endswith("/" + name):
            lo, hi = (int(a, 16) for a in fields[0].split("-"))
            ranges.append((lo, hi))
    return ranges


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc")
def test_a_gguf_conversion_is_mapped_where_the_kernels_read_its_blocks(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The converted cache's tensors are views of a map of its file (no copy) exactly where
    they are used as stored; where the blocks are converted, they are read into memory."""
    path = write_gguf(tmp_path / "l.gguf", "llama", tiny_models["llama"], Q.Q8_0)

    def in_map(model: engine.Model) -> bool:
        """Whether the blocks, the fused projections' parts too (not copies), are views."""
        ranges = _mapped_ranges("model.safetensors")
        layer = model.net.layers[0]
        weights = [layer.mlp.down_proj.weight]
        if isinstance(layer.self_attn.qkv_proj, ConcatLinear):
            weights += [p.weight for p in layer.self_attn.qkv_proj.parts]
        ptrs = [w.data_ptr() for w in weights]
        return all(any(lo <= p < hi for lo, hi in ranges) for p in ptrs)

    first = engine.load(path)  # converts, then loads the cache
    assert in_map(first) == native.ggml_kernels()
    again = engine.load(path)
    assert in_map(again) == native.ggml_kernels()
    ids = again.tokenizer.encode("one two three")
    assert torch.equal(first.net(torch.tensor([ids])), again.net(torch.tensor([ids])))
    monkeypatch.setattr(native, "ggml_kernels", lambda: False)
    assert not _mapped_ranges("model.safetensors") or not in_map(engine.load(path))
