"""The conversation: user prompts as plain text, replies as streaming Markdown."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from chatapp.console_text import printable
from chatapp.core.session import ReplyResult


class UserMessage(Static):
    def __init__(self, text: str) -> None:
        super().__init__(Text(printable(text)), markup=False)


class Notice(Static):
    """One line from the app itself (settings changed, an error); never parsed as markup."""

    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__(Text(printable(text)), markup=False, classes="error" if error else "")


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
        parts = []
        if result.stopped:
            parts.append("■ stopped")
        if result.error:
            parts.append(result.error)
        elif result.stats:
            parts.append(result.stats.summary())
        self.set_meta(" · ".join(parts), error=bool(result.error))
        self.set_class(result.stopped, "stopped")


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

    def add_notice(self, text: str, error: bool = False) -> Notice:
        widget = Notice(text, error)
        self.mount(widget)
        self.scroll_end(animate=False)
        return widget

    async def clear(self) -> None:
        await self.remove_children()
