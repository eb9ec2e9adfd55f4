"""The conversation: user prompts as plain text, replies as streaming Markdown."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from chatapp.console_text import printable
from chatapp.core.reply_stats import ReplyStats
from chatapp.core.session import ReplyResult
from chatapp.core.store import StoredMessage


class MessageAction(Message):
    """A key pressed on a selected message: ``action`` is one of ``MESSAGE_ACTIONS``."""

    def __init__(self, action: str, message_id: int) -> None:
        super().__init__()
        self.action = action
        self.message_id = message_id


class Selectable(Widget):
    """A message that can be selected (focused) with the keyboard or the mouse, and acted on.
    ``message_id`` is its id in the database (None while a reply streams). A mixin: list it
    after the widget class (Textual takes CSS types from the first base only)."""

    can_focus = True
    message_id: int | None = None

    BINDINGS = [
        Binding("up,k", "move(-1)", "Prev", tooltip="select the message above", id="message_up"),
        Binding("down,j", "move(1)", "Next", tooltip="select the message below",
                id="message_down"),
        Binding("left", "act('previous')", "◀ Alt", tooltip="show the previous alternative",
                id="previous_alternative"),
        Binding("right", "act('next')", "Alt ▶", tooltip="show the next alternative",
                id="next_alternative"),
        Binding("e", "act('edit')", "Edit", tooltip="edit and resend a prompt (a new branch)",
                id="edit_message"),
        Binding("r", "act('regenerate')", "Regen", tooltip="a new alternative of a reply",
                id="regenerate_message"),
        Binding("c,y", "act('copy')", "Copy", tooltip="copy the message", id="copy_message"),
        Binding("delete", "act('delete')", "Delete", tooltip="delete it and what follows it",
                id="delete_message"),
        Binding("escape", "back", "Back", tooltip="back to the prompt", id="back_to_prompt"),
    ]  # fmt: skip

    async def action_move(self, step: int) -> None:
        parent = self.parent
        if not isinstance(parent, ChatView):
            return
        if step < 0 and parent.messages()[:1] == [self]:
            await parent.show_earlier()  # above the oldest message shown: show older ones
        messages = parent.messages()
        at = messages.index(self) + step
        if 0 <= at < len(messages):
            messages[at].focus()
            messages[at].scroll_visible(animate=False)
        elif step > 0:
            self.action_back()

    def action_act(self, action: str) -> None:
        if self.message_id is not None:
            self.post_message(MessageAction(action, self.message_id))

    def action_back(self) -> None:
        self.post_message(MessageAction("back", self.message_id or 0))


def alternatives_label(index: int, count: int) -> str:
    """``‹2/3›`` on a message that has alternatives (nothing when it has none)."""
    return f"‹{index}/{count}›" if count > 1 else ""


class UserMessage(Static, Selectable, can_focus=True):
    BINDINGS = Selectable.BINDINGS  # Static does not inherit bindings: name them again

    def __init__(self, text: str, message_id: int | None = None) -> None:
        super().__init__(Text(printable(text)), markup=False)
        self.text = text
        self.message_id = message_id

    def set_alternatives(self, index: int, count: int) -> None:
        label = alternatives_label(index, count)
        shown = Text(printable(self.text))
        if label:
            shown.append(f"  {label}", style="dim")
        self.update(shown)


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


class AssistantMessage(Vertical, Selectable, can_focus=True):
    """A reply: streamed into a ``MarkdownStream`` with ``append``, then rendered whole.

    ``text`` is the reply as the model wrote it; the view shows it ``printable`` (escape
    sequences in a reply, live or stored, never reach the terminal)."""

    def __init__(self, text: str = "", meta: str = "", message_id: int | None = None) -> None:
        # Markdown renders the model's text as Markdown only: Rich markup like [b] stays literal.
        self.body = Markdown(printable(text), classes="body")
        self.meta = Static(Text(printable(meta)), markup=False, classes="meta")
        self.meta.display = bool(meta)
        super().__init__(self.body, self.meta)
        self._stream: MarkdownStream | None = None
        self.text = text
        self.message_id = message_id
        self._meta_text = meta
        self._meta_error = False
        self._alternatives = ""

    def set_meta(self, text: str, *, error: bool = False) -> None:
        self._meta_text, self._meta_error = text, error
        shown = " · ".join(part for part in (self._alternatives, text) if part)
        self.meta.update(Text(printable(shown)))
        self.meta.set_class(error, "error")
        self.meta.display = bool(shown)

    def set_alternatives(self, index: int, count: int) -> None:
        self._alternatives = alternatives_label(index, count)
        self.set_meta(self._meta_text, error=self._meta_error)

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
        if stats.reused_tokens:  # e.g. a regenerated reply: its whole history came from the cache
            parts.append(f"{stats.reused_tokens} of {stats.prompt_tokens} prompt tokens cached")
    return " · ".join(parts)


CONTEXT_FULL = "■ cut off: the context is full (Ctrl+N starts a new chat)"


class ChatView(VerticalScroll):
    """The messages of one conversation, scrolled to the newest."""

    async def add_user(self, text: str, message_id: int | None = None) -> UserMessage:
        widget = UserMessage(text, message_id)
        await self.mount(widget)
        return widget

    async def add_assistant(
        self, text: str = "", meta: str = "", message_id: int | None = None
    ) -> AssistantMessage:
        widget = AssistantMessage(text, meta, message_id)
        await self.mount(widget)
        return widget

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._earlier: list[StoredMessage] = []  # the branch's older messages, not yet shown
        self._alternatives: Callable[[int], tuple[int, int]] = lambda _: (1, 1)

    async def show_branch(
        self, branch: list[StoredMessage], alternatives: Callable[[int], tuple[int, int]]
    ) -> None:
        """Replace what is shown with ``branch``, each message marked with its place among
        its alternatives (``alternatives(id)`` gives "2 of 3" as (2, 3)). A long branch
        shows its newest ``SHOWN_AT_ONCE`` messages; older ones come when scrolled to (a
        chat of hundreds of turns opens at once)."""
        await self.clear()
        self._alternatives = alternatives
        cut = max(0, len(branch) - SHOWN_AT_ONCE)
        self._earlier = branch[:cut]
        widgets = self._widgets(branch[cut:])
        if self._earlier:
            widgets.insert(0, EarlierMessages(len(self._earlier)))
        if widgets:
            await self.mount_all(widgets)

    def _widgets(self, messages: list[StoredMessage]) -> list[Widget]:
        widgets: list[Widget] = []
        for m in messages:
            if m.role == "user":
                user = UserMessage(m.content, m.id)
                user.set_alternatives(*self._alternatives(m.id))
                widgets.append(user)
            elif m.role == "assistant":
                reply = AssistantMessage(m.content, reply_meta(m.stopped, m.stats), m.id)
                reply.set_alternatives(*self._alternatives(m.id))
                reply.mark(m.stopped, m.stats)
                widgets.append(reply)
        return widgets

    @property
    def has_earlier(self) -> bool:
        return bool(self._earlier)

    async def show_earlier(self) -> None:
        """Show the next ``SHOWN_AT_ONCE`` older messages above the oldest shown, keeping
        what is on screen where it is."""
        if not self._earlier:
            return
        cut = max(0, len(self._earlier) - SHOWN_AT_ONCE)
        older, self._earlier = self._earlier[cut:], self._earlier[:cut]
        marker = self.query(EarlierMessages)
        shown = self.messages()
        anchor = shown[0] if shown else None
        widgets = self._widgets(older)
        if widgets:
            await self.mount_all(widgets, before=anchor)
        if self._earlier and marker:
            marker.first().show_count(len(self._earlier))
        else:
            await marker.remove()
        if anchor is not None:
            self.scroll_to_widget(anchor, top=True, animate=False)

    async def trim(self, branch: list[StoredMessage]) -> None:
        """Keep a long chat light as it grows: when more than twice ``SHOWN_AT_ONCE``
        messages are shown and the view is at its end, the oldest go back behind the
        "earlier messages" line (``branch`` is what is shown, oldest first)."""
        shown = self.messages()
        if len(shown) <= 2 * SHOWN_AT_ONCE or self.scroll_y < self.max_scroll_y - 1:
            return
        first = shown[-SHOWN_AT_ONCE]
        ids = [m.id for m in branch]
        if first.message_id not in ids:
            return  # a reply that was not stored is among them: leave the view as it is
        self._earlier = branch[: ids.index(first.message_id)]
        at = self.children.index(first)
        await self.remove_children(list(self.children[:at]))  # notices above it go too
        await self.mount(EarlierMessages(len(self._earlier)), before=first)
        self.scroll_end(animate=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 < old_value and self._earlier:  # scrolled up to the top
            self.call_later(self.show_earlier)

    def message_widget(self, message_id: int) -> Selectable | None:
        return next((w for w in self.messages() if w.message_id == message_id), None)

    def messages(self) -> list[Selectable]:
        """The message widgets, in order (a query by type would miss them: ``Selectable`` is
        a mixin, and Textual's selectors follow first bases only)."""
        return [w for w in self.children if isinstance(w, Selectable)]

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
        self._earlier = []
        await self.remove_children()


SHOWN_AT_ONCE = 24  # messages a chat shows when it opens; older ones when scrolled to


class EarlierMessages(Static, can_focus=True):
    """The line above the oldest message shown: how many older ones there are. Scrolling up
    to it, a click or Enter shows more."""

    BINDINGS = [Binding("enter", "show", "Show earlier", id="show_earlier")]

    def __init__(self, count: int) -> None:
        super().__init__(markup=False)
        self.show_count(count)

    def show_count(self, count: int) -> None:
        self.update(Text(f"▲ {count} earlier messages (scroll up, click or Enter to show them)"))

    async def action_show(self) -> None:
        if isinstance(self.parent, ChatView):
            await self.parent.show_earlier()

    async def on_click(self) -> None:
        await self.action_show()
