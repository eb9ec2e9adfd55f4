"""GGML's quantized blocks decoded in torch, whole tensors at a time (no ``gguf`` package).

What the GGUF converter uses to turn Q4_0/Q4_1/Q4_K into our int4 form and Q8_0/Q6_K into
floats, and what ``QuantizedWeight`` uses to dequantize or convert the blocks it keeps as they
are (``engine.native`` multiplies those directly where it can). Layouts follow ggml's
``dequantize_row_*`` loops; tests check every type against ggml's values.
"""

from __future__ import annotations

import torch

BLOCK = 256  # weights per K-quant superblock
Q4_K_BYTES = 144
Q6_K_BYTES = 210
Q8_0_BYTES = 34
Q4_0_BYTES, Q4_1_BYTES, Q5_0_BYTES, Q5_1_BYTES = 18, 20, 22, 24


def f16(b: torch.Tensor) -> torch.Tensor:
    """Little-endian float16 from the last dimension's pairs of bytes, as float32."""
    return b.contiguous().view(torch.float16).float()


def nibbles(qs: torch.Tensor) -> torch.Tensor:
    """ggml's 16 bytes of a 32-block: element j in the low nibble of byte j, j + 16 in the high
    nibble -> the 32 values in order."""
    return torch.cat((qs & 0x0F, qs >> 4), dim=-1)


def q4_0_1(
    data: torch.Tensor, rows: int, cols: int, *, with_min: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_0 / Q4_1 -> (values 0..15 ``[rows, cols]``, scale, zero ``[rows, cols / 32]``) with
    ``w = (q - 8) * scale + zero``."""
    head = 4 if with_min else 2
    blocks = data.view(rows, cols // 32, head + 16)
    d = f16(blocks[..., 0:2])[..., 0]
    q = nibbles(blocks[..., head:]).reshape(rows, cols)
    if with_min:  # Q4_1: w = d * q + m
        return q, d, f16(blocks[..., 2:4])[..., 0] + 8 * d
    return q, d, torch.zeros_like(d)  # Q4_0: w = d * (q - 8)


def q5_0_1(data: torch.Tensor, rows: int, cols: int, *, with_min: bool) -> torch.Tensor:
    """Q5_0 / Q5_1 -> float32 ``[rows, cols]``: f16 d (and f16 m), a 32-bit word whose bit j is
    value j's fifth bit, 16 bytes of nibbles as in ``nibbles``; ``w = d * (q - 16)`` or
    ``d * q + m``."""
    head = 4 if with_min else 2
    blocks = data.view(rows, cols // 32, head + 20)
    d = f16(blocks[..., 0:2])
    bits = blocks[..., head : head + 4].contiguous().view(torch.int32)  # little-endian
    shifts = torch.arange(32, dtype=torch.int32)
    high = ((bits >> shifts) & 1).to(torch.uint8) << 4
    q = (nibbles(blocks[..., head + 4 :]) | high).float()
    if with_min:
        return q.mul_(d).add_(f16(blocks[..., 2:4])).reshape(rows, cols)
    return q.sub_(16).mul_(d).reshape(rows, cols)


def q4_k(
    data: torch.Tensor, rows: int, cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_K -> (values 0..15, scale, zero) as ``q4_0_1`` gives them."""
    # A 256-superblock: f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) for its eight 32-wide
    # sub-blocks, then 128 bytes where chunk c holds sub-block 2c in low nibbles and 2c + 1 in
    # high ones. w = d * sc * q - dmin * m.
    nb = rows * cols // BLOCK
    blocks = data.reshape(nb, Q4_K_BYTES)
    d, dmin = f16(blocks[:, 0:2]), f16(blocks[:, 2:4])
    s = blocks[:, 4:16].reshape(nb, 3, 4)  # see ggml's get_scale_min_k4
    a, b, c = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat((a & 0x3F, (c & 0x0F) | ((a >> 2) & 0x30)), dim=-1).float()
    m = torch.cat((b & 0x3F, (c >> 4) | ((b >> 2) & 0x30)), dim=-1).float()
    qs = blocks[:, 16:].reshape(nb, 4, 32)
    q = torch.stack((qs & 0x0F, qs >> 4), dim=2).reshape(rows, cols)
    scale = d * sc
    zero = 8 * scale - dmin * m
    return q, scale.reshape(rows, cols // 32), zero.reshape(rows, cols // 32)


def q8_0(data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Q8_0 -> float32 ``[rows, cols]``."""
    blocks = data.view(rows, cols // 32, 34)
    d = f16(blocks[..., 0:2])
    return (blocks[..., 2:].contiguous().view(torch.int8).float() * d).reshape(rows, cols)


def q6_k(data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Q6_K -> float32 ``[rows, cols]``."""
    # A 256-superblock: 128 bytes of low nibbles, 64 of 2-bit high parts, 16 int8 scales (one
    # per 16 values), f16 d. Value e = 128 n + 32 g + l of half n, group g takes the low (g 0, 1)
    # or high (g 2, 3) nibble of ql[64 n + 32 (g % 2) + l] and bits 2g of qh[32 n + l];
    # w = d * scale[8 n + 2 g + l // 16] * (q - 32). (ggml's dequantize_row_q6_K.)
    nb = rows * cols // BLOCK
    blocks = data.reshape(nb, Q6_K_BYTES)
    ql = blocks[:, :128].reshape(nb, 2, 2, 32)  # [block, n, g % 2, l]
    qh = blocks[:, 128:192].reshape(nb, 2, 1, 32)  # [block, n, -, l]
    q = torch.stack((ql & 0x0F, ql >> 4), dim=2).reshape(nb, 2, 4, 32)  # g = 2 * hi + g % 2
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)
    q |= ((qh >> shifts) & 3) << 4  # the 6-bit values 0..63
    sc = blocks[:, 192:208].contiguous().view(torch.int8).float().view(nb, 2, 4, 2, 1)
    d = f16(blocks[:, 208:210]).view(nb, 1, 1, 1, 1)
    # One float32 tensor, scaled in place: a 100M-value output head makes every full-size
    # temporary cost (its pages are faulted in one by one).
    w = q.view(nb, 2, 4, 2, 16).float().sub_(32).mul_(sc * d)
    return w.reshape(rows, cols)


# The types kept as blocks (``QuantizedWeight`` kinds): weights a block, bytes a block.
KINDS = {
    "q4_k": (BLOCK, Q4_K_BYTES),
    "q6_k": (BLOCK, Q6_K_BYTES),
    "q8_0": (32, Q8_0_BYTES),
    "q4_0": (32, Q4_0_BYTES),
    "q4_1": (32, Q4_1_BYTES),
    "q5_0": (32, Q5_0_BYTES),
    "q5_1": (32, Q5_1_BYTES),
}
INT4_KINDS = ("q4_k", "q4_0", "q4_1")  # 4-bit values: int4 groups of 32 exactly (int4_groups)


def columns(kind: str, row_bytes: int) -> int:
    """The weights in a row of ``row_bytes`` bytes of ``kind`` blocks."""
    values, nbytes = KINDS[kind]
    return row_bytes // nbytes * values


def int4_groups(
    kind: str, data: torch.Tensor, rows: int, cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 4-bit kind (``INT4_KINDS``) as (values 0..15, scale, zero) with
    ``w = (q - 8) * scale + zero`` per group of 32."""
    if kind == "q4_k":
        return q4_k(data, rows, cols)
    return q4_0_1(data, rows, cols, with_min=kind == "q4_1")


def to_float(kind: str, data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``kind`` blocks ``[rows, bytes a row]`` -> float32 ``[rows, cols]``."""
    if kind == "q6_k":
        return q6_k(data, rows, cols)
    if kind == "q8_0":
        return q8_0(data, rows, cols)
    if kind in ("q5_0", "q5_1"):
        return q5_0_1(data, rows, cols, with_min=kind == "q5_1")
    q, scale, zero = int4_groups(kind, data, rows, cols)
    g = q.view(rows, cols // 32, 32).float().sub_(8).mul_(scale[..., None])
    return g.add_(zero[..., None]).view(rows, cols)
