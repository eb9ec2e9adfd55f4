"""``/search TEXT``: every saved chat's messages, searched with the store's full-text index;
Enter opens the chat at the message, on its branch."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from chatapp.console_text import printable
from chatapp.core.store import MATCH_END, MATCH_START, SearchHit

TITLE = "Messages in your chats: Enter opens the chat there, Esc cancels"
MIN_LENGTH = 2  # a query shorter than this lists nothing (one letter matches everything)


def hit_label(hit: SearchHit) -> Text:
    """``Title · you: …snippet…`` on one line, the match highlighted (all of it text)."""
    who = "you" if hit.role == "user" else hit.role
    label = Text(printable(" ".join(hit.title.split()) or "(untitled)"), style="bold")
    label.append(f" · {who}: ")
    snippet = " ".join(hit.snippet.split())
    while MATCH_START in snippet:
        before, _, rest = snippet.partition(MATCH_START)
        match, _, snippet = rest.partition(MATCH_END)
        label.append(printable(before))
        label.append(printable(match), style="reverse")
    label.append(printable(snippet))
    label.no_wrap, label.overflow = True, "ellipsis"
    return label


class ChatSearch(ModalScreen[SearchHit | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("down", "move(1)", show=False),
        Binding("up", "move(-1)", show=False),
    ]

    def __init__(self, search: Callable[[str], list[SearchHit]], query: str = "") -> None:
        super().__init__(classes="dialog")
        self._search = search
        self.query_text = query
        self.hits: list[SearchHit] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(TITLE, id="search-title")
            yield Input(self.query_text, placeholder="search every chat…")
            yield OptionList()

    def on_mount(self) -> None:
        self._refill(self.query_text)
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._refill(event.value)

    def _refill(self, query: str) -> None:
        title = self.query_one("#search-title", Label)
        try:
            self.hits = self._search(query) if len(query.strip()) >= MIN_LENGTH else []
        except Exception as e:  # noqa: BLE001 - a damaged index or database: one line
            self.hits = []
            title.update(Text(printable(f"search failed: {e}")))
            return
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(Option(hit_label(h)) for h in self.hits)
        if self.hits:
            options.highlighted = 0
            title.update(Text(TITLE))
        elif len(query.strip()) < MIN_LENGTH:
            title.update(Text("Type two characters or more to search every chat"))
        else:
            title.update(Text(printable(f"No message matches {query.strip()!r}")))

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self.hits:
            current = options.highlighted or 0
            options.highlighted = max(0, min(len(self.hits) - 1, current + step))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        highlighted = self.query_one(OptionList).highlighted
        self.dismiss(self.hits[highlighted] if highlighted is not None and self.hits else None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.hits[event.option_index])
