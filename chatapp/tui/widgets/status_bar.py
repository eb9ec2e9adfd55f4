"""The status line: model, sampling, context use, and the last reply's speed."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from chatapp.console_text import printable
from chatapp.core.reply_stats import ReplyStats

SHORT = {"temperature": "temp", "repetition_penalty": "rep", "max_tokens": "max"}
OFF: dict[str, Any] = {"min_p": 0.0, "repetition_penalty": 1.0, "seed": None}  # hidden when off


class StatusBar(Static):
    def show(
        self,
        *,
        model: str,
        state: str,
        settings: dict[str, Any],
        context_used: int,
        context_size: int | None,
        stats: ReplyStats | None,
    ) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(printable(model) or "no model", style="bold")
        if state:
            text.append(f" ({printable(state)})", style="italic")
        shown = {k: v for k, v in settings.items() if v != OFF.get(k, object())}
        max_tokens = shown.get("max_tokens")
        if context_size and isinstance(max_tokens, int) and max_tokens > context_size:
            shown["max_tokens"] = context_size  # a reply never runs past the context's end
        if shown:
            values = " ".join(f"{SHORT.get(k, k)}={_fmt(v)}" for k, v in shown.items())
            text.append("  " + printable(values))
        if context_size:
            # The last token of a reply that filled the context is never in the cache.
            text.append(f"  ctx {min(context_used, context_size)}/{context_size}")
        if stats:
            text.append(f"  │ {stats.summary()}")
        self.update(text)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
