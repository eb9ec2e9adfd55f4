"""``ReplyStats``: what one reply cost, in the one shape the session, the store and the views
share (the engine's ``GenerationStats`` narrowed to what is stored per message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # engine.generate imports torch; this module is read before any model loads
    from engine.generate import GenerationStats, StopReason


@dataclass(frozen=True)
class ReplyStats:
    model: str = ""
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose keys/values came from the cache
    new_tokens: int = 0
    time_to_first_token: float = 0.0  # seconds
    tokens_per_second: float = 0.0  # decode speed
    stop_reason: StopReason = ""
    dropped_messages: int = 0  # earlier messages left out to fit the context

    @classmethod
    def from_generation(cls, model: str, stats: GenerationStats) -> ReplyStats:
        return cls(
            model=model,
            prompt_tokens=stats.prompt_tokens,
            reused_tokens=stats.reused_tokens,
            new_tokens=stats.new_tokens,
            time_to_first_token=stats.time_to_first_token,
            tokens_per_second=stats.decode_tokens_per_second,
            stop_reason=stats.stop_reason,
            dropped_messages=stats.dropped_messages,
        )

    @classmethod
    def from_row(cls, values: dict[str, object]) -> ReplyStats:
        """From a ``message_stats`` row (the column names are the field names)."""
        return cls(
            model=str(values["model"]),
            prompt_tokens=int(cast(int, values["prompt_tokens"])),
            reused_tokens=int(cast(int, values["reused_tokens"])),
            new_tokens=int(cast(int, values["new_tokens"])),
            time_to_first_token=float(cast(float, values["time_to_first_token"])),
            tokens_per_second=float(cast(float, values["tokens_per_second"])),
            stop_reason=cast("StopReason", str(values["stop_reason"])),
            dropped_messages=int(cast(int, values["dropped_messages"])),
        )

    @property
    def context_used(self) -> int:
        """Tokens the conversation holds after this reply."""
        return self.prompt_tokens + self.new_tokens

    def summary(self) -> str:
        """One line for the reply's footer and the status bar (short enough for both: TTFT is
        the time to the first token)."""
        return (
            f"{self.new_tokens} tokens · {self.tokens_per_second:.1f} tok/s · "
            f"TTFT {self.time_to_first_token * 1000:.0f} ms"
        )
