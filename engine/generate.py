"""``Model``: a loaded Transformer with its tokenizer, its KV cache and the generation loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from engine.config import ModelConfig
from engine.errors import ContextOverflowError, GenerationError
from engine.kv_cache import KVCache
from engine.memory import trim_heap
from engine.model import Transformer
from engine.quantize import dequant_workspace
from engine.sampling import SamplingParams, make_generator, sample_next
from engine.streaming import IncrementalDetokenizer, StopMatcher
from engine.threads import ThreadTuner, set_threads
from engine.tokenizer import Message, Tokenizer

PREFILL_CHUNK = 512  # bounds the attention mask and activations of a long prompt

# Why a generation ended ("" before the first call); stored with each reply in chatapp's DB.
StopReason = Literal["", "eos", "stop", "length", "cancelled", "context"]


@dataclass
class GenerationStats:
    """What the last ``generate``/``chat`` call did, for status lines and benchmarks."""

    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV came from the cache
    new_tokens: int = 0
    time_to_first_token: float = 0.0  # seconds from the call to the first new token
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    stop_reason: StopReason = ""
    dropped_messages: int = 0  # whole turns dropped to fit the context window
    messages: list[Message] = field(default_factory=list, repr=False)

    @property
    def prefill_tokens_per_second(self) -> float:
        n = self.prompt_tokens - self.reused_tokens
        return n / self.prefill_seconds if self.prefill_seconds > 0 else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        # The first token comes from prefill; decode speed counts the ones after it.
        n = self.new_tokens - 1
        return n / self.decode_seconds if n > 0 and self.decode_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "new_tokens": self.new_tokens,
            "time_to_first_token": round(self.time_to_first_token, 4),
            "prefill_tokens_per_second": round(self.prefill_tokens_per_second, 2),
            "decode_tokens_per_second": round(self.decode_tokens_per_second, 2),
            "stop_reason": self.stop_reason,
            "dropped_messages": self.dropped_messages,
        }


class Model:
    """A model ready to run: ``logits``, ``generate`` (token ids) and ``chat`` (text deltas).

    The model keeps the KV cache of its last sequence. A new call reuses the longest common
    token prefix and prefills only the rest, so chat turn N does not re-read turns 1..N-1.
    Calls are serialised by a lock: one sequence at a time per model.
    """

    def __init__(
        self,
        transformer: Transformer,
        tokenizer: Tokenizer,
        *,
        name: str = "",
        path: str = "",
    ) -> None:
        self.net = transformer.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.path = path
        param = next(transformer.parameters())
        self.device, self.dtype = param.device, param.dtype
        self._cache: KVCache | None = None
        self._cached: list[int] = []  # the tokens whose keys/values the cache holds
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread generating now (the lock is not re-entrant)
        self._cut: tuple[int, Message] | None = None  # where fit_messages last cut a chat
        # One-line notes for the user from loading (e.g. a GGUF's unknown pre-tokenizer).
        self.warnings: list[str] = []
        # Set (and among the warnings) when the model has no chat template: most likely a
        # base model, for ``complete`` rather than ``chat``.
        self.base_model_note: str | None = None
        self.last_stats = GenerationStats()
        # Decode steps pick their thread count by measurement (engine.threads); off: always
        # torch's current count.
        self.adaptive_threads = True
        self._tuner: ThreadTuner | None = None

    @property
    def config(self) -> ModelConfig:
        return self.net.config

    @property
    def context_length(self) -> int:
        return self.config.context_length

    @property
    def eos_ids(self) -> frozenset[int]:
        return self.tokenizer.eos_ids | frozenset(self.config.eos_token_ids)

    @property
    def weight_format(self) -> str:
        """How the weights are held: e.g. ``int4+int8`` (quantized) or ``bfloat16``."""
        from engine.quantize import weight_kinds

        kinds = weight_kinds(self.net)
        return "+".join(kinds) if kinds else str(self.dtype).removeprefix("torch.")

    def num_parameters(self) -> int:
        from engine.quantize import parameter_count

        return parameter_count(self.net)

    @torch.inference_mode()
    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        """One full forward without the cache: ``[len(ids), vocab]`` float32."""
        if not ids:
            raise ValueError("ids must not be empty")
        if len(ids) > self.context_length:
            raise ContextOverflowError(
                f"{len(ids)} tokens exceed the context of {self.context_length}"
            )
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        with dequant_workspace():
            return self.net(x)[0].float()

    def _thread_tuner(self, threads: int) -> ThreadTuner | None:
        """The decode-thread chooser for ``threads`` configured threads (see engine.threads),
        or None when ``adaptive_threads`` is off or the model is not on the CPU."""
        if not self.adaptive_threads or self.device.type != "cpu":
            return None
        if self._tuner is None or self._tuner.most != threads:
            self._tuner = ThreadTuner(threads)
        return self._tuner

    def reset_cache(self) -> None:
        self._cached = []
        if self._cache is not None:
            self._cache.length = 0

    def _ensure_cache(self) -> KVCache:
        if self._cache is None:
            cfg = self.config
            self._cache = KVCache(
                cfg.num_layers,
                cfg.num_kv_heads,
                cfg.head_dim,
                cfg.context_length,
                dtype=self.dtype,
                device=self.device,
            )
        return self._cache

    def _prefill(
        self, ids: list[int], stats: GenerationStats, cancel: threading.Event | None = None
    ) -> torch.Tensor | None:
        """Bring the cache to hold ``ids``, reusing the common prefix; return last logits, or
        None when ``cancel`` was set between two chunks (the cache keeps what was done)."""
        cache = self._ensure_cache()
        common = 0
        limit = min(len(self._cached), len(ids) - 1)  # forward at least one token for logits
        while common < limit and self._cached[common] == ids[common]:
            common += 1
        cache.rollback(common)
        self._cached = ids[:common]
        stats.reused_tokens = common
        logits = None
        with dequant_workspace():
            for s in range(common, len(ids), PREFILL_CHUNK):
                if s > common and cancel is not None and cancel.is_set():
                    return None  # Esc during a long prompt: stop within one chunk
                chunk = ids[s : s + PREFILL_CHUNK]
                x = torch.tensor([chunk], dtype=torch.long, device=self.device)
                logits = self.net(x, cache=cache, start=s, last_only=True)
                self._cached = ids[: s + len(chunk)]
        assert logits is not None
        return logits[0, -1]

    def generate(
        self,
        ids: Sequence[int],
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
        ignore_eos: bool = False,
    ) -> Iterator[int]:
        """Yield new token ids for the prompt ``ids``; the KV cache is used and kept.

        Stops at an end-of-turn id (not yielded; unless ``ignore_eos``, for benchmarks and
        reference comparisons), after ``max_new_tokens``, when the context is full, or within
        one token of ``cancel`` being set. ``last_stats`` describes the call.
        """
        stats = GenerationStats()
        return self._generate(list(ids), params or SamplingParams(), cancel, stats, ignore_eos)

    def _generate(
        self,
        ids: list[int],
        params: SamplingParams,
        cancel: threading.Event | None,
        stats: GenerationStats,
        ignore_eos: bool = False,
    ) -> Generator[int, None, None]:
        if not ids:
            raise ValueError("the prompt must hold at least one token")
        if len(ids) >= self.context_length:
            raise ContextOverflowError(
                f"the prompt has {len(ids)} tokens but the context holds {self.context_length}; "
                "shorten it or start a new chat"
            )
        # Grad mode is thread-local state: enter inference mode around each forward only, so it
        # does not leak into the consumer's code while this generator is suspended at a yield.
        if self._owner == threading.get_ident():
            raise GenerationError(
                "a generation is already running in this thread: finish or close its "
                "iterator before starting another"
            )
        with self._lock:
            self._owner = threading.get_ident()
            try:
                self.last_stats = stats
                stats.prompt_tokens = len(ids)
                t0 = time.perf_counter()
                gen = make_generator(params, "cpu")
                eos = frozenset() if ignore_eos else self.eos_ids
                window = params.repetition_window
                recent: list[int] = ids[-window:] if window else []
                stats.stop_reason = "length"
                if cancel is not None and cancel.is_set():
                    stats.stop_reason = "cancelled"
                    return
                restore = torch.get_num_threads()
                tuner = self._thread_tuner(restore)
                t_decode = time.perf_counter()
                try:
                    if tuner is not None:
                        set_threads(tuner.best)  # what the last decode steps found fastest
                    with torch.inference_mode():
                        first = self._prefill(ids, stats, cancel)
                    stats.prefill_seconds = time.perf_counter() - t0
                    if first is None:
                        stats.stop_reason = "cancelled"
                        return
                    logits = first
                    t_decode = time.perf_counter()
                    pos = len(ids)
                    cache = self._ensure_cache()
                    for _ in range(params.max_new_tokens):
                        token = sample_next(logits.cpu(), params, gen, recent)
                        if stats.new_tokens == 0:
                            stats.time_to_first_token = time.perf_counter() - t0
                            t_decode = time.perf_counter()
                        if token in eos:
                            stats.stop_reason = "eos"
                            break
                        stats.new_tokens += 1
                        yield token
                        if cancel is not None and cancel.is_set():
                            stats.stop_reason = "cancelled"
                            break
                        if window:
                            recent.append(token)
                            if len(recent) > window:
                                del recent[0]
                        if stats.new_tokens == params.max_new_tokens:
                            break  # no forward pass for a token that will not be sampled
                        if pos >= self.context_length:
                            stats.stop_reason = "context"
                            break
                        x = torch.tensor([[token]], dtype=torch.long, device=self.device)
                        if tuner is not None:
                            set_threads(tuner.next_threads())
                        t_step = time.perf_counter()
                        with torch.inference_mode():
                            logits = self.net(x, cache=cache, start=pos, last_only=True)[0, -1]
                        if tuner is not None:
                            tuner.record(time.perf_counter() - t_step)
                        self._cached.append(token)
                        pos += 1
                finally:
                    stats.decode_seconds = time.perf_counter() - t_decode
                    set_threads(restore)
                    if len(ids) - stats.reused_tokens >= PREFILL_CHUNK:
                        # A long prefill's transient buffers (activations, dequantized
                        # weights) stay in malloc's free lists, ~25 MB resident after a
                        # 2,000-token prompt: hand them back, after the reply, not before it.
                        trim_heap()
            finally:
                self._owner = None

    def fit_messages(
        self, messages: Sequence[Message], reserve: int
    ) -> tuple[list[int], list[Message], int]:
        """Render and encode ``messages`` so that the prompt plus ``reserve`` reply tokens fit
        the context, dropping the oldest whole turns (never the system message).

        When turns must go, enough go to bring the prompt under the budget minus a quarter of
        the context, not just under it, and the next calls keep that cut while the prompt
        from it still fits: the start of the prompt (and its KV cache) stays put for several
        turns instead of sliding, and a full re-prefill happens only when the slack is used
        up. A new cut is found by a binary search over turn boundaries (a few encodings, not
        one per dropped turn)."""
        msgs = list(messages)
        system = [m for m in msgs[:1] if m.get("role") == "system"]
        rest = msgs[len(system) :]
        budget = self.context_length - reserve
        ids = self.tokenizer.encode_chat(system + rest)
        if len(ids) <= budget:
            return ids, system + rest, 0
        # Where a turn starts (a user message); cutting there drops the turns before it.
        cuts = [i for i, m in enumerate(rest) if m.get("role") == "user" and i > 0]
        encoded: dict[int, list[int]] = {}

        def prompt(cut: int) -> list[int]:
            if cut not in encoded:
                encoded[cut] = self.tokenizer.encode_chat(system + rest[cut:])
            return encoded[cut]

        def first_fitting(limit: int) -> int | None:
            lo, hi = 0, len(cuts) - 1  # prompts shrink as the cut moves right
            if not cuts or len(prompt(cuts[hi])) > limit:
                return None
            while lo < hi:
                mid = (lo + hi) // 2
                if len(prompt(cuts[mid])) <= limit:
                    hi = mid
                else:
                    lo = mid + 1
            return cuts[lo]

        if self._cut is not None:  # the same conversation, one turn on: keep its cut
            index, first = self._cut
            if index in cuts and rest[index] == first and len(prompt(index)) <= budget:
                return prompt(index), system + rest[index:], index
        target = max(budget - self.context_length // 4, 1)
        cut = first_fitting(target)
        if cut is None:
            cut = first_fitting(budget)
        if cut is None:  # even the last turn alone is too long for the reply's room
            last = cuts[-1] if cuts else 0
            ids = prompt(last) if cuts else ids
            if len(ids) < self.context_length:
                return ids, system + rest[last:], last  # the reply gets what room is left
            raise ContextOverflowError(
                f"the message is {len(ids)} tokens but the context holds only "
                f"{self.context_length}; shorten it"
            )
        self._cut = (cut, dict(rest[cut]))
        return prompt(cut), system + rest[cut:], cut

    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Render the chat template for ``messages`` and yield text deltas of the reply."""
        params = params or SamplingParams()
        reserve = min(params.max_new_tokens, self.context_length // 4)
        ids, kept, dropped = self.fit_messages(messages, reserve)
        stats = GenerationStats(dropped_messages=dropped, messages=kept)
        return self._chat(ids, params, cancel, stats)

    def complete(
        self,
        text: str,
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield text deltas that continue ``text`` as it is, with no chat template: what a
        base model is made for (it continues documents; it was not taught turns)."""
        params = params or SamplingParams()
        ids = self.tokenizer.encode(text)
        return self._chat(ids, params, cancel, GenerationStats())

    def _chat(
        self,
        ids: list[int],
        params: SamplingParams,
        cancel: threading.Event | None,
        stats: GenerationStats,
    ) -> Iterator[str]:
        detok = IncrementalDetokenizer(self.tokenizer, ids)
        stops = StopMatcher(params.stop)
        tokens = self._generate(ids, params, cancel, stats)
        try:
            for token in tokens:
                text = stops.push(detok.push(token))
                if text:
                    yield text
                if stops.stopped:
                    stats.stop_reason = "stop"
                    return
            tail = stops.push(detok.flush())
            tail += stops.flush()
            if stops.stopped:
                stats.stop_reason = "stop"
            if tail:
                yield tail
        finally:
            tokens.close()
