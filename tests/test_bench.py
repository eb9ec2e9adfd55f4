"""``engine.bench`` and ``chatapp bench``: the fields and their sanity, not the timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.cli import main
from chatapp.models.importer import import_model
from engine.bench import Summary, prompt_ids, run_bench


def test_bench_json_has_every_measure(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import_model(tiny_models["llama"], "tiny")
    argv = ["bench", "tiny", "--reps", "2", "--prompt-tokens", "16", "--gen-tokens", "4",
            "--threads", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"] == "tiny" and r["architecture"] == "LlamaForCausalLM"
    assert (r["prompt_tokens"], r["gen_tokens"], r["reps"], r["threads"]) == (16, 4, 2, 1)
    assert r["load_seconds"] > 0 and r["peak_rss_mib"] > 10
    for key in ("prefill_tokens_per_second", "decode_tokens_per_second", "time_to_first_token"):
        s = r[key]
        assert len(s["samples"]) == 2 and all(v > 0 for v in s["samples"])
        assert s["min"] <= s["median"] <= s["max"]
    turns = r["chat_turns"]
    assert [t["turn"] for t in turns] == list(range(1, 11))
    assert turns[0]["reused_tokens"] == 0
    # Later turns reuse the cached conversation (the tiny context may drop old turns, so
    # not every turn does; most must).
    assert sum(t["reused_tokens"] > 0 for t in turns[1:]) >= 5


def test_bench_table_names_the_measures(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", str(tiny_models["gpt2"]), "--reps", "1", "--prompt-tokens", "8",
            "--gen-tokens", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    for text in ("prefill pp8", "decode tg2", "load (s)", "peak RSS", "chat turn 1 ", "turn 10",
                 "decode step torch"):  # fmt: skip
        assert text in out


def test_every_rep_prefills_the_whole_prompt_and_generates_every_token(
    tiny_models: dict[str, Path],
) -> None:
    import torch

    before = torch.get_num_threads()
    r = run_bench(
        str(tiny_models["qwen2"]), prompt_tokens=20, gen_tokens=6, reps=2, chat_turns=2, threads=1
    )
    assert r.threads == 1 and torch.get_num_threads() == before
    # run_bench asserts per rep that nothing was reused and gen_tokens came (EOS ignored).
    assert r.prompt_tokens == 20 and r.gen_tokens == 6
    assert r.decode_step == "torch"  # a float model: the one-call step takes GGML blocks only
    assert [t.turn for t in r.chat_turns] == [1, 2]
    assert r.chat_turns[1].reused_tokens > 0


def test_prompt_ids_avoid_special_tokens(tiny_models: dict[str, Path]) -> None:
    import engine

    model = engine.load(tiny_models["llama"])
    ids = prompt_ids(model, 100)
    assert len(ids) == 100 and not set(ids) & set(model.eos_ids)
    assert ids == prompt_ids(model, 100)


def test_too_long_a_bench_for_the_context_is_a_one_line_error(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", str(tiny_models["llama"]), "--prompt-tokens", "512"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatapp: error: ") and "context length 128" in err
    assert main(["bench", "nope"]) == 1


def test_summary_is_median_and_range() -> None:
    s = Summary.of([3.0, 1.0, 2.0])
    assert (s.median, s.min, s.max) == (2.0, 1.0, 3.0)


def test_bench_prints_a_line_per_step_on_a_terminal(
    tiny_models: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run takes a minute: on a terminal, stderr says what it is doing as it goes."""
    import_model(tiny_models["llama"], "tiny")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich: stderr counts as a terminal
    argv = ["bench", "tiny", "--reps", "2", "--prompt-tokens", "16", "--gen-tokens", "4",
            "--threads", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    for step in ("loading", "warming up", "rep 1/2", "rep 2/2", "chat turn 10/10"):
        assert f"tiny: {step}…" in err
