"""``SamplingParams``: how to pick each next token, validated on creation.

Apart from the sampler (``engine.sampling``) so that the app can check settings from
config.toml before it imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_NEW_TOKENS = 1_000_000  # far past any context window; larger is a typo


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. ``temperature`` 0 is greedy; ``top_k`` 0, ``top_p`` 1.0
    and ``min_p`` 0.0 are off; ``seed`` None draws a fresh seed each call."""

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    repetition_window: int = 64
    max_new_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise ValueError(f"{name} must be {allowed}, got {value!r}")

        def is_int(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v

        check(
            is_num(self.temperature) and 0 <= self.temperature <= 100, "temperature", "in [0, 100]"
        )
        check(is_int(self.top_k) and self.top_k >= 0, "top_k", "an integer >= 0 (0 = off)")
        check(is_num(self.top_p) and 0 < self.top_p <= 1, "top_p", "in (0, 1] (1 = off)")
        check(is_num(self.min_p) and 0 <= self.min_p < 1, "min_p", "in [0, 1) (0 = off)")
        check(
            is_num(self.repetition_penalty) and 0 < self.repetition_penalty <= 10,
            "repetition_penalty",
            "in (0, 10] (1 = off)",
        )
        check(
            is_int(self.repetition_window) and self.repetition_window >= 0,
            "repetition_window",
            "an integer >= 0",
        )
        check(
            is_int(self.max_new_tokens) and 1 <= self.max_new_tokens <= MAX_NEW_TOKENS,
            "max_new_tokens",
            f"an integer in [1, {MAX_NEW_TOKENS:,}]",
        )
        check(
            self.seed is None or (is_int(self.seed) and 0 <= self.seed < 2**63),
            "seed",
            "None or an integer in [0, 2**63)",
        )
        if isinstance(self.stop, str):  # a lone string is one stop string, not its characters
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        check(
            all(isinstance(s, str) and s for s in self.stop),
            "stop",
            "a sequence of non-empty strings",
        )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1
