"""The one fake engine model of the tests (the TUI's and ``chatapp ask``'s) and pilot helpers."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from textual.pilot import Pilot

from engine.generate import GenerationStats, Model, StopReason
from engine.sampling import SamplingParams
from engine.tokenizer import Message


class FakeModel(Model):
    """The engine's ``Model`` with a scripted reply: it streams ``chunks`` (after ``delay``
    seconds each) and records each call. A subclass, as llm's ``MockModel`` is, so it has the
    real interface and cannot drift from it (``test_the_fake_model_has_the_engine_interface``).

    ``gate`` (when given) is waited on after ``pause_after`` chunks, so a test can look at the
    screen mid-reply; ``interrupt_after`` raises KeyboardInterrupt there (Ctrl+C in a script).
    """

    def __init__(
        self,
        chunks: Sequence[str] = ("Hello", ", ", "world", "!"),
        *,
        delay: float = 0.0,
        name: str = "fake",
        warnings: list[str] | None = None,
        context_length: int = 2048,
        gate: threading.Event | None = None,
        pause_after: int = 0,
        interrupt_after: int | None = None,
        stop_reason: StopReason = "eos",
        base_model_note: str | None = None,
    ) -> None:
        # No network to build: only the attributes the app and ``chatapp ask`` read.
        self.name, self.path, self.tokenizer = name, "", None
        self.warnings = list(warnings or [])
        self.base_model_note = base_model_note
        # What the next reply's stats say: why it ended, and how many earlier messages the
        # engine left out to fit the context (a test sets it between turns).
        self.stop_reason: StopReason = stop_reason
        self.dropped_messages = 0
        self.last_stats = GenerationStats()
        self.chunks, self.delay = list(chunks), delay
        self.gate, self.pause_after, self.interrupt_after = gate, pause_after, interrupt_after
        self._context_length = context_length
        self.calls: list[list[dict[str, str]]] = []  # the messages of each call
        self.params: list[SamplingParams | None] = []
        self.closed = False  # the last stream was closed (finished, stopped or dropped)

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def weight_format(self) -> str:
        return "fake"

    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        self.calls.append([dict(m) for m in messages])  # type: ignore[misc]
        self.params.append(params)
        self.last_stats = GenerationStats(
            prompt_tokens=10 * len(messages),
            stop_reason=self.stop_reason,
            dropped_messages=self.dropped_messages,
        )
        self.closed = False
        return self._stream(self.last_stats, cancel)

    def _stream(self, stats: GenerationStats, cancel: threading.Event | None) -> Iterator[str]:
        try:
            for i, chunk in enumerate(self.chunks):
                if i == self.interrupt_after:
                    raise KeyboardInterrupt
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
        finally:
            self.closed = True


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
