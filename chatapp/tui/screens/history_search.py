"""Ctrl+R: search every past prompt (substring first, then fuzzy), newest first."""

from __future__ import annotations

from rich.text import Text

from chatapp.console_text import printable
from chatapp.tui.screens.filter_list import FilterList

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


class HistorySearch(FilterList[str]):
    TITLE_ID = "history-title"

    def __init__(self, prompts: list[str]) -> None:
        super().__init__()
        self.prompts = prompts

    @property
    def matches(self) -> list[str]:
        return self.items

    def filter(self, query: str) -> tuple[list[str], list[Text], Text]:
        matches = search_prompts(self.prompts, query)[:MAX_SHOWN]
        labels = [
            Text(printable(" ⏎ ".join(p.splitlines())), no_wrap=True, overflow="ellipsis")
            for p in matches
        ]
        if not self.prompts:
            title = Text("No past prompts yet: the prompts you send are kept here")
        elif not matches:
            title = Text(printable(f"No past prompt matches {query.strip()!r}"))
        else:
            title = Text(TITLE)
        return matches, labels, title
