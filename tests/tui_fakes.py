"""A fake engine model for the TUI tests: streams scripted chunks, with optional delays/pauses."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual.pilot import Pilot

from engine.generate import GenerationStats


@dataclass
class FakeModel:
    """Has the engine Model interface the app uses. ``gate`` (when given) is waited on after
    ``pause_after`` chunks, so a test can look at the screen mid-reply."""

    chunks: Sequence[str] = ("Hello", ", ", "world", "!")
    delay: float = 0.0
    name: str = "fake"
    path: str = ""
    weight_format: str = "fake"
    warnings: list[str] = field(default_factory=list)
    context_length: int = 2048
    gate: threading.Event | None = None
    pause_after: int = 0
    tokenizer: Any = None
    last_stats: GenerationStats = field(default_factory=GenerationStats)
    calls: list[list[dict[str, str]]] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def chat(
        self, messages: Sequence[dict[str, str]], params: Any = None, *, cancel: Any = None
    ) -> Iterator[str]:
        self.calls.append([dict(m) for m in messages])
        self.params.append(params)
        stats = GenerationStats(prompt_tokens=10 * len(messages), stop_reason="eos")
        self.last_stats = stats
        for i, chunk in enumerate(self.chunks):
            if self.gate is not None and i == self.pause_after:
                while not self.gate.wait(0.01):
                    if cancel is not None and cancel.is_set():
                        break
            if cancel is not None and cancel.is_set():
                stats.stop_reason = "cancelled"
                return
            if self.delay:
                time.sleep(self.delay)
            stats.new_tokens += 1
            if i == 0:
                stats.time_to_first_token = 0.125
            stats.decode_seconds = (stats.new_tokens - 1) / 42.0  # 42 tok/s
            yield chunk


def fake_loader(model: FakeModel, delay: float = 0.0) -> Callable[[str], FakeModel]:
    def load(source: str) -> FakeModel:
        if delay:
            time.sleep(delay)
        if source == "missing":
            from engine.errors import ModelLoadError

            raise ModelLoadError("no model at 'missing': give a checkpoint folder or a name")
        return model

    return load


async def wait_until(
    pilot: Pilot[Any], predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0
) -> None:
    """Let the app run until ``predicate`` holds (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)


def async_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (no pytest async plugin needed)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]

    return run
