"""Speed and memory of a model, llama-bench style: load, prefill, decode, TTFT, peak RSS.

``run_bench`` returns plain dataclasses (``dataclasses.asdict`` gives JSON); printing is the
caller's business. Decode ignores end-of-turn tokens so every rep generates the same count.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine import native
from engine.generate import Model
from engine.sampling import SamplingParams

CHAT_QUESTIONS = (
    "Name a colour.",
    "Name a fruit.",
    "Name a city.",
    "Name an animal.",
    "Name a planet.",
    "Name a metal.",
    "Name a river.",
    "Name a tree.",
    "Name a flower.",
    "Name a sport.",
)


# A multi-turn chat for quality checks: the fast path's top-1 token against the float32
# reference, teacher-forced over its first 256 positions (tests and benchmarks/side_by_side.py).
QUALITY_CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France, and what is it famous for?"},
    {
        "role": "assistant",
        "content": "The capital of France is Paris. It is famous for the Eiffel Tower, the "
        "Louvre museum, its cafés, fashion and its long history as a centre of art and science.",
    },
    {"role": "user", "content": "Write a short Python function that returns squares of a list."},
    {
        "role": "assistant",
        "content": "Here is one:\n\n```python\ndef squares(numbers):\n    return [n * n for n "
        "in numbers]\n```\n\nIt uses a list comprehension to square each number in turn.",
    },
    {"role": "user", "content": "Thanks! Now explain in two sentences why the sky is blue."},
    {
        "role": "assistant",
        "content": "Sunlight is scattered by the molecules in the air, and blue light, with its "
        "shorter wavelength, is scattered much more than red light. So when we look at the sky "
        "away from the sun, we mostly see this scattered blue light, which is why it looks blue "
        "on a clear day. At sunset the light crosses more air, and the reds remain.",
    },
    {"role": "user", "content": "Give me three tips for learning a new language."},
    {
        "role": "assistant",
        "content": "1. Practise a little every day rather than a lot once a week.\n2. Speak "
        "with native speakers as early as you can, even with mistakes.\n3. Read and listen to "
        "things you enjoy, such as songs, films and simple books.",
    },
]


@dataclass
class Summary:
    """Median and range of one measurement over the reps."""

    median: float
    min: float
    max: float
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: list[float]) -> Summary:
        return cls(statistics.median(samples), min(samples), max(samples), list(samples))


@dataclass
class ChatTurn:
    turn: int
    prompt_tokens: int
    reused_tokens: int
    new_tokens: int
    time_to_first_token: float


@dataclass
class BenchResult:
    model: str
    architecture: str
    parameters: int
    dtype: str  # activations and KV cache
    weights: str  # e.g. int4+int8, or the float dtype
    attention: str  # what decode attention runs on: native (engine/csrc) or sdpa
    decode_step: str  # native (every block in one call, engine.fused_decode) or torch
    threads: int
    prompt_tokens: int
    gen_tokens: int
    reps: int
    load_seconds: float
    prefill_tokens_per_second: Summary
    decode_tokens_per_second: Summary
    time_to_first_token: Summary
    peak_rss_mib: float
    chat_turns: list[ChatTurn] = field(default_factory=list)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def prompt_ids(model: Model, n: int, seed: int = 0) -> list[int]:
    """``n`` random ordinary token ids (no special ones), the same for every rep."""
    gen = torch.Generator().manual_seed(seed)
    special = set(model.eos_ids)
    if model.config.bos_token_id is not None:
        special.add(model.config.bos_token_id)
    vocab = min(model.config.vocab_size, model.tokenizer.vocab_size)
    ids = torch.randint(0, vocab, (n * 2 + 16,), generator=gen).tolist()
    return [i for i in ids if i not in special][:n]


def run_bench(
    source: str,
    *,
    prompt_tokens: int = 512,
    gen_tokens: int = 128,
    reps: int = 5,
    threads: int | None = None,
    chat_turns: int = 10,
    chat_tokens: int = 16,
    dtype: str = "auto",
    quant: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Load ``source`` and measure it with ``threads`` torch threads (restored afterwards).
    Raises ``ModelLoadError`` / ``ValueError``."""
    if prompt_tokens < 1 or gen_tokens < 2 or reps < 1:
        raise ValueError("need --prompt-tokens >= 1, --gen-tokens >= 2 and --reps >= 1")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return _bench(source, prompt_tokens, gen_tokens, reps, chat_turns, chat_tokens, dtype,
                      quant, progress or (lambda _msg: None))  # fmt: skip
    finally:
        torch.set_num_threads(before)


def _bench(
    source: str,
    prompt_tokens: int,
    gen_tokens: int,
    reps: int,
    chat_turns: int,
    chat_tokens: int,
    dtype: str,
    quant: str,
    say: Callable[[str], None],
) -> BenchResult:
    from engine.loader import load

    say("loading")
    t0 = time.perf_counter()
    model = load(source, dtype=dtype, quant=quant)
    load_seconds = time.perf_counter() - t0
    if prompt_tokens + gen_tokens >= model.context_length:
        raise ValueError(
            f"--prompt-tokens + --gen-tokens ({prompt_tokens + gen_tokens}) must be below the "
            f"context length {model.context_length}"
        )
    ids = prompt_ids(model, prompt_tokens)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=gen_tokens)

    say("warming up")
    model.reset_cache()
    warm = SamplingParams(temperature=0.0, max_new_tokens=2)
    for _ in model.generate(ids[: min(8, len(ids))], warm, ignore_eos=True):
        pass

    prefill, decode, ttft = [], [], []
    for rep in range(reps):
        say(f"rep {rep + 1}/{reps}")
        model.reset_cache()  # a cold cache: the whole prompt is prefilled every rep
        n = sum(1 for _ in model.generate(ids, greedy, ignore_eos=True))
        stats = model.last_stats
        if n != gen_tokens or stats.reused_tokens:  # would make the figures meaningless
            raise RuntimeError(f"rep {rep + 1}: {n} tokens, {stats.reused_tokens} reused")
        prefill.append(stats.prefill_tokens_per_second)
        decode.append(stats.decode_tokens_per_second)
        ttft.append(stats.time_to_first_token)

    turns = chat_ttft(model, chat_turns, chat_tokens, say) if chat_turns else []
    return BenchResult(
        model=model.name,
        architecture=model.config.architecture,
        parameters=model.num_parameters(),
        dtype=str(model.dtype).removeprefix("torch."),
        weights=model.weight_format,
        attention=native.decode_attention_path(model.dtype, model.device),
        decode_step="native" if model.net.fused_decode is not None else "torch",
        threads=torch.get_num_threads(),
        prompt_tokens=len(ids),
        gen_tokens=gen_tokens,
        reps=reps,
        load_seconds=load_seconds,
        prefill_tokens_per_second=Summary.of(prefill),
        decode_tokens_per_second=Summary.of(decode),
        time_to_first_token=Summary.of(ttft),
        peak_rss_mib=peak_rss_mib(),
        chat_turns=turns,
    )


def chat_ttft(
    model: Model, turns: int, max_tokens: int, say: Callable[[str], None] = lambda _m: None
) -> list[ChatTurn]:
    """A scripted chat of ``turns`` short turns; each turn's TTFT and reused cache tokens."""
    model.reset_cache()
    params = SamplingParams(temperature=0.0, max_new_tokens=max_tokens)
    messages: list[dict[str, str]] = []
    out = []
    for i in range(turns):
        say(f"chat turn {i + 1}/{turns}")
        messages.append({"role": "user", "content": CHAT_QUESTIONS[i % len(CHAT_QUESTIONS)]})
        reply = "".join(model.chat(messages, params))
        s = model.last_stats
        out.append(
            ChatTurn(i + 1, s.prompt_tokens, s.reused_tokens, s.new_tokens, s.time_to_first_token)
        )
        messages.append({"role": "assistant", "content": reply})
    return out
