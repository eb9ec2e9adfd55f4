#!/usr/bin/env python3
"""chatapp's engine and llama.cpp on the same GGUF file, measured in one run.

Each measurement runs in its own process (so peak RSS is that engine's alone), the engines
alternate round by round (so machine noise hits both), and the script prints medians and the
ratio chatapp / llama.cpp. llama.cpp comes from llama-cpp-python, an optional benchmark
dependency: ``pip install 'llama-cpp-python'`` (it compiles llama.cpp, about 6 minutes).

    python benchmarks/side_by_side.py MODEL.gguf [--rounds 3] [--threads 2] [--quality]

Reported: load (the first chatapp load converts the file into its cache, timed apart; the
imports each engine's load needs are import_s: llama_cpp, and engine's loader with tokenizers
and jinja2 but not torch, which the thread count needs first),
prefill and decode tokens/s, time to first token, decode at a short (100) and at a long
(2,000) context, peak RSS, the size of chatapp's converted cache, and with ``--quality`` the
top-1 agreement of each engine with chatapp's float32 dequantized reference over 256
teacher-forced positions of a chat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mib() -> float:
    # Not engine.bench.peak_rss_mib: importing engine.bench imports torch, which would count
    # in llama.cpp's figure.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prompt_ids(vocab: int, n: int, seed: int) -> list[int]:
    import random

    rng = random.Random(seed)
    return [rng.randrange(100, vocab - 100) for _ in range(n)]


# ---------------------------------------------------------------- workers (one per process)


def work_chatapp(a: argparse.Namespace) -> dict[str, float]:
    import torch

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    import engine
    from engine import load as load_model  # the loader's modules, as for llama_cpp below

    imports = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_model(a.model, quant=a.quant)
    load = time.perf_counter() - t0
    vocab = model.config.vocab_size
    greedy = engine.SamplingParams(temperature=0, max_new_tokens=a.gen_tokens)
    list(model.generate(prompt_ids(vocab, 8, 1), engine.SamplingParams(max_new_tokens=2)))
    model.reset_cache()
    list(model.generate(prompt_ids(vocab, a.prompt_tokens, 0), greedy, ignore_eos=True))
    s = model.last_stats
    out = {
        "import_s": imports,
        "load_s": load,
        "prefill_tps": s.prefill_tokens_per_second,
        "decode_tps": s.decode_tokens_per_second,
        "ttft_s": s.time_to_first_token,
    }
    long = engine.SamplingParams(temperature=0, max_new_tokens=64)
    for key, n, seed in (
        ("decode_short_tps", a.short_context, 3),
        ("decode_long_tps", a.long_context, 2),
    ):
        model.reset_cache()
        list(model.generate(prompt_ids(vocab, n, seed), long, ignore_eos=True))
        out[key] = model.last_stats.decode_tokens_per_second
    out["peak_rss_mib"] = _peak_rss_mib()
    out["cache_mib"] = sum(f.stat().st_size for f in Path(model.path).iterdir()) / 2**20
    out["weights"] = model.weight_format  # type: ignore[assignment]
    return out


def work_llamacpp(a: argparse.Namespace) -> dict[str, float]:
    t0 = time.perf_counter()
    from llama_cpp import Llama

    imports = time.perf_counter() - t0
    t0 = time.perf_counter()
    llm = Llama(a.model, n_ctx=a.long_context + 128, n_threads=a.threads, verbose=False)
    load = time.perf_counter() - t0
    vocab = llm.n_vocab()

    def run(ids: list[int], n: int) -> tuple[float, float, float]:
        # generate() evaluates the prompt, then yields one greedy token per step (its eval()
        # called directly crashes in llama-cpp-python 0.3.36).
        t = time.perf_counter()
        ttft = 0.0
        for count, _ in enumerate(llm.generate(ids, temp=0.0, top_k=1, reset=True), start=1):
            if count == 1:
                ttft = time.perf_counter() - t
                t = time.perf_counter()
            if count == n:
                break
        return len(ids) / ttft, (n - 1) / (time.perf_counter() - t), ttft

    run(prompt_ids(vocab, 8, 1), 2)
    prefill, decode, ttft = run(prompt_ids(vocab, a.prompt_tokens, 0), a.gen_tokens)
    _, decode_short, _ = run(prompt_ids(vocab, a.short_context, 3), 64)
    _, decode_long, _ = run(prompt_ids(vocab, a.long_context, 2), 64)
    return {
        "import_s": imports,
        "load_s": load,
        "prefill_tps": prefill,
        "decode_tps": decode,
        "ttft_s": ttft,
        "decode_short_tps": decode_short,
        "decode_long_tps": decode_long,
        "peak_rss_mib": _peak_rss_mib(),
    }


def work_quality(a: argparse.Namespace) -> dict[str, float]:
    """Top-1 agreement with the float32 reference over 256 teacher-forced positions."""
    import torch

    torch.set_num_threads(a.threads)
    import engine
    from engine.bench import QUALITY_CHAT

    ref = engine.load(a.model, dtype="float32")
    ids = ref.tokenizer.encode_chat(QUALITY_CHAT)[:257]
    want = ref.logits(ids).argmax(-1)[:256]
    out = {"positions": float(len(want))}
    fast = engine.load(a.model, quant=a.quant)
    out["chatapp"] = float((fast.logits(ids).argmax(-1)[:256] == want).float().mean())
    try:
        import numpy as np
        from llama_cpp import Llama
    except ImportError:
        return out
    llm = Llama(a.model, n_ctx=512, n_threads=a.threads, logits_all=True, verbose=False)
    for _ in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        break  # the prompt is evaluated, with logits for every position
    got = torch.from_numpy(np.asarray(llm.scores[: len(ids)]).argmax(-1))[:256]
    out["llama.cpp"] = float((got == want).float().mean())
    return out


# ---------------------------------------------------------------- driver


def measure(kind: str, a: argparse.Namespace, home: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, a.model, "--worker", kind]
    for flag in ("threads", "prompt_tokens", "gen_tokens", "short_context", "long_context"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(a, flag))]
    cmd += ["--quant", a.quant]
    env = os.environ | {"CHATAPP_HOME": home}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--short-context", type=int, default=100)
    p.add_argument("--long-context", type=int, default=2000)
    p.add_argument("--quant", default="auto", help="chatapp's load quant (auto, int8, int4...)")
    p.add_argument("--quality", action="store_true", help="also the top-1 agreement check")
    p.add_argument("--no-llamacpp", action="store_true")
    p.add_argument("--worker", choices=("chatapp", "llama.cpp", "quality"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        work = {"chatapp": work_chatapp, "llama.cpp": work_llamacpp, "quality": work_quality}
        print(json.dumps(work[a.worker](a)))
        return 0

    home = tempfile.mkdtemp(prefix="chatapp-bench-")
    first = measure("chatapp", a, home)  # converts the file into the fresh cache
    print(f"chatapp first load (converting): {first['load_s']:.2f} s, "
          f"peak RSS {first['peak_rss_mib']:.0f} MiB, cache {first['cache_mib']:.0f} MiB "
          f"({first['cache_mib'] * 2**20 / Path(a.model).stat().st_size:.2f}x the file), "
          f"weights {first['weights']}")  # fmt: skip
    engines = ["chatapp"] + ([] if a.no_llamacpp else ["llama.cpp"])
    runs: dict[str, list[dict[str, float]]] = {e: [] for e in engines}
    for r in range(a.rounds):
        for e in engines if r % 2 == 0 else reversed(engines):
            runs[e].append(measure(e, a, home))
            print(f"round {r + 1} {e}: " + ", ".join(
                f"{k} {v:.3g}" for k, v in runs[e][-1].items() if isinstance(v, float)
            ), flush=True)  # fmt: skip
    keys = ["decode_tps", "prefill_tps", "ttft_s", "load_s", "import_s", "decode_short_tps",
            "decode_long_tps", "peak_rss_mib"]  # fmt: skip
    med = {e: {k: statistics.median(x[k] for x in runs[e]) for k in keys} for e in engines}
    print(f"\nmedians of {a.rounds} rounds, {a.threads} threads, {Path(a.model).name}")
    print(
        f"{'':18}"
        + "".join(f"{e:>12}" for e in engines)
        + ("       ratio" if len(engines) > 1 else "")
    )
    for k in keys:
        row = f"{k:18}" + "".join(f"{med[e][k]:12.3f}" for e in engines)
        if len(engines) > 1:
            row += f"{med['chatapp'][k] / med['llama.cpp'][k]:12.2f}"
        print(row)
    for e in engines:
        m = med[e]
        print(f"decode at {a.long_context} / decode at {a.short_context} tokens of context: "
              f"{m['decode_long_tps'] / m['decode_short_tps']:.2f} ({e})")  # fmt: skip
    if a.quality:
        q = measure("quality", a, home)
        print("top-1 agreement with the float32 reference over "
              f"{q.pop('positions'):.0f} positions: "
              + ", ".join(f"{k} {v:.1%}" for k, v in q.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
