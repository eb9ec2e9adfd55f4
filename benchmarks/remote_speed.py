#!/usr/bin/env python3
"""What the OpenAI-compatible path costs: our engine alone, the same engine behind
``chatapp serve`` (its own timings), and what chatapp's remote client sees of it.

    python benchmarks/remote_speed.py MODEL [--rounds 7] [--tokens 128] [--server-cpu 1]

Each round: the engine alone in this process, then one request through chatapp's
``RemoteModel`` to a ``chatapp serve`` subprocess on 127.0.0.1 (greedy, a prompt of its own,
so no round reuses another's cache). The server's own time to first token and decode speed
come from the ``timings`` it sends with the same reply. A first round warms up and is not
counted. Prints medians and the ratios the goals name (issue 12: client TTFT <= server TTFT +
20 ms; client tokens/s >= 0.95x the server's; serve's decode within 10% of the engine's).
``--server-cpu N`` pins the server to core N (``taskset``), away from this process.
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
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--server-cpu", type=int, help="pin the server to this core (taskset)")
    a = p.parse_args()

    import httpx

    import engine
    from chatapp.remote.client import RemoteModel
    from chatapp.remote.registry import Remote

    port = free_port()
    cmd = [sys.executable, "-m", "chatapp", "serve", "--model", a.model, "--port", str(port)]
    if a.server_cpu is not None:
        cmd = ["taskset", "-c", str(a.server_cpu), *cmd]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ)
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
        keys = ("alone_tps", "alone_ttft", "server_tps", "server_ttft", "client_tps",
                "client_ttft", "extra_ms")  # fmt: skip
        rows: dict[str, list[float]] = {k: [] for k in keys}
        for r in range(a.rounds + 1):
            local.reset_cache()
            "".join(local.chat([{"role": "user", "content": PROMPT}], params))
            alone = local.last_stats
            # A prompt of its own (the number first, so little of it is a cached prefix).
            "".join(remote.chat([{"role": "user", "content": f"({r}) {PROMPT}"}], params))
            client, served = remote.last_stats, remote.last_server_timings
            if r == 0:
                continue  # warm-up: the first forward passes, the first connection
            row = {
                "alone_tps": alone.decode_tokens_per_second,
                "alone_ttft": alone.time_to_first_token,
                "server_tps": float(served["predicted_per_second"]),
                "server_ttft": float(served["prompt_ms"]) / 1000,
                "client_tps": client.decode_tokens_per_second,
                "client_ttft": client.time_to_first_token,
            }
            row["extra_ms"] = (row["client_ttft"] - row["server_ttft"]) * 1000
            for k, v in row.items():
                rows[k].append(v)
            print(f"round {r}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
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
        print(f"client TTFT - server TTFT (median):        {med['extra_ms']:+.1f} ms")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
