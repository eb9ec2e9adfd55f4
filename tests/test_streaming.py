"""Text streaming: whole UTF-8 characters only, no special-token text, stop strings, cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

import engine
from engine.streaming import IncrementalDetokenizer, StopMatcher

HARD_TEXT = "你好，世界！语言模型 😀🎉🚀 café naïve — emoji 👩‍💻 done."


@pytest.fixture(scope="module")
def model(tiny_models: dict[str, Path]) -> engine.Model:
    return engine.load(tiny_models["llama"])


def test_detokenizer_never_emits_partial_characters(model: engine.Model) -> None:
    ids = model.tokenizer.encode(HARD_TEXT)
    # The byte-level vocabulary splits CJK and emoji across tokens; the test means nothing otherwise.
    assert any("\ufffd" in model.tokenizer.decode([i]) for i in ids)
    detok = IncrementalDetokenizer(model.tokenizer)
    deltas = [detok.push(i) for i in ids] + [detok.flush()]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == HARD_TEXT


def test_detokenizer_skips_special_tokens(model: engine.Model) -> None:
    tok = model.tokenizer
    im_end = tok.hf.token_to_id("<|im_end|>")
    ids = tok.encode("Hi") + [im_end] + tok.encode(" there")
    detok = IncrementalDetokenizer(tok)
    assert "".join(detok.push(i) for i in ids) + detok.flush() == "Hi there"


def test_incomplete_trailing_character_is_dropped_at_the_end(model: engine.Model) -> None:
    ids = model.tokenizer.encode("ok 😀")
    detok = IncrementalDetokenizer(model.tokenizer)
    text = "".join(detok.push(i) for i in ids[:-1]) + detok.flush()
    assert "\ufffd" not in text and text.startswith("ok")


def test_stop_string_split_across_pushes_is_never_emitted() -> None:
    m = StopMatcher(["<END>"])
    out = [m.push(p) for p in ["Hello <", "E", "N", "D> trailing"]]
    assert "".join(out) + m.flush() == "Hello "
    assert m.stopped


def test_held_back_text_is_released_when_it_is_not_a_stop() -> None:
    m = StopMatcher(["<END>"])
    assert m.push("a <E") == "a "
    assert m.push("X") == "<EX"
    assert m.push("tail <") == "tail "
    assert m.flush() == "<"


def test_chat_stops_at_a_stop_string_spanning_tokens(model: engine.Model) -> None:
    msgs = [{"role": "user", "content": "Hello"}]
    greedy = engine.SamplingParams(temperature=0, max_new_tokens=40)
    full = "".join(model.chat(msgs, greedy))
    assert len(full) > 12, full
    stop = full[5:9]  # characters from the middle of the reply, likely across tokens
    got = "".join(
        model.chat(msgs, engine.SamplingParams(temperature=0, max_new_tokens=40, stop=(stop,)))
    )
    assert got == full[: full.index(stop)]
    assert model.last_stats.stop_reason == "stop"


def test_chat_of_a_random_model_never_yields_replacement_chars(model: engine.Model) -> None:
    msgs = [{"role": "user", "content": HARD_TEXT}]
    params = engine.SamplingParams(temperature=1.0, top_k=0, seed=3, max_new_tokens=200)
    deltas = list(model.chat(msgs, params))
    assert deltas and all("\ufffd" not in d for d in deltas)


def test_cancel_stops_within_one_token(model: engine.Model) -> None:
    cancel = threading.Event()
    ids = model.tokenizer.encode("Hello")
    got = []
    for tok in model.generate(
        ids, engine.SamplingParams(max_new_tokens=100), cancel=cancel, ignore_eos=True
    ):
        got.append(tok)
        if len(got) == 3:
            cancel.set()
    assert len(got) == 3
    assert model.last_stats.stop_reason == "cancelled"


def test_cancel_set_before_start_yields_nothing(model: engine.Model) -> None:
    cancel = threading.Event()
    cancel.set()
    assert list(model.chat([{"role": "user", "content": "hi"}], cancel=cancel)) == []
    assert model.last_stats.stop_reason == "cancelled"


def test_stop_reasons_length_and_eos(model: engine.Model) -> None:
    ids = model.tokenizer.encode("Hello")
    assert (
        len(list(model.generate(ids, engine.SamplingParams(max_new_tokens=5), ignore_eos=True)))
        == 5
    )
    assert model.last_stats.stop_reason == "length"
    stats = model.last_stats
    assert (
        stats.new_tokens == 5 and stats.prompt_tokens == len(ids) and stats.time_to_first_token > 0
    )
    # Make the next token certain to be EOS by biasing the output layer.
    eos = model.tokenizer.hf.token_to_id("<|im_end|>")
    with torch.no_grad():
        model.net.lm_head.weight[eos] += 1000 * model.net.lm_head.weight[eos].sign()
        model.reset_cache()
        try:
            assert list(model.generate(ids, engine.SamplingParams(max_new_tokens=5))) == []
            assert model.last_stats.stop_reason == "eos"
        finally:
            model.net.lm_head.weight[eos] -= 1000 * model.net.lm_head.weight[eos].sign()
            model.reset_cache()


def test_error_inside_generation_reaches_the_caller(model: engine.Model, monkeypatch) -> None:
    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(model.net, "forward", boom)
    model.reset_cache()
    with pytest.raises(RuntimeError, match="kaboom"):
        list(model.chat([{"role": "user", "content": "hi"}]))
    monkeypatch.undo()
    # The lock was released: the model still works afterwards.
    assert list(
        model.generate(
            model.tokenizer.encode("hi"), engine.SamplingParams(max_new_tokens=2), ignore_eos=True
        )
    )
