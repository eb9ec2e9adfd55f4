"""The list of saved conversations, newest first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from chatapp.console_text import printable
from chatapp.core.store import Conversation


class ConversationList(OptionList):
    BINDINGS = [
        Binding("enter", "select", "Open", show=False, tooltip="open the chat", id="open_chat"),
        Binding("r", "rename", "Rename", tooltip="rename it", id="rename_chat"),
        Binding("delete,d", "delete", "Delete", tooltip="delete it", id="delete_chat"),
    ]

    class Action(Message):
        def __init__(self, action: str, conversation_id: int) -> None:
            super().__init__()
            self.action = action
            self.conversation_id = conversation_id

    def _selected_id(self) -> int | None:
        if self.highlighted is None:
            return None
        option_id = self.get_option_at_index(self.highlighted).id
        return int(option_id) if option_id else None

    def action_rename(self) -> None:
        if (cid := self._selected_id()) is not None:
            self.post_message(self.Action("rename", cid))

    def action_delete(self) -> None:
        if (cid := self._selected_id()) is not None:
            self.post_message(self.Action("delete", cid))


TITLE_WIDTH = 28  # the sidebar is 32 cells wide; one line per conversation


def _fit(title: str) -> str:
    title = printable(" ".join(title.split())) or "(untitled)"
    return title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + "…"


class Sidebar(Vertical):
    class SearchRequested(Message):
        """Enter in the sidebar's search box: search every chat for ``text``."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        yield Label("Conversations", classes="title")
        yield Input(placeholder="search all chats ⏎", id="chat-search")
        yield ConversationList()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.SearchRequested(event.value))
        event.input.value = ""

    def show(self, conversations: list[Conversation], current: int | None) -> None:
        options = self.query_one(ConversationList)
        options.clear_options()
        options.add_options(Option(Text(_fit(c.title)), id=str(c.id)) for c in conversations)
        ids = [c.id for c in conversations]
        if ids:
            # Always highlight a row so Enter opens something at once (the current chat,
            # else the newest).
            options.highlighted = ids.index(current) if current in ids else 0
