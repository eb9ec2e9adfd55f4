"""RMSNorm computed through LayerNorm's fused kernel is F.rms_norm: to the last float32 bit
or so, and (rounded once to bfloat16 in both) to the bit in bfloat16."""

import pytest
import torch
import torch.nn.functional as F

from engine.model import RMSNorm


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [1, 5, 300])
def test_rms_norm_matches_the_reference_bit_for_bit(dtype: torch.dtype, rows: int) -> None:
    torch.manual_seed(rows)
    norm = RMSNorm(576, 1e-6).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(576))
    x = (torch.randn(1, rows, 576) * torch.rand(1, rows, 1) * 40).to(dtype)
    with torch.inference_mode():
        out = norm(x)
    assert out.shape == x.shape and out.dtype == dtype
    want = F.rms_norm(x, (576,), norm.weight.detach(), 1e-6)
    if dtype == torch.bfloat16:
        assert (out == want).float().mean().item() > 0.9999
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)


def test_rms_norm_follows_a_changed_weight_and_trains() -> None:
    norm = RMSNorm(64, 1e-5)
    x = torch.randn(2, 3, 64)
    with torch.inference_mode():
        before = norm(x)
    with torch.no_grad():
        norm.weight.mul_(2)
    with torch.inference_mode():
        after = norm(x)
    torch.testing.assert_close(after, 2 * before)
    norm.weight = torch.nn.Parameter(torch.full((64,), 3.0))  # a new weight (a load assigns)
    with torch.inference_mode():
        torch.testing.assert_close(norm(x), F.rms_norm(x, (64,), norm.weight.detach(), 1e-5))
    x.requires_grad_(True)
    norm(x).sum().backward()
    ref_w = norm.weight.detach().clone().requires_grad_(True)
    ref_x = x.detach().clone().requires_grad_(True)
    F.rms_norm(ref_x, (64,), ref_w, 1e-5).sum().backward()
    assert norm.weight.grad is not None and x.grad is not None
    torch.testing.assert_close(norm.weight.grad, ref_w.grad)
    torch.testing.assert_close(x.grad, ref_x.grad)
