"""``chatapp bench MODEL``: load time, prefill and decode speed, TTFT and peak memory."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from chatapp.cli import add_quant_option, error


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser(
        "bench",
        help="measure a model's speed and memory (like llama-bench)",
        description="Measure load time, prefill and decode tokens/s, time to first token, "
        "peak RSS, and the TTFT of a 10th chat turn next to the 1st (KV cache reuse).",
    )
    p.add_argument("model", metavar="MODEL", help="installed name, folder or .gguf file")
    p.add_argument("--prompt-tokens", type=int, default=512, metavar="N")
    p.add_argument("--gen-tokens", type=int, default=128, metavar="N")
    p.add_argument("--reps", type=int, default=5, metavar="N")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch threads")
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="activations (float32 also means every weight dequantized: the reference path)",
    )
    add_quant_option(
        p,
        "weights: auto keeps quantized weights quantized; none dequantizes; "
        "int8 / int4 quantize a float model at load",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from chatapp.models.choice import engine_source, require_model
    from engine.bench import run_bench
    from engine.errors import ModelLoadError

    err = Console(stderr=True, highlight=False)

    def progress(msg: str) -> None:
        # A line per step on a terminal (a run takes a minute: it must show it is alive);
        # nothing in logs and pipes.
        if err.is_terminal:
            err.print(f"[dim]{escape(args.model)}: {escape(msg)}…[/]")

    try:
        result = run_bench(
            engine_source(require_model(args.model)),
            prompt_tokens=args.prompt_tokens,
            gen_tokens=args.gen_tokens,
            reps=args.reps,
            threads=args.threads,
            dtype=args.dtype,
            quant=args.quant,
            progress=progress,
        )
    except (ModelLoadError, ValueError) as e:
        return error(str(e))
    if args.json:
        print(json.dumps(dataclasses.asdict(result)))
        return 0
    print_table(result, Console())
    return 0


def print_table(r: Any, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from chatapp.units import human_count

    console.print(
        f"[bold]{escape(r.model)}[/] {r.architecture}, {human_count(r.parameters)} parameters, "
        f"weights {r.weights}, activations {r.dtype}, attention {r.attention}, decode step "
        f"{r.decode_step}, {r.threads} threads, {r.reps} reps",
        highlight=False,
    )
    t = Table(box=None, header_style="bold")
    t.add_column("TEST")
    t.add_column("MEDIAN", justify="right")
    t.add_column("RANGE (MIN-MAX)", justify="right")

    def row(name: str, s: Any, fmt: str) -> None:
        t.add_row(name, format(s.median, fmt), f"{format(s.min, fmt)}-{format(s.max, fmt)}")

    row(f"prefill pp{r.prompt_tokens} (tok/s)", r.prefill_tokens_per_second, ".1f")
    row(f"decode tg{r.gen_tokens} (tok/s)", r.decode_tokens_per_second, ".1f")
    row(f"time to first token, pp{r.prompt_tokens} (s)", r.time_to_first_token, ".3f")
    t.add_row("load (s)", f"{r.load_seconds:.2f}", "")
    t.add_row("peak RSS (MiB)", f"{r.peak_rss_mib:.0f}", "")
    if r.chat_turns:
        first, last = r.chat_turns[0], r.chat_turns[-1]
        for turn in (first, last):
            t.add_row(
                f"chat turn {turn.turn} TTFT (s)",
                f"{turn.time_to_first_token:.3f}",
                f"{turn.prompt_tokens} prompt tokens, {turn.reused_tokens} reused",
            )
    console.print(t)
