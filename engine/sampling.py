"""Sampling parameters and the next-token sampler (all vectorised over the vocabulary)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from engine.errors import GenerationError


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. ``temperature`` 0 is greedy; ``top_k`` 0, ``top_p`` 1.0
    and ``min_p`` 0.0 are off; ``seed`` None draws a fresh seed each call."""

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    repetition_window: int = 64
    max_new_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise ValueError(f"{name} must be {allowed}, got {value!r}")

        def is_int(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v

        check(
            is_num(self.temperature) and 0 <= self.temperature <= 100, "temperature", "in [0, 100]"
        )
        check(is_int(self.top_k) and self.top_k >= 0, "top_k", "an integer >= 0 (0 = off)")
        check(is_num(self.top_p) and 0 < self.top_p <= 1, "top_p", "in (0, 1] (1 = off)")
        check(is_num(self.min_p) and 0 <= self.min_p < 1, "min_p", "in [0, 1) (0 = off)")
        check(
            is_num(self.repetition_penalty) and 0 < self.repetition_penalty <= 10,
            "repetition_penalty",
            "in (0, 10] (1 = off)",
        )
        check(
            is_int(self.repetition_window) and self.repetition_window >= 0,
            "repetition_window",
            "an integer >= 0",
        )
        check(
            is_int(self.max_new_tokens) and self.max_new_tokens >= 1,
            "max_new_tokens",
            "an integer >= 1",
        )
        check(
            self.seed is None or (is_int(self.seed) and 0 <= self.seed < 2**63),
            "seed",
            "None or an integer in [0, 2**63)",
        )
        if isinstance(self.stop, str):  # a lone string is one stop string, not its characters
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        check(
            all(isinstance(s, str) and s for s in self.stop),
            "stop",
            "a sequence of non-empty strings",
        )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


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
    if torch.isnan(logits).any() or torch.isposinf(logits).any():
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
