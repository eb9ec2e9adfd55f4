"""Training data: plain text for pretraining, JSONL conversations for chat fine-tuning.

Both become rows of ``context + 1`` token ids with a parallel mask of the positions that
count in the loss: every token of plain text; only the assistant's tokens (its replies and
their end-of-turn token) of a conversation.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.tokenizer import Message, Tokenizer

ROLES = ("system", "user", "assistant")
TEXT_SUFFIXES = (".txt", ".md", ".text")
MIN_ROOM = 16  # a packed row with less room than this is closed


class DataError(ValueError):
    """Training input that cannot be used, with the file (and line) to fix."""


@dataclass
class Rows:
    """Packed training rows: ``ids`` [n, ctx+1] and ``mask`` [n, ctx+1] (True = in the loss;
    the mask of a row's first position is never used, as it has no prediction)."""

    ids: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def target_tokens(self) -> int:
        return int(self.mask[:, 1:].sum())


# --- reading ---------------------------------------------------------------------------------


def text_files(paths: Sequence[str | Path]) -> list[Path]:
    """``.txt``/``.md`` files named directly or found (sorted) under the named folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in TEXT_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p} does not exist")
    if not files:
        raise DataError(f"no text files (.txt, .md) in {', '.join(map(str, paths))}")
    return files


def read_texts(paths: Sequence[str | Path]) -> list[str]:
    """The documents of the text inputs (one per file), non-empty ones only."""
    docs = []
    for f in text_files(paths):
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{f}: not UTF-8 text (byte {e.start}); convert it to UTF-8") from None
        if text.strip():
            docs.append(text)
    if not docs:
        raise DataError(f"the text inputs ({', '.join(map(str, paths))}) are empty")
    return docs


def read_conversations(paths: Sequence[str | Path]) -> list[list[Message]]:
    """Conversations from JSONL files: one ``{"messages": [{"role", "content"}, ...]}`` per
    line. Malformed lines raise ``DataError`` naming the file and line number."""
    convs: list[list[Message]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"{path} does not exist")
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    convs.append(_conversation(line, f"{path}:{n}"))
    if not convs:
        raise DataError(f"no conversations in {', '.join(map(str, paths))}")
    return convs


def _conversation(line: str, where: str) -> list[Message]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg})") from None
    msgs = obj.get("messages") if isinstance(obj, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f'{where}: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
    out: list[Message] = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: message {i} needs a string 'content'")
        if m.get("role") not in ROLES:
            raise DataError(f"{where}: message {i} has role {m.get('role')!r}; use {ROLES}")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise DataError(f"{where}: the conversation has no assistant message to learn from")
    return out


# --- tokenizing ------------------------------------------------------------------------------


def encode_conversation(
    tok: Tokenizer, messages: Sequence[Message]
) -> tuple[list[int], list[bool]]:
    """Token ids of the rendered conversation and which of them are the assistant's.

    The whole conversation is encoded at once (as the engine encodes a prompt); character
    spans of the assistant turns, found by rendering growing prefixes, select the tokens."""
    text = tok.render_chat(messages, add_generation_prompt=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(tok.render_chat(messages[:i], add_generation_prompt=True))
        end = len(tok.render_chat(messages[: i + 1], add_generation_prompt=False))
        if text[:end] != tok.render_chat(messages[: i + 1], add_generation_prompt=False):
            raise DataError("the chat template does not render conversations prefix by prefix")
        spans.append((start, end))
    enc = tok.hf.encode(text, add_special_tokens=False)
    mask = [any(s <= a < e for s, e in spans) for a, _ in enc.offsets]
    return list(enc.ids), mask


def pack_conversations(
    tok: Tokenizer,
    convs: Sequence[Sequence[Message]],
    context: int,
    pad_id: int,
    loss_on_prompt: bool = False,
) -> Rows:
    """Whole conversations packed first-fit into rows of ``context + 1`` tokens (never split
    across rows, so every reply sees its question); longer ones are cut at the context."""
    width = context + 1
    rows: list[tuple[list[int], list[bool]]] = []
    open_rows: list[int] = []  # rows with room left; a full one leaves the list
    for conv in convs:
        ids, mask = encode_conversation(tok, conv)
        if loss_on_prompt:
            mask = [True] * len(ids)
        ids, mask = ids[:width], mask[:width]
        for r in open_rows:
            if len(rows[r][0]) + len(ids) <= width:
                rows[r][0].extend(ids)
                rows[r][1].extend(mask)
                break
        else:
            rows.append((list(ids), list(mask)))
            open_rows.append(len(rows) - 1)
        open_rows = [r for r in open_rows if width - len(rows[r][0]) >= MIN_ROOM][-64:]
    ids_t = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask_t = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, (ids, mask) in enumerate(rows):
        ids_t[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask_t[r, : len(mask)] = torch.tensor(mask, dtype=torch.bool)
    return Rows(ids_t, mask_t)


def pack_texts(tok: Tokenizer, docs: Sequence[str], context: int, eos_id: int) -> Rows:
    """Documents joined by ``eos_id`` and cut into rows of ``context + 1`` tokens that
    overlap by one (each position is predicted once)."""
    stream: list[int] = []
    for d in docs:
        stream.extend(tok.encode(d, add_special_tokens=False))
        stream.append(eos_id)
    n = (len(stream) - 1) // context
    if n < 1:
        return Rows(
            torch.empty(0, context + 1, dtype=torch.long),
            torch.empty(0, context + 1, dtype=torch.bool),
        )
    t = torch.tensor(stream[: n * context + 1], dtype=torch.long)
    ids = t.unfold(0, context + 1, context)
    return Rows(ids.contiguous(), torch.ones_like(ids, dtype=torch.bool))


def split_items(
    items: Sequence[object], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of a deterministic (seeded) train/validation split; validation gets at least one."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(items) * val_fraction)) if val_fraction > 0 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def batches(rows: Rows, batch_size: int, seed: int, start_step: int = 0) -> Iterator[torch.Tensor]:
    """Row indices of each step's global batch, from ``start_step`` on: epochs of seeded
    permutations, so a resumed run sees exactly the batches the uninterrupted one would."""
    n = len(rows)
    per_epoch = max(1, n // batch_size)
    step = start_step
    while True:
        epoch, k = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g)
        if n < batch_size:  # tiny data: repeat the permutation to fill the batch
            perm = perm.repeat(batch_size // n + 1)
        yield perm[k * batch_size : (k + 1) * batch_size]
        step += 1
