"""A modal list with a filter box above it, the shape of Ctrl+R's past prompts and /search's
messages: typing refills the list, Up / Down move, Enter or a click picks, Esc cancels."""

from __future__ import annotations

from typing import Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

T = TypeVar("T")


class FilterList(ModalScreen["T | None"], Generic[T]):
    """Subclasses say what a query lists (``filter``); ``items`` are the rows shown, and the
    screen is dismissed with the one picked."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel", id="dialog_cancel"),
        Binding("down", "move(1)", show=False, id="history_search_down"),
        Binding("up", "move(-1)", show=False, id="history_search_up"),
    ]
    TITLE_ID = "filter-title"  # the id of the line above the box, which ``filter`` words

    def __init__(self, query: str = "", placeholder: str = "type to filter…") -> None:
        super().__init__(classes="dialog")
        self._first_query = query
        self._placeholder = placeholder
        self.items: list[T] = []

    def filter(self, query: str) -> tuple[list[T], list[Text], Text]:
        """The rows ``query`` lists, their labels, and the line to show above the box."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(id=self.TITLE_ID)
            yield Input(self._first_query, placeholder=self._placeholder)
            yield OptionList()

    def on_mount(self) -> None:
        self._refill(self._first_query)
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._refill(event.value)

    def _refill(self, query: str) -> None:
        self.items, labels, title = self.filter(query)
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(Option(label) for label in labels)
        if self.items:
            options.highlighted = 0
        self.query_one(f"#{self.TITLE_ID}", Label).update(title)

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self.items:
            current = options.highlighted or 0
            options.highlighted = max(0, min(len(self.items) - 1, current + step))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        highlighted = self.query_one(OptionList).highlighted
        self.dismiss(self.items[highlighted] if highlighted is not None and self.items else None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.items[event.option_index])
