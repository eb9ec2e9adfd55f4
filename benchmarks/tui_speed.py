#!/usr/bin/env python3
"""Decode speed through the chat TUI next to the engine alone, on the same model.

The TUI runs headless (Textual's ``run_test``): the real app, its reply worker, the streaming
Markdown view and its batching, but no terminal. Each measurement is its own process (the app
loads the model itself, as it does for a user, then asks ``--replies`` times, each in a new
chat: a slowdown that starts with the second reply shows); the two alternate, and the script
prints medians and their ratio.

    python benchmarks/tui_speed.py MODEL [--rounds 3] [--tokens 150] [--replies 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPT = "Write a long story about a dragon who learns to cook."
WAIT_SECONDS = 300  # for the model to load, and then for the reply


def engine_alone(model: str, tokens: int, replies: int) -> float:
    import engine

    m = engine.load(model)
    params = engine.SamplingParams(temperature=0, max_new_tokens=tokens)
    speeds = []
    for _ in range(replies):
        m.reset_cache()
        "".join(m.chat([{"role": "user", "content": PROMPT}], params))
        speeds.append(float(m.last_stats.decode_tokens_per_second))
    return statistics.median(speeds)


def through_tui(model: str, tokens: int, replies: int) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from chatapp.core.settings import Settings
    from chatapp.tui.app import ChatApp

    settings = Settings(sampling={"temperature": 0.0, "max_tokens": tokens})

    async def run() -> float:
        app = ChatApp(model, settings=settings)
        async with app.run_test(size=(100, 40)) as pilot:
            ready_by = time.monotonic() + WAIT_SECONDS
            while not app.session.model_ready and time.monotonic() < ready_by:
                await pilot.pause(0.05)
            if not app.session.model_ready:
                status = app.chat.query_one("#status").render()
                raise SystemExit(f"the model did not load in {WAIT_SECONDS} s (status: {status})")
            speeds = []
            for _ in range(replies):  # each in a new chat, as a user asks again
                speeds.append(await one_reply(app, pilot))
                app.chat.action_new_chat()
                await asyncio.sleep(0.5)
            return statistics.median(speeds)

    async def one_reply(app: ChatApp, pilot: Any) -> float:
        before = app.session.last_stats  # a reopened chat's, or None
        app.chat.prompt.text = PROMPT
        app.chat.prompt.focus()
        await pilot.pause()  # focus() takes effect on the next message
        await pilot.press("enter")
        # The reply is done when the session stores its stats (on the UI thread, when the
        # reply worker ends). Plain sleeps, not pilot.pause: a pause waits for every widget
        # to go idle (a callback posted to each, ~1,600 per reply), UI work no user causes.
        deadline = time.monotonic() + WAIT_SECONDS
        while app.session.last_stats is before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if app.session.last_stats is before:
            raise SystemExit(f"no reply in {WAIT_SECONDS} s (streaming: {app.chat.streaming})")
        stats = app.session.last_stats
        return stats.tokens_per_second if stats else 0.0  # the decode speed, as stored

    return asyncio.run(run())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=150)
    p.add_argument("--replies", type=int, default=3, help="per process, each in a new chat")
    p.add_argument("--worker", choices=("alone", "tui"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        f = engine_alone if a.worker == "alone" else through_tui
        print(f(a.model, a.tokens, a.replies))
        return 0
    env = os.environ | {"CHATAPP_HOME": os.environ.get("CHATAPP_HOME") or tempfile.mkdtemp()}
    runs: dict[str, list[float]] = {"alone": [], "tui": []}
    for r in range(a.rounds):
        for kind in ("alone", "tui") if r % 2 == 0 else ("tui", "alone"):
            cmd = [sys.executable, __file__, a.model, "--worker", kind, "--tokens", str(a.tokens),
                   "--replies", str(a.replies)]  # fmt: skip
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[kind].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {kind}: {runs[kind][-1]:.1f} tok/s", flush=True)
    alone, tui = statistics.median(runs["alone"]), statistics.median(runs["tui"])
    print(f"decode: engine alone {alone:.1f} tok/s, through the TUI {tui:.1f} tok/s, "
          f"ratio {tui / alone:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
