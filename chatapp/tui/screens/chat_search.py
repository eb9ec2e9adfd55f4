"""``/search TEXT``: every saved chat's messages, searched with the store's full-text index;
Enter opens the chat at the message, on its branch."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from chatapp.console_text import printable
from chatapp.core.store import MATCH_END, MATCH_START, SearchHit
from chatapp.tui.screens.filter_list import FilterList

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


class ChatSearch(FilterList[SearchHit]):
    TITLE_ID = "search-title"

    def __init__(self, search: Callable[[str], list[SearchHit]], query: str = "") -> None:
        super().__init__(query, placeholder="search every chat…")
        self._search = search

    @property
    def hits(self) -> list[SearchHit]:
        return self.items

    def filter(self, query: str) -> tuple[list[SearchHit], list[Text], Text]:
        if len(query.strip()) < MIN_LENGTH:
            return [], [], Text("Type two characters or more to search every chat")
        try:
            hits = self._search(query)
        except Exception as e:  # noqa: BLE001 - a damaged index or database: one line
            return [], [], Text(printable(f"search failed: {e}"))
        if not hits:
            return [], [], Text(printable(f"No message matches {query.strip()!r}"))
        return hits, [hit_label(h) for h in hits], Text(TITLE)
