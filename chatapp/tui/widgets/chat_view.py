"""The conversation: user prompts as plain text, replies as streaming Markdown."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from chatapp.console_text import printable
from chatapp.core.reply_stats import ReplyStats
from chatapp.core.session import ReplyResult


class UserMessage(Static):
    def __init__(self, text: str) -> None:
        super().__init__(Text(printable(text)), markup=False)


class Notice(Static):
    """One line from the app itself (settings changed, an error); never parsed as markup."""

    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__(Text(printable(text)), markup=False, classes="error" if error else "")


class Welcome(Static):
    """What the screen says until the first message: which model, the keys that matter."""

    def __init__(self, text: str) -> None:
        super().__init__(Text(printable(text)), markup=False)


class ContextCut(Static):
    """Where older turns were left out of the model's view (the context was full)."""

    def __init__(self, text: str) -> None:
        super().__init__(Text(printable(text)), markup=False)


class AssistantMessage(Vertical):
    """A reply: streamed into a ``MarkdownStream`` with ``append``, then rendered whole.

    ``text`` is the reply as the model wrote it; the view shows it ``printable`` (escape
    sequences in a reply, live or stored, never reach the terminal)."""

    def __init__(self, text: str = "", meta: str = "") -> None:
        # Markdown renders the model's text as Markdown only: Rich markup like [b] stays literal.
        self.body = Markdown(printable(text), classes="body")
        self.meta = Static(Text(printable(meta)), markup=False, classes="meta")
        self.meta.display = bool(meta)
        super().__init__(self.body, self.meta)
        self._stream: MarkdownStream | None = None
        self.text = text

    def set_meta(self, text: str, *, error: bool = False) -> None:
        self.meta.update(Text(printable(text)))
        self.meta.set_class(error, "error")
        self.meta.display = bool(text)

    def start_stream(self, waiting: str = "") -> None:
        self._stream = Markdown.get_stream(self.body)
        self.add_class("streaming")
        self.set_meta(waiting)

    async def append(self, text: str) -> None:
        if not self.text:
            self.set_meta("")
        self.text += text
        if self._stream is not None:
            await self._stream.write(printable(text))

    async def finish(self, result: ReplyResult) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        # What streamed stays on screen if the result lost it (an error after the text came).
        self.text = result.text or self.text
        await self.body.update(printable(self.text))  # one clean render of the whole reply
        self.remove_class("streaming")
        meta = reply_meta(result.stopped, None if result.error else result.stats, result.error)
        self.set_meta(meta, error=bool(result.error))
        self.mark(result.stopped, result.stats)

    def mark(self, stopped: bool, stats: ReplyStats | None) -> None:
        """The border of a reply that was stopped or cut off at the end of the context."""
        self.set_class(stopped or bool(stats and stats.stop_reason == "context"), "stopped")


def reply_meta(stopped: bool, stats: ReplyStats | None, error: str | None = None) -> str:
    """The line under a reply: stopped or cut off at the context's end, then its stats (or
    the error); the same live and for stored replies."""
    parts = []
    if stopped:
        parts.append("■ stopped")
    elif stats is not None and stats.stop_reason == "context":
        parts.append(CONTEXT_FULL)
    if error:
        parts.append(error)
    elif stats is not None:
        parts.append(stats.summary())
    return " · ".join(parts)


CONTEXT_FULL = "■ cut off: the context is full (Ctrl+N starts a new chat)"


class ChatView(VerticalScroll):
    """The messages of one conversation, scrolled to the newest."""

    async def add_user(self, text: str) -> UserMessage:
        widget = UserMessage(text)
        await self.mount(widget)
        return widget

    async def add_assistant(self, text: str = "", meta: str = "") -> AssistantMessage:
        widget = AssistantMessage(text, meta)
        await self.mount(widget)
        return widget

    def show_welcome(self, text: str) -> None:
        """Show (or update) the welcome; only in an empty chat."""
        if self.query(UserMessage):
            return
        existing = self.query(Welcome)
        if existing:
            existing.first().update(Text(printable(text)))
        else:
            self.mount(Welcome(text), before=0 if self.children else None)

    def hide_welcome(self) -> None:
        self.query(Welcome).remove()

    async def mark_context_cut(self, kept_prompts: int, text: str) -> None:
        """Put the one ``ContextCut`` line before the ``kept_prompts``-th prompt from the end:
        the turns above it are no longer in the model's view."""
        await self.query(ContextCut).remove()
        prompts = list(self.query(UserMessage))
        if 0 < kept_prompts <= len(prompts):
            await self.mount(ContextCut(text), before=prompts[-kept_prompts])

    def add_notice(self, text: str, error: bool = False) -> Notice:
        widget = Notice(text, error)
        self.mount(widget)
        self.scroll_end(animate=False)
        return widget

    async def clear(self) -> None:
        await self.remove_children()
