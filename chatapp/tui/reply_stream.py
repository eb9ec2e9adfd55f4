"""One reply streaming onto the screen: the engine thread appends text deltas to a buffer; a
timer on the UI thread moves them to the view in batches (never one UI update per token)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from textual.message import Message
from textual.timer import Timer

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from chatapp.core.session import ReplyRequest, ReplyResult
    from chatapp.tui.widgets.chat_view import AssistantMessage

# Streamed text reaches the screen in batches: at least FLUSH_SECONDS apart, and further apart
# when the Markdown view gets costly (long replies), so that rendering never takes more than
# about 1/FLUSH_COST_RATIO of the time and the engine thread keeps the CPU.
FLUSH_SECONDS = 0.05
FLUSH_MAX_SECONDS = 0.5
FLUSH_COST_RATIO = 20


class ReplyBuffer:
    """Text deltas from the engine thread, taken in batches by the UI's timer: the engine
    never waits for the UI."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def append(self, text: str) -> None:
        with self._lock:
            self._parts.append(text)

    def take(self) -> str:
        with self._lock:
            text = "".join(self._parts)
            self._parts.clear()
        return text


def next_delay(cost: float) -> float:
    """Seconds to the next tick after one whose showing cost ``cost`` seconds of UI CPU."""
    return min(FLUSH_MAX_SECONDS, max(FLUSH_SECONDS, FLUSH_COST_RATIO * cost))


class ReplyStream:
    """The streaming state of one reply: its view, its buffer, its cancel event and the batch
    timer (UI thread; the worker only sees ``buffer.append`` and ``cancel``)."""

    def __init__(self, view: AssistantMessage) -> None:
        self.view = view
        self.buffer = ReplyBuffer()
        self.cancel = threading.Event()
        self._timer: Timer | None = None
        self._cpu = 0.0

    def start(self, owner: MessagePump) -> None:
        """Begin the batch ticks on ``owner``'s timers."""
        self._owner = owner
        self._cpu = time.thread_time()
        self._timer = owner.set_timer(FLUSH_SECONDS, self._tick)

    async def flush(self) -> None:
        """Move what the engine produced since the last tick to the view."""
        if text := self.buffer.take():
            await self.view.append(text)

    async def _tick(self) -> None:
        await self.flush()
        if self._timer is None:
            return  # stopped meanwhile
        # The UI thread's CPU time since the last tick is what showing the text cost (Markdown
        # parsing, layout, rendering); space the ticks so it stays a small share of the time.
        now = time.thread_time()
        cost, self._cpu = now - self._cpu, now
        self._timer = self._owner.set_timer(next_delay(cost), self._tick)

    def stop(self) -> None:
        """No more ticks (the reply is done or its view is gone)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None


class ReplyFinished(Message):
    """The reply worker is done (complete, stopped or failed): the chat screen applies the
    result on the UI thread."""

    def __init__(self, stream: ReplyStream, request: ReplyRequest, result: ReplyResult) -> None:
        super().__init__()
        self.stream = stream
        self.request = request
        self.result = result
