#!/usr/bin/env python3
"""What the OpenAI-compatible path costs: our engine alone, the same engine behind
``chatapp serve`` (its own timings), and what chatapp's remote client sees of it.

    python benchmarks/remote_speed.py MODEL [--rounds 3] [--tokens 128]

Each round: the engine alone in this process, then one request through a ``chatapp serve``
subprocess on 127.0.0.1 (greedy, the same prompt, a fresh cache each time). Prints medians of
decode tokens/s and time to first token for the three, and the ratios the goals name.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

PROMPT = "Write a long story about a dragon who learns to cook."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=128)
    a = p.parse_args()

    import httpx

    import engine
    from chatapp.remote.client import RemoteModel
    from chatapp.remote.registry import Remote

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "chatapp", "serve", "--model", a.model, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        local = engine.load(a.model)
        remote = RemoteModel(Remote("bench", url))
        params = engine.SamplingParams(temperature=0, max_new_tokens=a.tokens)
        chat = [{"role": "user", "content": PROMPT}]
        rows: dict[str, list[float]] = {k: [] for k in (
            "alone_tps", "alone_ttft", "server_tps", "server_ttft", "client_tps", "client_ttft"
        )}  # fmt: skip
        for r in range(a.rounds):
            local.reset_cache()
            "".join(local.chat(chat, params))
            s = local.last_stats
            rows["alone_tps"].append(s.decode_tokens_per_second)
            rows["alone_ttft"].append(s.time_to_first_token)
            # a new conversation each round (no cache reuse on the server either)
            msgs = [{"role": "user", "content": f"{PROMPT} (take {r})"}]
            body = {"messages": msgs, "stream": True, "temperature": 0, "max_tokens": a.tokens,
                    "stream_options": {"include_usage": True}}  # fmt: skip
            # the server's own timings come in the usage chunk; the client's from its stats
            t0 = time.perf_counter()
            first = 0.0
            timings: dict[str, float] = {}
            n = 0
            with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=120) as resp:
                import json

                for line in resp.iter_lines():
                    if not line.startswith("data: ") or line.endswith("[DONE]"):
                        continue
                    event = json.loads(line[6:])
                    if event.get("timings"):
                        timings = event["timings"]
                    for c in event.get("choices", []):
                        if c.get("delta", {}).get("content"):
                            n += 1
                            first = first or time.perf_counter()
            end = time.perf_counter()
            rows["server_tps"].append(timings["predicted_per_second"])
            rows["server_ttft"].append(timings["prompt_ms"] / 1000)
            rows["client_ttft"].append(first - t0)
            rows["client_tps"].append((n - 1) / (end - first) if n > 1 else 0.0)
            # the same through chatapp's RemoteModel (what the chat and ask use)
            msgs2 = [{"role": "user", "content": f"{PROMPT} (again {r})"}]
            "".join(remote.chat(msgs2, params))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in rows.items())
                  + f", RemoteModel tps {remote.last_stats.decode_tokens_per_second:.1f}"
                  f" ttft {remote.last_stats.time_to_first_token:.3f}", flush=True)  # fmt: skip
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"\nmedians of {a.rounds} rounds, {a.tokens} tokens, {os.path.basename(a.model)}")
        for k, v in med.items():
            print(f"  {k:12} {v:8.3f}")
        print(
            f"serve's decode / the engine alone:         {med['server_tps'] / med['alone_tps']:.2f}"
        )
        print(
            f"client tokens/s / what the server streams: {med['client_tps'] / med['server_tps']:.2f}"
        )
        extra = (med["client_ttft"] - med["server_ttft"]) * 1000
        print(f"client TTFT - server TTFT:                 {extra:+.1f} ms")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
