"""Turning a stream of token ids into a stream of text that is safe to show.

``IncrementalDetokenizer`` emits only whole UTF-8 characters (no U+FFFD from a token that ends
mid-character, nor from invalid byte sequences) and never the text of special tokens. ``StopMatcher`` withholds text that could
be the start of a stop string, so a stop string split across tokens is never emitted.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.tokenizer import Tokenizer

_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Decode token by token without re-decoding the whole reply each step.

    Keeps two offsets into the ids (as in vLLM/TGI): text is decoded from ``prefix`` so that
    context-dependent decoders (SentencePiece's leading space) see the same start both times;
    new text is what lies beyond the previously emitted part.
    """

    def __init__(self, tokenizer: Tokenizer, prompt_tail: Sequence[int] = ()) -> None:
        self.tok = tokenizer
        # A few prompt tokens give the decoder context (e.g. "▁" handling) for the first token.
        self.ids: list[int] = [i for i in prompt_tail if i not in tokenizer.special_ids][-4:]
        self.prefix = 0
        self.read = len(self.ids)

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now complete (maybe empty)."""
        if token_id in self.tok.special_ids:
            return ""
        self.ids.append(token_id)
        prefix_text = self.tok.decode(self.ids[self.prefix : self.read])
        full = self.tok.decode(self.ids[self.prefix :])
        if full.endswith(_REPLACEMENT) or len(full) <= len(prefix_text):
            return ""  # mid-character: wait for the bytes that complete it
        self.prefix, self.read = self.read, len(self.ids)
        # Bytes that can never form a character (a model's invalid sequence) are dropped, as
        # bytes.decode(errors="ignore") would, rather than shown as U+FFFD.
        return full[len(prefix_text) :].replace(_REPLACEMENT, "")

    def flush(self) -> str:
        """Whatever is left at the end; an incomplete trailing character is dropped."""
        prefix_text = self.tok.decode(self.ids[self.prefix : self.read])
        full = self.tok.decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return full[len(prefix_text) :].replace(_REPLACEMENT, "")


class StopMatcher:
    """Cut the stream at the first stop string; hold back text that may begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        if not self.stops:
            return text
        if self.stopped:
            return ""
        buf = self.held + text
        hits = [i for s in self.stops if (i := buf.find(s)) >= 0]
        if hits:
            self.stopped = True
            self.held = ""
            return buf[: min(hits)]
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        out, self.held = ("" if self.stopped else self.held), ""
        return out
