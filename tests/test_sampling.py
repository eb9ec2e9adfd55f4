"""Sampling: masks, seeds, greedy, repetition penalty, parameter validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import engine
from engine.sampling import SamplingParams, apply_repetition_penalty, filter_logits, sample_next

LOGITS = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))


def kept(logits: torch.Tensor) -> list[int]:
    return torch.isfinite(logits).nonzero().flatten().tolist()


def test_top_k_keeps_the_k_most_likely() -> None:
    assert kept(filter_logits(LOGITS, top_k=2)) == [0, 1]


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    assert kept(filter_logits(LOGITS, top_p=0.5)) == [0]
    assert kept(filter_logits(LOGITS, top_p=0.6)) == [0, 1]
    assert kept(filter_logits(LOGITS, top_p=0.86)) == [0, 1, 2, 3]


def test_min_p_drops_tokens_below_a_fraction_of_the_best() -> None:
    assert kept(filter_logits(LOGITS, min_p=0.3)) == [0, 1, 2]


def test_filters_off_keep_everything() -> None:
    assert kept(filter_logits(LOGITS)) == [0, 1, 2, 3, 4]


def test_repetition_penalty_lowers_recent_tokens() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5])
    out = apply_repetition_penalty(logits, [0, 1, 1], 2.0)
    assert out.tolist() == [1.0, -2.0, 0.5]


def test_same_seed_same_tokens_and_no_seed_varies() -> None:
    p = SamplingParams(temperature=1.5, top_k=0, seed=7)
    logits = torch.randn(1000)
    a = [sample_next(logits, p, engine.sampling.make_generator(p)) for _ in range(1)]
    b = [sample_next(logits, p, engine.sampling.make_generator(p)) for _ in range(1)]
    assert a == b
    free = SamplingParams(temperature=1.5, top_k=0)
    draws = {sample_next(logits, free, engine.sampling.make_generator(free)) for _ in range(20)}
    assert len(draws) > 1


def test_seeded_generation_is_reproducible(tiny_models: dict[str, Path]) -> None:
    model = engine.load(tiny_models["llama"])
    ids = model.tokenizer.encode("Hello world")
    p = SamplingParams(temperature=1.0, top_k=0, seed=123, max_new_tokens=20)
    a = list(model.generate(ids, p, ignore_eos=True))
    b = list(model.generate(ids, p, ignore_eos=True))
    assert a == b
    unseeded = SamplingParams(temperature=1.0, top_k=0, max_new_tokens=20)
    runs = {tuple(model.generate(ids, unseeded, ignore_eos=True)) for _ in range(3)}
    assert len(runs) > 1


def test_temperature_zero_is_greedy_is_top_k_one(tiny_models: dict[str, Path]) -> None:
    model = engine.load(tiny_models["qwen2"])
    ids = model.tokenizer.encode("The KV cache")
    greedy = list(
        model.generate(ids, SamplingParams(temperature=0, max_new_tokens=12), ignore_eos=True)
    )
    top1 = list(
        model.generate(
            ids,
            SamplingParams(temperature=1.3, top_k=1, seed=5, max_new_tokens=12),
            ignore_eos=True,
        )
    )
    assert greedy == top1
    assert greedy[0] == int(model.logits(ids)[-1].argmax())


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("temperature", -0.1, "in [0, 100]"),
        ("top_k", -1, "integer >= 0"),
        ("top_k", 1.5, "integer >= 0"),
        ("top_p", 0.0, "in (0, 1]"),
        ("top_p", 1.5, "in (0, 1]"),
        ("min_p", 1.0, "in [0, 1)"),
        ("repetition_penalty", 0.0, "in (0, 10]"),
        ("max_new_tokens", 0, "integer in [1, 1,000,000]"),
        ("seed", -3, "integer in [0, 2**63)"),
        ("stop", ("",), "non-empty strings"),
    ],
)
def test_invalid_values_name_field_and_range(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be .*{re.escape(allowed)}"):
        SamplingParams(**{field: value})  # type: ignore[arg-type]


def test_a_lone_stop_string_is_not_split_into_characters() -> None:
    assert SamplingParams(stop="END").stop == ("END",)  # type: ignore[arg-type]
