"""The next-token sampler (all vectorised over the vocabulary); ``SamplingParams`` lives in
``engine.sampling_params`` (no torch) and is re-exported here."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import torch

from engine.errors import GenerationError
from engine.sampling_params import SamplingParams

__all__ = ["SamplingParams", "apply_repetition_penalty", "filter_logits", "make_generator",
           "sample_next"]  # fmt: skip


def make_generator(params: SamplingParams, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded by ``params.seed``, or by fresh OS entropy when there is none."""
    gen = torch.Generator(device=device)
    gen.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
    return gen


def apply_repetition_penalty(
    logits: torch.Tensor, recent: Sequence[int] | torch.Tensor, penalty: float
) -> torch.Tensor:
    """CTRL-style penalty on tokens seen recently: divide positive logits, multiply negative."""
    if penalty == 1.0 or len(recent) == 0:
        return logits
    ids = torch.as_tensor(recent, dtype=torch.long, device=logits.device).unique()
    picked = logits[ids]
    logits = logits.clone()
    logits[ids] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def filter_logits(
    logits: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0
) -> torch.Tensor:
    """Mask (to -inf) the tokens that top-k, top-p (nucleus) and min-p exclude. 1-D logits."""
    logits = logits.clone()
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if min_p > 0.0:
        probs = torch.softmax(logits, dim=-1)
        logits[probs < min_p * probs.max()] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the mass before it already reaches top_p (always keeps the first).
        drop = (cum - torch.softmax(sorted_logits, dim=-1)) >= top_p
        logits[order[drop]] = float("-inf")
    return logits


def sample_next(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator,
    recent: Sequence[int] = (),
) -> int:
    """Pick the next token id from 1-D float logits."""
    if not torch.isfinite(logits.max()):  # the max is NaN if any score is, +inf if one is
        raise GenerationError(
            "the model produced NaN or infinite scores (corrupt weights, or float16 "
            "overflow); try loading it with dtype='float32'"
        )
    logits = apply_repetition_penalty(logits.float(), recent, params.repetition_penalty)
    if params.greedy:
        return int(torch.argmax(logits))
    if 0 < params.top_k < logits.shape[-1]:
        # Work on the k candidates only: no pass over the whole vocabulary after top-k.
        values, index = torch.topk(logits, params.top_k)
        kept = filter_logits(values / params.temperature, top_p=params.top_p, min_p=params.min_p)
        choice = torch.multinomial(torch.softmax(kept, dim=-1), 1, generator=generator)
        return int(index[choice])
    logits = filter_logits(logits / params.temperature, top_p=params.top_p, min_p=params.min_p)
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
