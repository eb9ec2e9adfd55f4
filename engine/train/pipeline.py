"""From inputs to a trained checkpoint: read and split the data, get a tokenizer and a model
(a fresh preset or a base checkpoint), pack rows, run the ``Trainer``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import engine.train.checkpoint as checkpoint
from engine.model import Transformer
from engine.tokenizer import Message, Tokenizer
from engine.train.data import (
    DataError,
    Rows,
    pack_conversations,
    pack_texts,
    read_conversations,
    read_texts,
    split_items,
)
from engine.train.presets import preset_config
from engine.train.tokenizer_train import EOS_TOKEN, train_tokenizer
from engine.train.trainer import Event, TrainConfig, Trainer, TrainResult


@dataclass
class TrainSpec:
    """What to train on and what to start from; ``config`` says how."""

    out: Path
    text: Sequence[Path] = ()
    chat: Sequence[Path] = ()
    base: str | None = None  # checkpoint folder, .gguf or model name to continue from
    preset: str = "tiny"
    vocab_size: int = 4096
    isolate_cjk: bool = False  # tokenizer: each Han character its own pre-token
    context: int | None = None  # defaults to the preset's (or the base model's)
    val_fraction: float = 0.05
    loss_on_prompt: bool = False  # conversations: also learn the user's and system's tokens
    resume: bool = False
    config: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class Prepared:
    net: Transformer
    tokenizer: Tokenizer
    train_rows: Rows
    val_rows: Rows


def prepare(spec: TrainSpec) -> Prepared:
    if not spec.text and not spec.chat:
        raise DataError("nothing to train on: give text files (--text) or conversations (--chat)")
    docs = read_texts(spec.text) if spec.text else []
    convs = read_conversations(spec.chat) if spec.chat else []
    seed = spec.config.seed
    torch.manual_seed(seed)
    if spec.resume:
        from engine.loader import read_config

        checkpoint.recover(spec.out)
        cfg = read_config(spec.out)
        tokenizer = Tokenizer.from_dir(spec.out)
        net = Transformer(cfg)
        net.tie_weights()
    elif spec.base:
        from engine.loader import load

        base = load(spec.base, dtype="float32")
        net, tokenizer = base.net, base.tokenizer
    else:
        corpus = docs + [m["content"] for c in convs for m in c]
        tokenizer = train_tokenizer(corpus, spec.vocab_size, isolate_cjk=spec.isolate_cjk)
        cfg = preset_config(spec.preset, tokenizer.vocab_size, context_length=spec.context)
        cfg.eos_token_ids = sorted(tokenizer.eos_ids)
        net = Transformer(cfg)
        init_weights(net)
    context = min(spec.context or net.config.context_length, net.config.context_length)
    train_rows, val_rows = _rows(
        tokenizer, docs, convs, context, spec.val_fraction, seed, spec.loss_on_prompt
    )
    return Prepared(net, tokenizer, train_rows, val_rows)


def init_weights(net: Transformer, std: float = 0.02) -> None:
    """GPT-2 style: normal(0, std) weights, residual output projections scaled down by depth."""
    resid_std = std / (2 * net.config.num_layers) ** 0.5
    for name, p in net.named_parameters():
        if p.dim() < 2:
            continue
        scale = resid_std if name.endswith(("o_proj.weight", "down_proj.weight")) else std
        torch.nn.init.normal_(p, mean=0.0, std=scale)


def _rows(
    tok: Tokenizer,
    docs: Sequence[str],
    convs: Sequence[list[Message]],
    context: int,
    val_fraction: float,
    seed: int,
    loss_on_prompt: bool = False,
) -> tuple[Rows, Rows]:
    parts_train, parts_val = [], []
    pad = tok.hf.token_to_id(EOS_TOKEN)
    pad_id = pad if pad is not None else min(tok.eos_ids, default=0)
    if docs:
        rows = pack_texts(tok, docs, context, pad_id)
        if len(rows) < 2:
            raise DataError(
                f"the text is too small for a context of {context} tokens: it needs at least "
                f"{2 * context + 1} tokens for a training and a validation row; add text or "
                "lower --context"
            )
        tr, va = split_items(range(len(rows)), val_fraction, seed)
        parts_train.append(Rows(rows.ids[tr], rows.mask[tr]))
        parts_val.append(Rows(rows.ids[va], rows.mask[va]))
    if convs:
        if len(convs) < 2:
            raise DataError("at least 2 conversations are needed (one is held out for validation)")
        tr, va = split_items(convs, val_fraction, seed)
        parts_train.append(
            pack_conversations(tok, [convs[i] for i in tr], context, pad_id, loss_on_prompt)
        )
        parts_val.append(pack_conversations(tok, [convs[i] for i in va], context, pad_id))
    train_rows = Rows(
        torch.cat([r.ids for r in parts_train]), torch.cat([r.mask for r in parts_train])
    )
    val_rows = Rows(torch.cat([r.ids for r in parts_val]), torch.cat([r.mask for r in parts_val]))
    if train_rows.target_tokens == 0:
        raise DataError("the training data has no tokens to learn from (no assistant replies?)")
    return train_rows, val_rows


def train(spec: TrainSpec, on_event: Callable[[Event], None] | None = None) -> TrainResult:
    """Train as ``spec`` says and save into ``spec.out``; returns the figures of the run."""
    prep = prepare(spec)
    if on_event is not None:
        on_event(
            {
                "kind": "start",
                "parameters": sum(p.numel() for p in prep.net.parameters()),
                "vocab_size": prep.tokenizer.vocab_size,
                "train_rows": len(prep.train_rows),
                "val_rows": len(prep.val_rows),
                "train_tokens": prep.train_rows.target_tokens,
                "context": prep.train_rows.ids.shape[1] - 1,
            }
        )
    trainer = Trainer(
        prep.net,
        prep.tokenizer,
        prep.train_rows,
        prep.val_rows,
        spec.config,
        spec.out,
        on_event=on_event,
    )
    if spec.resume:
        trainer.resume()
    try:
        return trainer.run()
    finally:
        trainer.dist.close()
