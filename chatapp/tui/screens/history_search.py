"""Ctrl+R: search every past prompt (substring first, then fuzzy), newest first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from chatapp.console_text import printable

MAX_SHOWN = 200
TITLE = "Past prompts, newest first: Enter puts one in the prompt, Esc cancels"


def is_subsequence(needle: str, haystack: str) -> bool:
    it = iter(haystack)
    return all(ch in it for ch in needle)


def search_prompts(prompts: list[str], query: str) -> list[str]:
    """Unique prompts matching ``query``, newest first: substring hits, then fuzzy ones."""
    newest_first = list(dict.fromkeys(reversed(prompts)))
    q = query.lower().strip()
    if not q:
        return newest_first
    exact = [p for p in newest_first if q in p.lower()]
    fuzzy = [p for p in newest_first if q not in p.lower() and is_subsequence(q, p.lower())]
    return exact + fuzzy


class HistorySearch(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel", id="dialog_cancel"),
        Binding("down", "move(1)", show=False, id="history_search_down"),
        Binding("up", "move(-1)", show=False, id="history_search_up"),
    ]

    def __init__(self, prompts: list[str]) -> None:
        super().__init__(classes="dialog")
        self.prompts = prompts
        self.matches: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(TITLE, id="history-title")
            yield Input(placeholder="type to filter…")
            yield OptionList()

    def on_mount(self) -> None:
        self._refill("")
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._refill(event.value)

    def _refill(self, query: str) -> None:
        self.matches = search_prompts(self.prompts, query)[:MAX_SHOWN]
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(
            Option(Text(printable(" ⏎ ".join(p.splitlines())), no_wrap=True, overflow="ellipsis"))
            for p in self.matches
        )
        if self.matches:
            options.highlighted = 0
        title = self.query_one("#history-title", Label)
        if not self.prompts:
            title.update(Text("No past prompts yet: the prompts you send are kept here"))
        elif not self.matches:
            title.update(Text(printable(f"No past prompt matches {query.strip()!r}")))
        else:
            title.update(Text(TITLE))

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self.matches:
            current = options.highlighted or 0
            options.highlighted = max(0, min(len(self.matches) - 1, current + step))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        highlighted = self.query_one(OptionList).highlighted
        self.dismiss(
            self.matches[highlighted] if highlighted is not None and self.matches else None
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.matches[event.option_index])
