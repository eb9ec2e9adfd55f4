"""A ``tokenizers.Tokenizer`` rebuilt from GGUF metadata, the way transformers' GGUF loader
builds it (``transformers/integrations/gguf/gguf_tokenizer_mapping.py``), so both agree.

``tokenizer.ggml.model`` names the kind: ``gpt2`` is byte-level BPE (tokens + merges, split by
the regex ``tokenizer.ggml.pre`` names), ``llama`` is SentencePiece BPE with ``<0xNN>`` byte
fallback (merges from the file, or recovered from the token scores).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from engine.errors import ModelLoadError

log = logging.getLogger(__name__)

# llama.cpp token types (llama_token_type).
CONTROL, USER_DEFINED = 3, 4

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer.ggml.pre -> split regex. ``None``: GPT-2's own ByteLevel regex.
PRE_TOKENIZERS: dict[str, str | None] = {
    "default": None,
    "gpt-2": None,
    "gpt2": None,
    "smollm": None,
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
}


def field_value(reader: Any, key: str) -> Any:
    """A metadata value as Python (str, int, float, bool or list), or None when absent."""
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE spells tokens with it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


@dataclass
class GGUFTokenizer:
    """The tokenizer plus the ids and settings that go into the checkpoint's json files."""

    tokenizer: Tokenizer
    tokens: list[str]
    bos_id: int | None
    eos_id: int | None
    end_ids: list[int] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # for the user: see convert_gguf

    def save(self, folder: Path) -> None:
        # A token with a space keeps the merges pairs (see tokenizer_json): nothing to rewrite,
        # and Gemma's 33 MB would take a second to parse and write again.
        if any(" " in t for t in self.tokens):
            self.tokenizer.save(str(folder / "tokenizer.json"))
        else:
            text = tokenizer_json(self.tokenizer)
            (folder / "tokenizer.json").write_text(text, encoding="utf-8")
        text = json.dumps(self.config, indent=2, ensure_ascii=False)
        (folder / "tokenizer_config.json").write_text(text, encoding="utf-8")


def tokenizer_json(tokenizer: Tokenizer) -> str:
    """``tokenizer.json``'s text, with BPE merges in the older ``"a b"`` form where no token
    of a merge holds a space (the form cannot say which space splits). ``tokenizers`` parses
    that form faster than pairs, and the parse is most of a warm load: SmolLM2's 49k merges,
    108 against 145 ms."""
    data = json.loads(tokenizer.to_str())
    model = data.get("model") or {}
    merges = model.get("merges")
    if (
        isinstance(merges, list)
        and merges
        and all(
            isinstance(m, list) and len(m) == 2 and all(p and " " not in p for p in m)
            for m in merges
        )
    ):
        model["merges"] = [f"{a} {b}" for a, b in merges]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def build_tokenizer(reader: Any, name: str) -> GGUFTokenizer:
    warnings: list[str] = []
    kind = field_value(reader, "tokenizer.ggml.model")
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    if not tokens:
        raise ModelLoadError(f"{name}: the GGUF metadata has no tokenizer (tokenizer.ggml.tokens)")
    types = field_value(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    merges = field_value(reader, "tokenizer.ggml.merges")
    ids = {
        k: field_value(reader, f"tokenizer.ggml.{k}_token_id")
        for k in ("bos", "eos", "unknown", "padding", "eot", "eom")
    }
    if kind == "gpt2":
        controls = {i for i, t in enumerate(types) if t == CONTROL}
        pre = field_value(reader, "tokenizer.ggml.pre")
        tok = _byte_level(tokens, merges, pre, name, keep=controls)
        if pre is not None and pre not in PRE_TOKENIZERS:
            warnings.append(
                f"unknown pre-tokenizer {pre!r}: GPT-2's split rules are used, so some text "
                "may split into tokens differently than in llama.cpp"
            )
        add_bos = bool(field_value(reader, "tokenizer.ggml.add_bos_token") or False)
    elif kind == "llama":
        scores = field_value(reader, "tokenizer.ggml.scores") or [0.0] * len(tokens)
        prefix = field_value(reader, "tokenizer.ggml.add_space_prefix")
        tok = _sentencepiece(tokens, merges, scores, True if prefix is None else bool(prefix))
        add_bos = field_value(reader, "tokenizer.ggml.add_bos_token")
        add_bos = True if add_bos is None else bool(add_bos)  # llama.cpp's default for SPM
    else:
        raise ModelLoadError(f"{name}: unsupported GGUF tokenizer {kind!r}; supported: gpt2, llama")
    add_eos = bool(field_value(reader, "tokenizer.ggml.add_eos_token") or False)

    # Control tokens (<|im_end|>, DeepSeek's <｜User｜>) are matched whole in the text, as
    # written in the file: _byte_level keeps their spelling in the vocabulary.
    special = {i for i, t in enumerate(types) if t == CONTROL}
    special |= {
        i for k, i in ids.items() if i is not None and k in ("bos", "eos", "unknown", "padding")
    }
    vocab = tok.get_vocab()
    tok.add_special_tokens(
        [AddedToken(tokens[i], special=True, normalized=False) for i in sorted(special)]
    )
    tok.add_tokens(
        [
            AddedToken(tokens[i], special=False, normalized=False)
            for i, t in enumerate(types)
            if t == USER_DEFINED and tokens[i] in vocab
        ]
    )

    def text(key: str) -> str | None:
        i = ids[key]
        return tokens[i] if i is not None and 0 <= i < len(tokens) else None

    bos, eos = text("bos"), text("eos")
    single = ([bos] if add_bos and bos else []) + ["$A"] + ([eos] if add_eos and eos else [])
    pair = [*single, "$B:1"]
    specials = [(t, tokens.index(t)) for t in (bos, eos) if t and t in single]
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=specials
    )

    end_ids = [i for i in (ids["eos"], ids["eot"], ids["eom"]) if i is not None]
    if "<|im_end|>" in vocab:
        end_ids.append(vocab["<|im_end|>"])
    config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
    for key, hf_key in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token")):
        if text(key):
            config[hf_key] = text(key)
    if text("padding"):
        config["pad_token"] = text("padding")
    config |= {"add_bos_token": add_bos, "add_eos_token": add_eos}
    template = field_value(reader, "tokenizer.chat_template")
    if isinstance(template, str):
        config["chat_template"] = template
    return GGUFTokenizer(
        tok,
        tokens,
        ids["bos"],
        ids["eos"],
        end_ids=sorted(set(end_ids)),
        config=config,
        warnings=warnings,
    )


def _byte_level(
    tokens: list[str],
    merges: list[str] | None,
    pre: str | None,
    name: str,
    keep: set[int] | frozenset[int] = frozenset(),
) -> Tokenizer:
    spelling = bytes_to_unicode()
    alphabet = set(spelling.values())
    # An ordinary token outside the byte alphabet (a mislabelled special) is respelled byte by
    # byte; the ``keep`` ones (control tokens, added as specials) keep their text.
    vocab = {
        t if i in keep or set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8")): i
        for i, t in enumerate(tokens)
    }
    if merges is None:
        raise ModelLoadError(f"{name}: the GGUF byte-level tokenizer has no merges")
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=_pairs(merges),
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    if pre not in PRE_TOKENIZERS:
        log.warning("%s: unknown pre-tokenizer %r; using GPT-2's split regex", name, pre)
    split = PRE_TOKENIZERS.get(pre or "default")
    if split is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tok.decoder = decoders.ByteLevel()
    return tok


def _sentencepiece(
    tokens: list[str], merges: list[str] | None, scores: list[float], add_prefix: bool
) -> Tokenizer:
    vocab = {t: i for i, t in enumerate(tokens)}
    if merges is not None:
        pairs = _pairs(merges)
    else:
        pairs = merges_from_scores(vocab, dict(zip(tokens, scores, strict=True)))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first" if add_prefix else "never", split=False
    )
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix:
        steps.append(decoders.Strip(content=" ", left=1))
    tok.decoder = decoders.Sequence(steps)
    return tok


def merges_from_scores(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """SentencePiece BPE merges implied by a vocabulary: every split of a token into two
    tokens, best-scored token first (transformers' ``generate_merges``, same order).

    That function sorts each token's splits by their ids, then all by (score, left length,
    right length), descending and stable. A token's splits all differ in their left length,
    so the first sort never decides anything and is left out; the second is numpy's stable
    lexsort on the negated keys (Gemma 3's 262k tokens, 515k merges: 2.1 s, from 3.0)."""
    pairs: list[tuple[str, str]] = []
    score_of: list[float] = []
    left_len: list[int] = []
    right_len: list[int] = []
    for piece, score in scores.items():
        n = len(piece)
        for k in range(1, n):
            left = piece[:k]
            if left in vocab:
                right = piece[k:]
                if right in vocab:
                    pairs.append((left, right))
                    score_of.append(score)
                    left_len.append(k)
                    right_len.append(n - k)
    keys = [-np.asarray(x, dtype=np.float64) for x in (right_len, left_len, score_of)]
    order = np.lexsort(keys)  # the last key sorts first
    return [pairs[i] for i in order.tolist()]


def _pairs(merges: list[str]) -> list[tuple[str, str]]:
    out = []
    for m in merges:
        a, _, b = m.partition(" ")
        out.append((a, b))
    return out
